"""Reading XGBoost's channels into DMatrix: content types, weights, widths, and each host's share.

Every content type is read through `nbsage.formats`; this module only applies SageMaker's XGBoost
rules on top: text/libsvm when no content type is given (text/csv when the files are named *.csv,
nbsage.algorithms.content_types), validation read like train, one label
column, instance weights from the second CSV column with csv_weights=1, validation as wide as
train, and on several hosts each host's rows.
"""
from __future__ import annotations

import numpy as np

from nbsage import formats
from nbsage.algorithms.content_types import default_for
from nbsage.algorithms.xgboost.declaration import ALGORITHM, CHANNELS, CSV_WEIGHTS_CONTENT_TYPES
from nbsage.errors import ChannelError, DataError
from nbsage.formats import Table, values


def channel_content_types(env) -> dict[str, str]:
    """Each channel's content type, SageMaker's defaults applied (text/libsvm; validation as train)."""
    declared = {name: ch.content_type for name, ch in env.channels.items()}
    ALGORITHM.check_channels(declared)
    train_ct = (formats.normalize_content_type(declared.get("train"))
                or default_for(env, "train", CHANNELS[0].default_content_type, "XGBoost"))
    out = {}
    for name, raw in declared.items():
        ct = formats.normalize_content_type(raw) or train_ct
        try:
            labels = formats.label_size(raw)
        except ValueError:
            labels = None
        if labels != 1:
            raise ChannelError(f"channel {name!r}: content type {raw!r} is not accepted; XGBoost reads one "
                               "label column (label_size=1, the default)")
        out[name] = ct
    return out


def label_range(hps: dict) -> tuple[float, float, str] | None:
    """(low, high, rule) the objective's labels must lie in, None when any finite label will do."""
    objective = str(hps.get("objective") or "")
    if objective.startswith("binary:") or objective == "reg:logistic":
        return 0.0, 1.0, f"objective {objective}"
    if objective.startswith("multi:") and hps.get("num_class"):
        return 0.0, float(hps["num_class"]) - 1, f"objective {objective} with num_class={hps['num_class']}"
    return None


def read_channel(env, name: str, content_type: str, csv_weights: bool, num_features: int | None = None,
                 hps: dict | None = None, host_share: tuple[int, int] | None = None) -> Table:
    """All of a channel's rows; validation (num_features given) must be as wide as train.

    The values are checked before xgboost sees them (finite labels and features; labels in the
    objective's range), so an error names the file and line instead of xgboost's stack trace.
    `host_share` (text/csv only): only that host's part of the rows is read (see text_csv); its
    error's line numbers count from the part's start, so `host_share` reads the whole channel again
    on every host to name the line.
    """
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files in {env.channels[name].path} "
                        f"(expected {content_type} files)")
    share = {"host_share": host_share} if host_share is not None else {}
    try:
        table = formats.read_table(files, content_type, num_features=num_features,
                                   weights=csv_weights and content_type in CSV_WEIGHTS_CONTENT_TYPES, **share)
        values.check_finite(table, files, content_type)
    except DataError as e:
        raise DataError(f"channel {name!r}: {e}") from None
    bounds = label_range(hps or {})
    if bounds is not None:
        try:
            values.check_label_range(table, files, content_type, *bounds)
        except DataError as e:
            raise DataError(f"XGBoost rejected the labels of channel {name!r}: {e}") from None
    if num_features is not None and table.num_features != num_features:
        raise DataError(f"channel {name!r} has {table.num_features} features and the train channel "
                        f"{num_features}; both channels need the same columns")
    return table


def host_share(env, name: str, content_type: str, csv_weights: bool, num_features: int | None, cluster,
               hps: dict | None = None):
    """This host's rows of a channel (see training.train_on_hosts), or None when it has no files."""
    if not env.channel_files(name):
        env.log(f"channel {name!r} has no files on {cluster.current_host}: it trains on the other hosts' rows")
        return None
    if env.channels[name].distribution == "ShardedByS3Key":
        return read_channel(env, name, content_type, csv_weights, num_features=num_features, hps=hps)
    if content_type == "text/csv":  # FullyReplicated: this host parses only its part of the bytes
        from nbsage.algorithms import distributed
        try:
            table, bad = read_channel(env, name, content_type, csv_weights, num_features=num_features, hps=hps,
                                      host_share=(cluster.rank, cluster.size)), 0
        except DataError:
            table, bad = None, 1
        # a bad value in any host's part: every host reads the whole channel and fails with the same
        # error naming the file and line (not one host with it and the others with a lost peer)
        if int(distributed.allreduce(np.array([bad], dtype=np.int32), "max")[0]):
            return _every_nth_row(read_channel(env, name, content_type, csv_weights, num_features=num_features,
                                               hps=hps), cluster.rank, cluster.size)
        return table
    table = read_channel(env, name, content_type, csv_weights, num_features=num_features, hps=hps)
    return _every_nth_row(table, cluster.rank, cluster.size)


def _every_nth_row(table: Table, rank: int, size: int) -> Table:
    """Rows rank, rank+size, ... of a table every host read whole."""
    rows = slice(rank, None, size)
    return Table(table.features[rows], table.labels[rows], None if table.weights is None else table.weights[rows])


def widen(table, width: int) -> Table:
    """The table with `width` feature columns (sparse data of one host may end early); None -> 0 rows."""
    if table is None:
        return Table(np.empty((0, width), dtype=np.float32), np.empty(0, dtype=np.float32))
    if table.num_features < width and hasattr(table.features, "tocsr"):
        features = table.features.tocsr()
        features.resize((features.shape[0], width))
        return Table(features, table.labels, table.weights)
    if table.num_features != width:
        raise DataError(f"this host's data has {table.num_features} features and another host's {width}; "
                        "every host's files need the same columns")
    return table


def dmatrix(xgb, table: Table, params: dict, nthread: int):
    """A DMatrix of the table's rows, labels and weights (survival:aft: the label as both bounds)."""
    matrix = xgb.DMatrix(table.features, label=table.labels, weight=table.weights, nthread=nthread)
    if params.get("objective") == "survival:aft":
        # uncensored rows: the label is both bounds of the survival interval
        matrix.set_float_info("label_lower_bound", table.labels)
        matrix.set_float_info("label_upper_bound", table.labels)
    return matrix
