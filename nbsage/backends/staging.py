"""Staging channels into a job root and collecting its artifacts: the parts every place shares."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbsage.errors import ChannelError
from nbsage.runtime.job_config import write_job_configs
from nbsage.runtime.layout import JobRoot
from nbsage.store.artifacts import ArtifactStore, is_local, join, local_path


def _copy_local(src: Path, dest_dir: Path) -> int:
    if src.is_file():
        shutil.copyfile(src, dest_dir / src.name)
        return 1
    count = 0
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(src)
        for name in files:
            if name.startswith("."):
                continue
            target = dest_dir / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(root) / name, target)
            count += 1
    return count


def stage_channel(uri: str, dest_dir: Path, channel: str) -> int:
    """Copy a channel's objects (a file, a folder, or an fsspec URL prefix) into dest_dir."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if is_local(uri):
        src = Path(local_path(uri)).expanduser()
        if not src.exists():
            raise ChannelError(f"channel {channel!r}: {uri} does not exist")
        count = _copy_local(src, dest_dir)
    else:
        import fsspec
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            raise ChannelError(f"channel {channel!r}: {uri} does not exist (or is not readable with the "
                               "configured credentials)")
        if fs.isfile(path):
            fs.get_file(path, str(dest_dir / Path(path).name))
            count = 1
        else:
            count = 0
            for key in sorted(fs.find(path)):
                rel = key[len(path.rstrip("/")) + 1:]
                if not rel or any(part.startswith(".") for part in rel.split("/")):
                    continue
                target = dest_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(key, str(target))
                count += 1
    if count == 0:
        raise ChannelError(f"channel {channel!r}: {uri} holds no files")
    return count


def prepare_root(root: JobRoot, request: dict, code_source: str | None = None) -> JobRoot:
    """Write the config files, stage every channel and the script's source directory."""
    write_job_configs(root, request)
    for ch in request.get("InputDataConfig", []):
        uri = ch["DataSource"]["S3DataSource"]["S3Uri"]
        stage_channel(uri, root.channel_dir(ch["ChannelName"]), ch["ChannelName"])
    if code_source:
        src = Path(local_path(code_source))
        if src.is_dir():
            shutil.copytree(src, root.code_dir, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".git", "__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copyfile(src, root.code_dir / src.name)
    return root


def artifact_uris(request: dict) -> tuple[str, str]:
    """(model.tar.gz, output.tar.gz) URIs: <S3OutputPath>/<job>/output/..., as SageMaker places them."""
    base = join(request["OutputDataConfig"]["S3OutputPath"], request["TrainingJobName"], "output")
    return join(base, "model.tar.gz"), join(base, "output.tar.gz")


def collect(root: JobRoot, request: dict, artifacts: ArtifactStore) -> tuple[str | None, str | None]:
    """Upload model.tar.gz and output.tar.gz from the root; returns their URIs (None when absent)."""
    model_uri, output_uri = artifact_uris(request)
    model = artifacts.put_file(root.model_archive, model_uri) if root.model_archive.exists() else None
    output = artifacts.put_file(root.output_archive, output_uri) if root.output_archive.exists() else None
    return model, output
