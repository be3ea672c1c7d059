"""DeepAR's records: `{"start", "target", "cat", "dynamic_feat"}` from JSON Lines, gzip or Parquet.

Every rule the spec states is checked here, and a broken one raises a `DataError` (training) or
`InvalidRequest` (inference) that names the record (file and line, or request instance) and the
rule: a `start` that does not parse, a target that is not a list of numbers/"NaN"/null, a `cat`
value beyond the cardinality, a `dynamic_feat` of the wrong length or with missing values, a
series shorter than context_length + prediction_length, targets outside the likelihood's domain.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from nbsage.algorithms.deepar.features import Frequency
from nbsage.errors import DataError

PARQUET_TYPES = ("application/x-parquet", "application/parquet")
START_FORMATS = "'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD'"


@dataclass
class Series:
    """One time series: where it came from, when it starts, its values and its features."""

    source: str                     # "train/part-0.json line 3" or "instance 2", for errors
    start: _dt.datetime
    target: np.ndarray              # float32, NaN = missing
    cat: np.ndarray | None = None   # int64 [num_cat]
    dynamic_feat: np.ndarray | None = None  # float32 [num_dynamic_feat, length]
    ordinal: int = 0                # base-unit ordinal of `start` (set by `index`)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.target)

    def index(self, freq: Frequency) -> "Series":
        """Set the ordinal of `start` in the frequency's base unit; returns self."""
        self.ordinal = freq.ordinal(self.start)
        return self


def parse_start(value: Any, where: str) -> _dt.datetime:
    """A naive datetime from 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD', ISO text or a datetime."""
    if isinstance(value, _dt.datetime):
        when = value
    elif isinstance(value, _dt.date):
        when = _dt.datetime(value.year, value.month, value.day)
    elif hasattr(value, "to_pydatetime"):  # a pandas Timestamp from Parquet
        when = value.to_pydatetime()
    elif isinstance(value, str):
        try:
            when = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise DataError(f"{where}: 'start' = {value!r} is not a timestamp; DeepAR expects "
                            f"{START_FORMATS}") from None
    else:
        raise DataError(f"{where}: 'start' is {'missing' if value is None else type(value).__name__}; "
                        f"every record needs a 'start' timestamp as {START_FORMATS}")
    if when.tzinfo is not None:
        raise DataError(f"{where}: 'start' = {value!r} has a time zone; DeepAR's start timestamps "
                        f"carry none ({START_FORMATS})")
    return when


def _number(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str) and x.strip().lower() == "nan":
        return math.nan
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError
    return float(x)


def parse_target(value: Any, where: str) -> np.ndarray:
    """float32 values; "NaN" strings and nulls are missing values."""
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise DataError(f"{where}: 'target' is {'missing' if value is None else type(value).__name__}; "
                        "every record needs a 'target' list of numbers (\"NaN\" or null for missing)")
    if len(value) == 0:
        raise DataError(f"{where}: 'target' is empty; a series needs at least one value")
    try:
        # numpy reads numbers, "NaN" strings and None (as NaN) in one C loop
        target = np.asarray(value, dtype=np.float32)
        if target.ndim != 1:
            raise ValueError
    except (TypeError, ValueError):
        for i, v in enumerate(value):
            try:
                _number(v)
            except (TypeError, ValueError):
                raise DataError(f"{where}: target[{i}] = {v!r} is not a number; targets hold numbers, "
                                "with \"NaN\" or null for missing values") from None
        raise DataError(f"{where}: 'target' is not a list of numbers") from None
    if np.isinf(target).any():
        i = int(np.argmax(np.isinf(target)))
        raise DataError(f"{where}: target[{i}] = {value[i]!r} is not a finite number; targets hold "
                        "numbers, with \"NaN\" or null for missing values")
    return target


def parse_cat(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple, np.ndarray)):
        value = [value]  # a single category may be given as a number
    out = []
    for i, v in enumerate(value):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise DataError(f"{where}: cat[{i}] = {v!r} is not valid; 'cat' values are 0-based "
                            "category indices (non-negative integers)")
        out.append(int(v))
    return np.asarray(out, dtype=np.int64)


