"""Per-model Python environments: a requirements.txt is installed apart from nbsage's own packages.

A model archive's code/requirements.txt (and a training script's source_dir/requirements.txt) used to
be pip-installed into the environment nbsage itself runs in, where it stayed: one model could then
change the packages of the next model, of every job, and of nbsage. Here each requirements file gets
its own virtual environment, layered over nbsage's:

- `python -m venv --system-site-packages --without-pip` makes it; a `.pth` file in it names the
  site-packages folders of the environment nbsage runs in (a venv's --system-site-packages reaches
  the base interpreter only, not the venv nbsage was installed in), so what nbsage has is importable
  and pip, run by the new environment's interpreter, installs only what is missing or of another
  version, into the new environment (pip never uninstalls outside the environment it installs to);
- it is cached under `$NBSAGE_HOME/envs/<sha256[:16]>`, the hash of the file and of the local files
  it names (`./pkg`, `file:///...`), made once: a lock file serialises two servers that need the same
  one, and a `.complete` marker written last tells a finished environment from a half-built one;
- the process that needs it (the model server, the script's interpreter) puts the environment's
  site-packages first on its path, so its versions win over nbsage's.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from nbsage.errors import NBSageError
from nbsage.runtime.layout import private_dir

ENVS_DIR = "envs"
COMPLETE = ".complete"
BASE_PTH = "_nbsage_base.pth"
DIGEST_CHARS = 16


class RequirementsError(NBSageError):
    """pip could not install a requirements.txt into its environment (the message has pip's last lines)."""


def has_requirements(requirements: Path) -> bool:
    """True when the file names anything (blank lines and comments only need no environment)."""
    if not requirements.is_file():
        return False
    return any(line.strip() and not line.strip().startswith("#")
               for line in requirements.read_text(errors="replace").splitlines())


def _local_files(requirements: Path) -> list[Path]:
    """Local paths the file names (`./pkg`, `../x.whl`, `file:///...`, `-r other.txt`), as pip
    resolves them from the file's folder, which is where nbsage runs pip."""
    found = []
    for line in requirements.read_text(errors="replace").splitlines():
        item = line.split(" #")[0].strip()
        if not item or item.startswith("#"):
            continue
        included = re.match(r"^(-r|--requirement|-c|--constraint)[\s=]+", item)
        item = re.sub(r"^(-e|--editable|-r|--requirement|-c|--constraint)[\s=]+", "", item)
        if item.startswith("file://"):
            item = item[len("file://"):]
        elif not included and not item.startswith((".", "/")):
            continue
        path = (requirements.parent / item.split(";")[0].strip()).resolve()
        if path.exists():
            found.append(path)
    return found


def requirements_digest(requirements: Path) -> str:
    """sha256 of the file and of every local file it names (a new wheel of the same name is a new environment)."""
    digest = hashlib.sha256(requirements.read_bytes())
    for path in _local_files(requirements):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            digest.update(str(f.relative_to(path.parent)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:DIGEST_CHARS]


def envs_root() -> Path:
    """`$NBSAGE_HOME/envs` (the runtime reads NBSAGE_HOME itself: it may run where there is no Session)."""
    home = Path(os.environ.get("NBSAGE_HOME") or "~/.nbsage").expanduser()
    return home / ENVS_DIR


def site_packages(env: Path) -> Path:
    """The environment's site-packages folder."""
    return Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))


def _base_site_packages() -> list[str]:
    """The folders nbsage's own packages come from, in this interpreter's order."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.append(site.getusersitepackages())
    return [f for f in folders if os.path.isdir(f)]


def _tail(proc: subprocess.CompletedProcess) -> str:
    return " ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])


def _build(env: Path, requirements: Path, log) -> None:
    shutil.rmtree(env, ignore_errors=True)  # a half-built one from a process that died
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env)],
                          capture_output=True, text=True)
    if made.returncode:
        raise RequirementsError(f"python -m venv {env} exited {made.returncode}: {_tail(made)}")
    target = site_packages(env)
    target.mkdir(parents=True, exist_ok=True)
    (target / BASE_PTH).write_text("".join(f"{folder}\n" for folder in _base_site_packages()))
    python = env / "bin" / "python"
    log(f"installing {requirements} into {env}")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-r", str(requirements)], cwd=requirements.parent, capture_output=True, text=True)
    if proc.returncode:
        shutil.rmtree(env, ignore_errors=True)
        raise RequirementsError(f"pip install -r {requirements.name} exited {proc.returncode}: {_tail(proc)}")
    (env / COMPLETE).write_text(str(requirements) + "\n")


def ensure_environment(requirements: str | os.PathLike, log=None) -> Path:
    """The environment for `requirements` (built on first use, under a lock); returns its folder.

    Raises RequirementsError with pip's last lines when the requirements cannot be installed.
    """
    requirements = Path(requirements).resolve()
    log = log or (lambda message: print(f"nbsage: {message}", file=sys.stderr, flush=True))
    root = private_dir(envs_root())
    env = root / requirements_digest(requirements)
    with open(root / f"{env.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second server waits here for the first to finish
        try:
            if (env / COMPLETE).exists():
                log(f"using the environment {env} for {requirements}")
            else:
                _build(env, requirements, log)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return env


def activate(env: Path) -> None:
    """Put the environment's site-packages (and what its .pth files add) first on this process's path.

    Modules this process has already imported stay as they are: the model server activates before it
    imports the model's code, which is what a requirements.txt is for.
    """
    import importlib
    before = list(sys.path)
    site.addsitedir(str(site_packages(env)))
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
    importlib.invalidate_caches()
