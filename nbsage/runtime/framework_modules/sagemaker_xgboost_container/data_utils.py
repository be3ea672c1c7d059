"""Stand-in for `sagemaker_xgboost_container.data_utils`: get_dmatrix, the channel as one DMatrix."""
import os
import tempfile

_TYPES = {"libsvm": "libsvm", "text/libsvm": "libsvm", "text/x-libsvm": "libsvm",
          "csv": "csv", "text/csv": "csv"}


def _files(data_path):
    if os.path.isfile(data_path):
        return [data_path]
    out = []
    for folder, _, names in sorted(os.walk(data_path)):
        out += [os.path.join(folder, n) for n in sorted(names) if not n.startswith(".")]
    return [f for f in out if os.path.getsize(f) > 0]


def get_dmatrix(data_path, content_type, csv_weights=0, is_pipe=False):
    """The files of a channel (a folder or a file) as one xgboost.DMatrix, label first; None when
    there is no data (the container's contract). content_type: libsvm or csv (with or without text/)."""
    import xgboost as xgb
    kind = _TYPES.get(str(content_type).split(";")[0].strip().lower())
    if kind is None:
        raise ValueError(f"get_dmatrix: content type {content_type!r} is not read by nbsage's stand-in; "
                         "use libsvm or csv (or read the files with xgboost.DMatrix yourself)")
    if is_pipe:
        raise ValueError("get_dmatrix: Pipe mode is not read by nbsage's stand-in; use File mode")
    if not data_path or not os.path.exists(data_path):
        return None
    files = _files(data_path)
    if not files:
        return None
    with tempfile.TemporaryDirectory(prefix="nbsage-dmatrix-") as tmp:
        joined = os.path.join(tmp, "data")
        with open(joined, "wb") as out:
            for f in files:
                with open(f, "rb") as src:
                    body = src.read()
                out.write(body if body.endswith(b"\n") else body + b"\n")
        if kind == "libsvm":
            return xgb.DMatrix(f"{joined}?format=libsvm")
        import numpy as np
        rows = np.loadtxt(joined, delimiter=",", ndmin=2)
        if csv_weights:
            return xgb.DMatrix(rows[:, 2:], label=rows[:, 0], weight=rows[:, 1])
        return xgb.DMatrix(rows[:, 1:], label=rows[:, 0])


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_xgboost_container.data_utils", name, "use get_dmatrix, or xgboost.DMatrix")
