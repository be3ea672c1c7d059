"""Checkpoint files written one way: to a temporary name the checkpoint sync skips, then renamed.

A job's checkpoint folder (`/opt/ml/checkpoints`) is mirrored to `CheckpointConfig.S3Uri` while the
job runs, so a file must never be seen half-written: a job killed mid-write (a spot interruption,
a stop) would leave a truncated checkpoint under the URI, and the next job would resume from it.
SageMaker's uploader skips names ending in `.sagemaker-ignore`; `write_checkpoint` writes
`<name>.sagemaker-ignore` and renames it onto `<name>` (an atomic replace), and `is_ignored` is the
rule the sync (`nbsage.backends.checkpoints`) applies. Both live here, in a leaf module, because the
algorithms and the runtime write checkpoints on hosts that have no backends, and the writer and the
skipper must agree on the name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Union

IGNORE_SUFFIX = ".sagemaker-ignore"

Content = Union[bytes, str, Callable[[BinaryIO], object]]


def temporary_path(path: str | os.PathLike) -> Path:
    """Where `write_checkpoint(path, ...)` writes before the rename: `<name>.sagemaker-ignore`."""
    path = Path(path)
    return path.with_name(path.name + IGNORE_SUFFIX)


def write_checkpoint(path: str | os.PathLike, content: Content) -> Path:
    """Write `path` atomically: the old file, or the new one whole, never a part of it.

    `content` is the bytes (or text, written as UTF-8), or a function that writes to the open
    binary file (`lambda f: torch.save(state, f)`, `lambda f: np.savez(f, **arrays)`). The folder
    is created when missing. A write that fails removes its temporary file and raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return path


def is_ignored(name: str) -> bool:
    """True for a file the checkpoint sync never uploads or restores.

    `<name>.sagemaker-ignore` is a checkpoint being written (SageMaker's convention); `.<name>.tmp`
    is the temporary name other atomic writes in nbsage use (the artifact store's copies in flight).
    `name` may be a relative path; only its last part counts.
    """
    base = str(name).replace(os.sep, "/").rsplit("/", 1)[-1]
    return base.endswith(IGNORE_SUFFIX) or (base.startswith(".") and base.endswith(".tmp"))
