"""What a model.tar.gz holds, said in one line before a model server tries to load it.

A CSV or an empty file given as `model_data` used to fail with tarfile's raw "file could not be
opened successfully: - method gz ... - method tar ...", and an archive of another algorithm (or one
without its model file) with a Python traceback from the server's log. `archive_problem` names what
the file is instead; `check_model_files` names the file the algorithm expects and what the archive
holds (and whose model that looks like), from each algorithm's declared `model_files`.
"""
from __future__ import annotations

import fnmatch
import tarfile
from pathlib import Path

from nbsage.errors import ValidationError

GZIP_MAGIC = b"\x1f\x8b"
SHOWN = 6  # names of an archive listed in an error


def archive_problem(path: str | Path) -> str | None:
    """Why the file at `path` is not a readable tar archive (None when it is one)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "is an empty file (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(GZIP_MAGIC):
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.next()  # the first header only: a large archive is not read through
        except tarfile.ReadError:
            return "is gzip data but not a tar archive (a model.tar.gz is a gzipped tar of the model folder)"
        except (OSError, EOFError, tarfile.TarError) as e:
            return f"is damaged gzip data ({e})"
        return None
    if tarfile.is_tarfile(path):
        return None
    if b"\0" not in head:
        line = head.decode("utf-8", errors="replace").splitlines()[0][:60] if head.strip() else ""
        return f"is a text file, not a model.tar.gz (it starts {line!r})"
    return f"is not a tar or gzip archive (it starts with bytes {head[:8].hex(' ')})"


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name


def check_archive(path: str | Path, source: str, algorithm: str | None = None) -> None:
    """Refuse a model_data file that is not a tar archive, or (with `algorithm`) lacks its model file."""
    problem = archive_problem(path)
    if problem:
        raise ValidationError(f"model_data {source!r} {problem}; give the model.tar.gz of a training job "
                              "(estimator.model_data)")
    if algorithm:
        check_model_files(_names_until_model(path, algorithm), algorithm, source)


def _names_until_model(path, algorithm: str) -> list[str]:
    """The archive's member names, read only as far as the algorithm's model file (a large archive
    whose model file comes first is not decompressed through)."""
    from nbsage import algorithms
    patterns = algorithms.get(algorithm).model_files
    names = []
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            name = _clean(member.name)
            if name:
                names.append(name)
                if _holds([name], patterns):
                    break
    return names


def check_model_dir(model_dir: str | Path, algorithm: str, source: str) -> None:
    """check_model_files for an unpacked model folder."""
    model_dir = Path(model_dir)
    names = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    check_model_files(names, algorithm, source)


def check_model_files(names: list[str], algorithm: str, source: str) -> None:
    """Refuse an archive holding none of the algorithm's declared model files, naming what it holds."""
    from nbsage import algorithms
    declared = algorithms.get(algorithm)
    if not declared.model_files or _holds(names, declared.model_files):
        return
    others = [a for a in _other_algorithms(declared.name) if _holds(names, a.model_files)]
    held = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "") \
        if names else "no files"
    whose = f" (a {others[0].name} model)" if others else ""
    expected = " or ".join(declared.model_files)
    raise ValidationError(f"model_data {source!r} holds no {declared.name} model file {expected}; "
                          f"it holds {held}{whose}")


def _holds(names: list[str], patterns) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for name in names for pattern in patterns)


def _other_algorithms(name: str) -> list:
    from nbsage import algorithms
    out = []
    for other in algorithms.names():
        try:
            declared = algorithms.get(other)
        except ImportError:
            continue
        if declared.name != name and declared not in out:
            out.append(declared)
    return out
