"""Channel inputs: TrainingInput (shaped like the SDK's), and turning what a user passes into a
channel request.

A channel's source may be a local file or folder, any fsspec URL (s3://, gs://, http(s)://,
memory://, ...), or data in memory — written as the channel's content type when the job is
created: a pandas DataFrame, a NumPy array, a scipy sparse matrix, an (X, y) pair, a SQL query
result (`nbsage.data.Query`, a DuckDB relation), a pyarrow or polars table, or a Spark DataFrame
(collected to the driver with `toPandas()`; for data larger than memory write it to a folder or a
bucket with Spark and pass that URL).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from nbsage.errors import ChannelError

INPUT_MODES = ("File", "Pipe", "FastFile")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
COMPRESSIONS = ("None", "Gzip")
RECORD_WRAPPERS = ("None", "RecordIO")
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")

class ShuffleConfig:
    """sagemaker.inputs.ShuffleConfig: shuffle a channel's objects with this seed."""

    def __init__(self, seed: int):
        self.seed = seed

    def __repr__(self) -> str:
        return f"ShuffleConfig(seed={self.seed!r})"


def _one_of(what: str, value, accepted: tuple) -> None:
    if value is not None and value not in accepted:
        from nbsage.errors import did_you_mean
        raise ChannelError(f"{what} {value!r} is not valid; use one of {', '.join(accepted)}"
                           f"{did_you_mean(str(value), accepted)}")


def _shuffle_seed(shuffle_config) -> int | None:
    if shuffle_config is None:
        return None
    seed = shuffle_config.get("Seed", shuffle_config.get("seed")) if isinstance(shuffle_config, dict) \
        else getattr(shuffle_config, "seed", shuffle_config)
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            seed = int(str(seed))
        except ValueError:
            raise ChannelError(f"shuffle_config needs an integer seed, e.g. ShuffleConfig(seed=42) or "
                               f"{{'Seed': 42}}; got {shuffle_config!r}") from None
    return seed


class TrainingInput:
    """One channel, as sagemaker.inputs.TrainingInput: where the data is and how to read it.

    input_mode File copies the objects before training, FastFile gives a read-only view, Pipe
    streams them through FIFOs input/data/<channel>_<epoch>. distribution ShardedByS3Key gives each
    instance its own share of the objects; shuffle_config (ShuffleConfig(seed) or {"Seed": n})
    shuffles them; compression "Gzip" decompresses each object.
    """

    def __init__(self, s3_data: Any, distribution: str | None = None, compression: str | None = None,
                 content_type: str | None = None, record_wrapping: str | None = None,
                 s3_data_type: str = "S3Prefix", instance_groups: list[str] | None = None,
                 input_mode: str | None = None, attribute_names: list[str] | None = None,
                 target_attribute_name: str | None = None, shuffle_config=None):
        _one_of("distribution (S3DataDistributionType)", distribution, DISTRIBUTIONS)
        _one_of("compression (CompressionType)", compression, COMPRESSIONS)
        _one_of("record_wrapping (RecordWrapperType)", record_wrapping, RECORD_WRAPPERS)
        _one_of("s3_data_type (S3DataType)", s3_data_type, S3_DATA_TYPES)
        _one_of("input_mode", input_mode, INPUT_MODES)
        if s3_data_type == "AugmentedManifestFile" and not attribute_names:
            raise ChannelError("s3_data_type 'AugmentedManifestFile' needs attribute_names (AttributeNames): "
                               "the manifest fields to stream, e.g. ['source', 'label']")
        if compression == "Gzip" and input_mode == "FastFile":
            raise ChannelError("compression 'Gzip' works with the File and Pipe input modes, not FastFile")
        self.s3_data = s3_data
        self.distribution = distribution or "FullyReplicated"
        self.compression = compression
        self.content_type = content_type
        self.record_wrapping = record_wrapping
        self.s3_data_type = s3_data_type
        self.instance_groups = instance_groups
        self.input_mode = input_mode
        self.attribute_names = attribute_names
        self.target_attribute_name = target_attribute_name
        seed = _shuffle_seed(shuffle_config)
        self.shuffle_config = {"Seed": seed} if seed is not None else None

    def config(self, uri: str) -> dict:
        cfg: dict = {"DataSource": {"S3DataSource": {"S3DataType": self.s3_data_type, "S3Uri": uri,
                                                     "S3DataDistributionType": self.distribution}}}
        if self.attribute_names:
            cfg["DataSource"]["S3DataSource"]["AttributeNames"] = self.attribute_names
        if self.instance_groups:
            cfg["DataSource"]["S3DataSource"]["InstanceGroupNames"] = self.instance_groups
        if self.compression:
            cfg["CompressionType"] = self.compression
        if self.content_type:
            cfg["ContentType"] = self.content_type
        if self.record_wrapping:
            cfg["RecordWrapperType"] = self.record_wrapping
        if self.input_mode:
            cfg["InputMode"] = self.input_mode
        if self.shuffle_config:
            cfg["ShuffleConfig"] = self.shuffle_config
        return cfg

    def __repr__(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in ("input_mode", "distribution", "compression")
                        if getattr(self, k) not in (None, "FullyReplicated"))
        return f"TrainingInput({self.s3_data!r}, content_type={self.content_type!r}{extra})"


