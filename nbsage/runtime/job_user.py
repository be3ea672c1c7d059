"""The unprivileged user a job's own code runs as, where nbsage itself runs as root.

Processing and script-mode code is the user's code: run as root it could write the store and other
jobs' folders (the mount namespace hides them, see nbsage.runtime.processing.private_view; this is
the second wall). With `NBSAGE_JOB_USER` set (a user name such as `nobody`, or a numeric uid) and
nbsage running as root, the runtime hands the job root over to that user (chown, so the job can
write its model and outputs) and starts the job's code with that user's uid and gid and no
supplementary groups. The runtime itself stays root: it reads what the job wrote and packages it.
Where nbsage does not run as root there is no one to drop to, and the setting is ignored.
"""
from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from nbsage.errors import ValidationError

JOB_USER_ENV = "NBSAGE_JOB_USER"


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int


def job_user() -> JobUser | None:
    """The user named by NBSAGE_JOB_USER when this process is root; None otherwise."""
    wanted = (os.environ.get(JOB_USER_ENV) or "").strip()
    if not wanted or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwuid(int(wanted)) if wanted.isdigit() else pwd.getpwnam(wanted)
    except (KeyError, ValueError):
        raise ValidationError(f"{JOB_USER_ENV}={wanted!r} is not a user of this machine; give a user name "
                              "from /etc/passwd (e.g. nobody) or a numeric uid, or unset it to run jobs as "
                              "the user running nbsage") from None
    if entry.pw_uid == 0:
        return None  # root is who the job already runs as
    return JobUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def hand_over(path: str | os.PathLike, user: JobUser) -> None:
    """chown `path` and everything under it to the job user (links themselves, never their targets)."""
    path = Path(path)
    if not path.exists():
        return
    os.chown(path, user.uid, user.gid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), user.uid, user.gid, follow_symlinks=False)


def become(user: JobUser) -> None:
    """Drop to the job user for good (in the child, just before it execs the job's code)."""
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)


def environment(user: JobUser) -> dict[str, str]:
    """The variables that name the user, as login would set them."""
    return {"USER": user.name, "LOGNAME": user.name}
