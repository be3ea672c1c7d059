"""A staged channel file's path as the user wrote it: the channel's S3Uri, not the copy under the job root.

An algorithm reads `<root>/input/data/train/part-0.csv`; the user gave `~/data/train` or
`s3://bucket/train`. A FailureReason that names the staged copy sends them looking in a folder
they never made, so `to_user_paths` rewrites each channel folder in a message to the channel's
own URI (trainingjobconfig.json keeps the request). A local source is looked at to tell a folder
(the file lies inside it) from a file (the URI is the file); a remote URI that ends with the
file's name is that file, any other is taken as its folder.
"""
from __future__ import annotations

from pathlib import Path

from nbsage.runtime import layout
from nbsage.runtime.layout import JobRoot


def channel_sources(root: JobRoot) -> dict[str, str]:
    """{channel name: its S3Uri} from the job's request."""
    try:
        request = root.read_config(layout.TRAINING_JOB_CONFIG) or {}
    except (OSError, ValueError):
        return {}
    out = {}
    for channel in request.get("InputDataConfig") or []:
        uri = ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri")
        if channel.get("ChannelName") and uri:
            out[channel["ChannelName"]] = str(uri)
    return out


def user_path(uri: str, key: str) -> str | None:
    """Where the staged file `key` (relative to the channel folder) came from, for channel source `uri`
    (None when a local source is no longer there)."""
    local = "://" not in uri or uri.startswith("file://")
    base = uri[len("file://"):] if uri.startswith("file://") else uri
    if local:
        source = Path(base).expanduser()
        if source.is_dir():
            return str(source / key)
        return str(source) if source.is_file() else None  # gone since staging: the staged copy is all there is
    base = base.rstrip("/")
    return base if base.rsplit("/", 1)[-1] == key else f"{base}/{key}"


def to_user_paths(root: JobRoot, message: str) -> str:
    """`message` with every staged channel file named by the path or URI the user gave."""
    for name, uri in channel_sources(root).items():
        folder = str(root.channel_dir(name)).rstrip("/") + "/"
        start = message.find(folder)
        while start >= 0:
            end = start + len(folder)
            while end < len(message) and not message[end].isspace() and message[end] not in ":,;'\")":
                end += 1
            mapped = user_path(uri, message[start + len(folder):end])
            if mapped is not None:
                message = message[:start] + mapped + message[end:]
            start = message.find(folder, start + 1)
    return message