def parse_dynamic_feat(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) == 0 or not all(
            isinstance(row, (list, tuple, np.ndarray)) for row in value):
        raise DataError(f"{where}: 'dynamic_feat' must be a list of feature arrays, e.g. "
                        "[[1.0, 1.1, ...], [0.0, 1.0, ...]], one per feature")
    lengths = {len(row) for row in value}
    if len(lengths) > 1:
        raise DataError(f"{where}: the arrays of 'dynamic_feat' have different lengths "
                        f"{sorted(lengths)}; each must be as long as the time series")
    try:
        feats = np.asarray([[_number(x) for x in row] for row in value], dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'dynamic_feat' holds a value that is not a number") from None
    if np.isnan(feats).any():
        i, j = map(int, np.argwhere(np.isnan(feats))[0])
        raise DataError(f"{where}: dynamic_feat[{i}][{j}] is missing; dynamic features may not have "
                        "missing values")
    return feats


def parse_record(obj: Any, where: str) -> Series:
    """One JSON object (or Parquet row) as a Series; raises DataError naming `where`."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object with 'start' and 'target', found "
                        f"{type(obj).__name__}")
    start = parse_start(obj.get("start"), where)
    target = parse_target(obj.get("target"), where)
    cat = obj.get("cat")
    dyn = obj.get("dynamic_feat")
    return Series(source=where, start=start, target=target,
                  cat=None if cat is None else parse_cat(cat, where),
                  dynamic_feat=None if dyn is None else parse_dynamic_feat(dyn, where))


# ---- reading channels ---------------------------------------------------------------------------
def is_parquet(path: Path, content_type: str = "") -> bool:
    """By suffix (.parquet), else by the channel's content type, else by Parquet's magic bytes."""
    if path.suffix == ".parquet" or path.name.endswith(".parquet.gz"):
        return True
    if path.suffix in (".json", ".jsonl", ".gz"):
        return False
    if content_type.split(";")[0].strip().lower() in PARQUET_TYPES:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


def _iter_parquet(path: Path, display: str) -> Iterator[Series]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{display}: not a readable Parquet file ({e})") from None
    for column in ("start", "target"):
        if column not in table.column_names:
            raise DataError(f"{display}: Parquet file has no {column!r} column; DeepAR reads the "
                            f"columns start, target and optionally cat and dynamic_feat "
                            f"(found {', '.join(table.column_names)})")
    columns = {name: table.column(name).to_pylist() for name in ("start", "target", "cat", "dynamic_feat")
               if name in table.column_names}
    for row in range(table.num_rows):
        yield parse_record({k: v[row] for k, v in columns.items()}, f"{display} row {row + 1}")


def read_channel(files: Iterable[Path], content_type: str = "", root: Path | None = None) -> list[Series]:
    """Every record of a channel's files, in file order."""
    from nbsage.formats import jsonlines
    out: list[Series] = []
    for path in files:
        path = Path(path)
        display = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
        if is_parquet(path, content_type):
            out.extend(_iter_parquet(path, display))
            continue
        try:
            for lineno, obj in jsonlines.iter_file(path):
                out.append(parse_record(obj, f"{display} line {lineno}"))
        except DataError as e:
            # name the channel-relative path, not the job root's absolute one
            raise DataError(str(e).replace(str(path), display, 1)) from None
    return out


# ---- rules that span records --------------------------------------------------------------------
@dataclass
class FieldSpec:
    """What the training data fixed: category counts and number of dynamic features (None = unused)."""

    cardinality: list[int] | None
    num_dynamic_feat: int | None


def resolve_fields(series: list[Series], cardinality: Any, num_dynamic_feat: Any, log=None) -> FieldSpec:
    """Resolve `auto`/`ignore`/"" for cardinality and num_dynamic_feat against the train channel."""
    ignore_cat = cardinality in ("ignore", "")
    ignore_dyn = num_dynamic_feat in ("ignore", "")
    cards: list[int] | None = None
    if not ignore_cat:
        counts = {len(s.cat) if s.cat is not None else 0 for s in series}
        if len(counts) > 1:
            first = next(s for s in series if (len(s.cat) if s.cat is not None else 0) != (
                len(series[0].cat) if series[0].cat is not None else 0))
            raise DataError(f"{first.source}: has {len(first.cat) if first.cat is not None else 0} 'cat' "
                            f"value(s) where {series[0].source} has "
                            f"{len(series[0].cat) if series[0].cat is not None else 0}; every series "
                            "needs the same number of categorical features")
        count = counts.pop() if counts else 0
        if cardinality == "auto":
            if count:
                cards = [int(v) + 1 for v in np.max(np.stack([s.cat for s in series]), axis=0)]
                if log:
                    log(f"Inferred value of cardinality={cards} from dataset")
        else:
            cards = [int(c) for c in cardinality]
            if count != len(cards):
                raise DataError(f"{series[0].source}: has {count} 'cat' value(s) but cardinality = "
                                f"{cards} declares {len(cards)} categorical feature(s); set cardinality "
                                "to auto, or to one count per cat value")
            if not cards:
                cards = None
    dyn: int | None = None
    if not ignore_dyn:
        counts = {len(s.dynamic_feat) if s.dynamic_feat is not None else 0 for s in series}
        if len(counts) > 1:
            raise DataError(f"the train channel's series have different numbers of 'dynamic_feat' arrays "
                            f"({sorted(counts)}); every series needs the same number")
        count = counts.pop() if counts else 0
        if num_dynamic_feat == "auto":
            dyn = count or None
            if dyn and log:
                log(f"Inferred value of num_dynamic_feat={dyn} from dataset")
        else:
            if count != int(num_dynamic_feat):
                raise DataError(f"{series[0].source}: has {count} 'dynamic_feat' array(s) but "
                                f"num_dynamic_feat = {num_dynamic_feat}; set num_dynamic_feat to auto or "
                                f"to {count}")
            dyn = int(num_dynamic_feat) or None
    return FieldSpec(cards, dyn)


def check_series(s: Series, fields: FieldSpec, *, min_length: int, future: int, likelihood: str,
                 rule_lengths: str, error=DataError) -> None:
    """Check one series against the fields fixed by training; `future` extra dynamic_feat points."""
    if len(s) < min_length:
        raise error(f"{s.source}: the series has {len(s)} point(s); DeepAR needs at least "
                    f"{min_length} ({rule_lengths}) per series")
    if fields.cardinality is not None:
        if s.cat is None or len(s.cat) != len(fields.cardinality):
            raise error(f"{s.source}: needs 'cat' with {len(fields.cardinality)} value(s) (the model was "
                        f"trained with cardinality={fields.cardinality}), found "
                        f"{'none' if s.cat is None else len(s.cat)}")
        for i, (value, card) in enumerate(zip(s.cat, fields.cardinality)):
            if value >= card:
                raise error(f"{s.source}: cat[{i}] = {int(value)} is beyond cardinality[{i}] = {card}; "
                            f"values of categorical feature {i} must be 0..{card - 1} and each must "
                            "appear in training")
    if fields.num_dynamic_feat is not None:
        expected = len(s) + future
        if s.dynamic_feat is None or len(s.dynamic_feat) != fields.num_dynamic_feat:
            raise error(f"{s.source}: needs 'dynamic_feat' with {fields.num_dynamic_feat} array(s) "
                        f"(num_dynamic_feat={fields.num_dynamic_feat}), found "
                        f"{'none' if s.dynamic_feat is None else len(s.dynamic_feat)}")
        if s.dynamic_feat.shape[1] != expected:
            what = "len(target)" + (f" + prediction_length = {len(s)} + {future}" if future else f" = {len(s)}")
            raise error(f"{s.source}: 'dynamic_feat' arrays have {s.dynamic_feat.shape[1]} values; "
                        f"they must have {what}")
    observed = s.target[~np.isnan(s.target)]
    if likelihood == "negative-binomial" and observed.size and observed.min() < 0:
        raise error(f"{s.source}: target holds {float(observed.min()):g}; likelihood=negative-binomial "
                    "models non-negative counts (use gaussian or student-T for real values)")
    if likelihood == "beta" and observed.size and (observed.min() < 0 or observed.max() > 1):
        raise error(f"{s.source}: target holds values outside [0, 1]; likelihood=beta models "
                    "values in [0, 1]")


def statistics(series: list[Series]) -> dict:
    """The dataset statistics SageMaker's DeepAR logs."""
    lengths = np.array([len(s) for s in series])
    allv = np.concatenate([s.target for s in series]) if series else np.zeros(0, np.float32)
    obs = allv[~np.isnan(allv)]
    return {
        "number of time series": len(series),
        "number of observations": int(obs.size),
        "mean target length": float(lengths.mean()) if len(lengths) else 0.0,
        "min/mean/max target": (float(obs.min()), float(obs.mean()), float(obs.max())) if obs.size else (0, 0, 0),
        "mean abs(target)": float(np.abs(obs).mean()) if obs.size else 0.0,
        "contains missing values": bool(obs.size < allv.size),
    }
