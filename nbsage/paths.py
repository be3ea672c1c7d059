"""Where a remote key may land on this machine: inside its folder, or nowhere.

Object stores and manifests hand nbsage keys it did not choose: an S3 key may be `train/../../x`,
a ManifestFile may list `../../etc/cron.d/job`, a checkpoint prefix may hold `ckpt/../x`. S3 keeps
such keys verbatim; a local filesystem does not, so joining one to a folder writes elsewhere on
the machine. `landing_path` is the one place that turns a key into a local path: every caller that
stages a channel (File and FastFile, manifests and augmented manifests), mounts a FastFile view,
restores or syncs checkpoints, or stages processing inputs asks it, so the rule cannot differ between them. Batch transform, when it is written, stages its
TransformInput objects and writes each `<key>.out` under the output folder through it as well.

The rule: the key is normalised as a POSIX path (`a//b` and `a/./b` are `a/b`, `a/b/../c` is
`a/c`); it must then name something strictly below the folder — not the folder itself, not
above it, not absolute — and the folders it passes through must not lead outside the folder
through a symbolic link already there. A key that breaks it is an error naming the key and the
folder (a ClientError for the job: the input is at fault, not the machine), raised before anything
is written, rather than a key skipped in silence.

A leaf module (standard library and nbsage.errors only), so the runtime, the places and the
formats can all import it.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

from nbsage.errors import NBSageError, ValidationError


def landing_path(folder: str | os.PathLike, key: str, *, what: str = "object",
                 error: type[NBSageError] = ValidationError) -> Path:
    """The local path where the remote `key` lands under `folder`; `error` when it would land outside.

    `what` says whose key it is in the message (e.g. "channel 'train'", "checkpoint object").
    Nothing is created: the caller makes parent folders and writes.
    """
    folder = Path(folder)
    if not isinstance(key, str) or not key or "\x00" in key:
        raise error(f"{what}: key {key!r} cannot be stored under {folder}: keys must be non-empty text "
                    "without NUL characters")
    normal = posixpath.normpath(key)
    if key.startswith("/") or normal in (".", "..") or normal.startswith("../"):
        normalised = f" (it normalises to {normal!r})" if normal != key else ""
        raise error(f"{what}: key {key!r} would be written outside {folder}{normalised}; keys must name a "
                    "file below their folder, without a leading '/' or '..' parts that climb out of it")
    target = folder / normal
    # a folder on the way that is a symbolic link (left by an earlier job, or by a FastFile link)
    # must not lead out: resolve the parent, whose parts already exist or are made by the caller
    base = folder.resolve()
    parent = target.parent.resolve()
    if parent != base and base not in parent.parents:
        raise error(f"{what}: key {key!r} would be written outside {folder}: {target.parent} leads to "
                    f"{parent} through a symbolic link")
    return target