# ---- data in memory -------------------------------------------------------------------------------
def _module(obj) -> str:
    return type(obj).__module__ or ""


def is_table_like(obj) -> bool:
    """Tables that are not pandas/NumPy/scipy but turn into a DataFrame: SQL results, Arrow, Spark."""
    mod = _module(obj)
    return (hasattr(obj, "to_pandas") or (mod.startswith("pyspark") and hasattr(obj, "toPandas"))
            or (mod.startswith("duckdb") and hasattr(obj, "df")))


def to_frame(obj):
    """A DataFrame from a table-like object (Spark, DuckDB relation, Arrow, polars, nbsage Query)."""
    mod = _module(obj)
    if mod.startswith("pyspark") and hasattr(obj, "toPandas"):
        return obj.toPandas()
    if mod.startswith("duckdb") and hasattr(obj, "df"):
        return obj.df()
    return obj.to_pandas()


def _is_in_memory(obj) -> bool:
    if isinstance(obj, tuple) and len(obj) == 2:
        return True
    mod = _module(obj)
    return mod.startswith(("pandas", "numpy", "scipy.sparse")) or is_table_like(obj)


def _labelled_matrix(obj, channel: str):
    """(X, y) -> one matrix with the label first, as SageMaker's built-ins read it."""
    import numpy as np
    features, labels = obj
    if is_table_like(features):
        features = to_frame(features)
    if hasattr(features, "to_numpy"):
        features = features.to_numpy()
    labels = np.asarray(labels, dtype=float).reshape(-1, 1)
    if hasattr(features, "tocsr"):
        import scipy.sparse as sp
        if features.shape[0] != labels.shape[0]:
            raise ChannelError(f"channel {channel!r}: (features, labels) have {features.shape[0]} rows and "
                               f"{labels.shape[0]} labels")
        return sp.hstack([sp.csr_matrix(labels), features]).tocsr()
    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ChannelError(f"channel {channel!r}: (features, labels) need features of shape (n, d) "
                           f"and n labels; got {features.shape} and {labels.shape[0]}")
    return np.hstack([labels, features])


def write_in_memory(obj, directory: Path, channel: str, content_type: str | None,
                    compression: str | None = None) -> tuple[str, str]:
    """Write a DataFrame / array / sparse matrix / (X, y) / table as the channel's content type.

    Returns (path, content type). The channel's Format writes it (`nbsage.formats.write_channel`):
    CSV without header or index, RecordIO-protobuf and libsvm with the label from the first column,
    as SageMaker's built-ins read data (`;label_size=0` writes RecordIO-protobuf records without a
    label). With compression "Gzip" the file is written gzipped.
    """
    from nbsage import formats
    from nbsage.errors import DataError, UnsupportedContentType
    if isinstance(obj, tuple):
        obj = _labelled_matrix(obj, channel)
    elif is_table_like(obj):
        obj = to_frame(obj)
    try:
        path, ct = formats.write_channel(obj, directory, channel, content_type, compression)
    except (DataError, UnsupportedContentType) as e:
        raise ChannelError(f"channel {channel!r}: {e}") from None
    return str(path), ct


def channel_request(name: str, value: Any, staging_dir: Path, resolve=None) -> dict:
    """One InputDataConfig entry for whatever the user passed as a channel.

    `resolve` maps a URI to where it really is (Session.resolve_uri: the default bucket's
    `s3://` URIs into the artifact store).
    """
    ti = value if isinstance(value, TrainingInput) else TrainingInput(value)
    data = ti.s3_data
    if resolve is not None and isinstance(data, str):
        data = resolve(data)
    content_type = ti.content_type
    if _is_in_memory(data):
        path, ct = write_in_memory(data, staging_dir / name, name, ti.content_type, ti.compression)
        content_type = content_type or ct
        uri = path
    elif isinstance(data, (str, os.PathLike)):
        uri = str(data)
        if "://" not in uri or uri.startswith("file://"):
            local = Path(uri.removeprefix("file://")).expanduser()
            if not local.exists() and not _is_key_prefix(local):
                raise ChannelError(f"channel {name!r}: {uri} does not exist")
            uri = str(local.resolve())
    else:
        raise ChannelError(f"channel {name!r}: {type(data).__name__} is not a data source; pass a path, an fsspec "
                           "URL (s3://...), a pandas DataFrame, a NumPy array or scipy sparse matrix, an (X, y) "
                           "pair, a SQL query result (nbsage.data.Query), a Spark DataFrame or a TrainingInput")
    cfg = ti.config(uri)
    if content_type:
        cfg["ContentType"] = content_type
    cfg["ChannelName"] = name
    return cfg


def _is_key_prefix(path: Path) -> bool:
    """Whether a path that does not exist is the start of names in its folder (an S3 key prefix)."""
    return path.parent.is_dir() and any(p.name.startswith(path.name) for p in path.parent.iterdir())


def normalize_inputs(inputs) -> dict:
    """fit(inputs): a single source means the 'train' channel; a dict maps channel names."""
    if inputs is None:
        return {}
    if isinstance(inputs, dict):
        return dict(inputs)
    return {"train": inputs}


def staging_dir_for(session, job_name: str) -> Path:
    return session.home / "uploads" / job_name / uuid.uuid4().hex[:6]
