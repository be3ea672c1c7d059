"""Old job folders: `nbsage prune` and the NBSAGE_JOB_RETENTION_DAYS setting.

A job's folder ($NBSAGE_HOME/jobs/<job>: its /opt/ml root and its supervisor's log) is the job's
scratch space, as a SageMaker instance's disk is. When the job's runtime ends its staged input goes
at once (nbsage.backends.staging.release_input); config, model and outputs stay for a while for
whoever wants to look at them. What a user keeps of a job is elsewhere and is never pruned: the
store's record (describe, logs, metrics) and the model and output archives uploaded to the
artifact store.

Pruning removes the folders of jobs that ended (Completed, Failed, Stopped) more than a given
number of days ago; a job that has not ended is never touched. A folder the store has no record of
(a job whose record was never written) is removed once it is that old too, and at least an hour old.
With NBSAGE_JOB_RETENTION_DAYS set, a supervisor prunes on that rule each time a job ends.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nbsage.errors import JobError, ValidationError

RETENTION_ENV = "NBSAGE_JOB_RETENTION_DAYS"
ENDED = ("Completed", "Failed", "Stopped")
UNRECORDED_MIN_SECONDS = 3600  # a folder with no record may be a job being created right now


@dataclass
class Pruned:
    """A job folder removed (or, in a dry run, that would be) and the bytes it held."""

    path: Path
    bytes: int


def retention_days() -> float | None:
    """NBSAGE_JOB_RETENTION_DAYS as a number of days (None: unset, job folders are kept)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not days >= 0 or days == float("inf"):
        raise ValidationError(f"{RETENTION_ENV}={raw!r}: expected a number of days >= 0 (e.g. 7 or 0.5)")
    return days


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def prune_job_folders(stores, older_than_days: float, *, dry_run: bool = False,
                      now: float | None = None) -> list[Pruned]:
    """Remove the folders of jobs that ended more than `older_than_days` days ago; returns them."""
    jobs_dir = Path(stores.jobs_dir)
    if not jobs_dir.is_dir():
        return []
    now = time.time() if now is None else now
    cutoff = now - older_than_days * 86400
    pruned = []
    for folder in sorted(jobs_dir.iterdir()):
        if folder.is_symlink() or not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            job = stores.store.get_job(folder.name)
        except JobError:
            job = None
        if job is not None:
            if job["status"] not in ENDED:
                continue
            ended = job["end_time"] or job["last_modified"]
        else:
            ended = folder.stat().st_mtime
            if ended > now - UNRECORDED_MIN_SECONDS:
                continue
        if ended > cutoff:
            continue
        pruned.append(Pruned(folder, _size(folder)))
        if not dry_run:
            shutil.rmtree(folder, ignore_errors=True)  # symlinks inside are unlinked, never followed
    return pruned


def prune_by_setting(stores) -> list[Pruned]:
    """What NBSAGE_JOB_RETENTION_DAYS asks for (nothing when it is unset or not a number of days)."""
    try:
        days = retention_days()
    except ValidationError:
        return []
    return [] if days is None else prune_job_folders(stores, days)
