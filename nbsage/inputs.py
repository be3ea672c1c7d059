"""Channel inputs: TrainingInput (shaped like the SDK's), and turning what a user passes —
a path, an fsspec URL, a DataFrame, an array or an (X, y) pair — into a channel request."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from nbsage.errors import ChannelError


class TrainingInput:
    """One channel, as sagemaker.inputs.TrainingInput: where the data is and how to read it."""

    def __init__(self, s3_data: Any, distribution: str | None = None, compression: str | None = None,
                 content_type: str | None = None, record_wrapping: str | None = None,
                 s3_data_type: str = "S3Prefix", input_mode: str | None = None,
                 attribute_names: list[str] | None = None, shuffle_config: dict | None = None):
        self.s3_data = s3_data
        self.distribution = distribution or "FullyReplicated"
        self.compression = compression
        self.content_type = content_type
        self.record_wrapping = record_wrapping
        self.s3_data_type = s3_data_type
        self.input_mode = input_mode
        self.attribute_names = attribute_names
        self.shuffle_config = shuffle_config

    def config(self, uri: str) -> dict:
        cfg: dict = {"DataSource": {"S3DataSource": {"S3DataType": self.s3_data_type, "S3Uri": uri,
                                                     "S3DataDistributionType": self.distribution}}}
        if self.attribute_names:
            cfg["DataSource"]["S3DataSource"]["AttributeNames"] = self.attribute_names
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
        return f"TrainingInput({self.s3_data!r}, content_type={self.content_type!r})"


def _is_in_memory(obj) -> bool:
    if isinstance(obj, tuple) and len(obj) == 2:
        return True
    mod = type(obj).__module__
    return mod.startswith("pandas") or mod.startswith("numpy") or mod.startswith("scipy.sparse")


def write_in_memory(obj, directory: Path, channel: str, content_type: str | None) -> tuple[str, str]:
    """Write a DataFrame / array / (X, y) as the channel's content type; returns (path, content type).

    CSV is written without header or index: SageMaker's built-ins read the first column as the label.
    """
    import numpy as np
    directory.mkdir(parents=True, exist_ok=True)
    ct = (content_type or "text/csv").split(";")[0].strip().lower()
    if isinstance(obj, tuple):
        features, labels = obj
        if hasattr(features, "to_numpy"):
            features = features.to_numpy()
        labels = np.asarray(labels, dtype=float).reshape(-1, 1)
        if hasattr(features, "tocsr"):
            import scipy.sparse as sp
            obj = sp.hstack([sp.csr_matrix(labels), features]).tocsr()
        else:
            features = np.asarray(features, dtype=float)
            if features.ndim != 2 or features.shape[0] != labels.shape[0]:
                raise ChannelError(f"channel {channel!r}: (features, labels) need features of shape (n, d) "
                                   f"and n labels; got {features.shape} and {labels.shape[0]}")
            obj = np.hstack([labels, features])
    if ct == "text/csv":
        path = directory / f"{channel}.csv"
        if hasattr(obj, "to_csv"):
            obj.to_csv(path, header=False, index=False)
        else:
            arr = obj.toarray() if hasattr(obj, "toarray") else np.asarray(obj)
            if arr.ndim == 1:
                arr = arr.reshape(-1, 1)
            import pandas as pd
            pd.DataFrame(arr).to_csv(path, header=False, index=False)
    elif ct == "application/x-parquet":
        import pandas as pd
        path = directory / f"{channel}.parquet"
        frame = obj if hasattr(obj, "to_parquet") else pd.DataFrame(np.asarray(obj))
        frame.columns = [str(c) for c in frame.columns]
        frame.to_parquet(path, index=False)
    elif ct == "text/libsvm":
        from sklearn.datasets import dump_svmlight_file
        arr = obj.toarray() if hasattr(obj, "toarray") and not hasattr(obj, "tocsr") else obj
        if hasattr(arr, "to_numpy"):
            arr = arr.to_numpy()
        path = directory / f"{channel}.libsvm"
        if hasattr(arr, "tocsr"):
            arr = arr.tocsr()
            dump_svmlight_file(arr[:, 1:], arr[:, 0].toarray().ravel(), path, zero_based=True)
        else:
            arr = np.asarray(arr, dtype=float)
            dump_svmlight_file(arr[:, 1:], arr[:, 0], path, zero_based=True)
    else:
        raise ChannelError(f"channel {channel!r}: cannot write in-memory data as {content_type!r}; "
                           "write it to a file first, or use text/csv, text/libsvm or application/x-parquet")
    return str(path), ct


def channel_request(name: str, value: Any, staging_dir: Path) -> dict:
    """One InputDataConfig entry for whatever the user passed as a channel."""
    ti = value if isinstance(value, TrainingInput) else TrainingInput(value)
    data = ti.s3_data
    if _is_in_memory(data):
        path, ct = write_in_memory(data, staging_dir / name, name, ti.content_type)
        ti.content_type = ti.content_type or ct
        uri = path
    elif isinstance(data, (str, os.PathLike)):
        uri = str(data)
        if "://" not in uri or uri.startswith("file://"):
            local = Path(uri.removeprefix("file://")).expanduser()
            if not local.exists():
                raise ChannelError(f"channel {name!r}: {uri} does not exist")
            uri = str(local.resolve())
    else:
        raise ChannelError(f"channel {name!r}: {type(data).__name__} is not a data source; pass a path, an fsspec "
                           "URL (s3://...), a pandas DataFrame, a NumPy array, an (X, y) pair or a TrainingInput")
    cfg = ti.config(uri)
    cfg["ChannelName"] = name
    return cfg


def normalize_inputs(inputs) -> dict:
    """fit(inputs): a single source means the 'train' channel; a dict maps channel names."""
    if inputs is None:
        return {}
    if isinstance(inputs, dict):
        return dict(inputs)
    return {"train": inputs}


def staging_dir_for(session, job_name: str) -> Path:
    return session.home / "uploads" / job_name / uuid.uuid4().hex[:6]
