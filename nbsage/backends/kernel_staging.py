"""What the kernel place sends to the kernel besides the runtime's calls: the staged job root as one
tar, Pipe channels' objects, and the checkpoint sync the kernel runs next to the runtime.

Used by nbsage.backends.kernel_supervisor; the kernel's half is nbsage.backends.kernel_agent (and
nbsage.backends.checkpoints' kernel_start / kernel_stop).
"""
from __future__ import annotations

import copy
import os
import tarfile
from pathlib import Path

from nbsage.backends.kernel_transport import KernelCodeError, KernelConnection, LocalKernel
from nbsage.backends.staging import channel_options, stage_channel
from nbsage.runtime.layout import JobRoot
from nbsage.store.artifacts import is_local

PIPE_SOURCES = ".nbsage-pipe"  # input/<this>/<channel>: Pipe channels' objects, fed into FIFOs there


def kernel_reads(uri: str, transfer: str) -> bool:
    """Whether the kernel reads this channel itself: a URL both sides reach (not a path, not memory://)."""
    return transfer == "auto" and not is_local(uri) and not uri.startswith("memory://")


def pack_job_root(root: JobRoot, archive: Path) -> Path:
    """input/ and code/ of the root as one tar.gz (FastFile links become the files they point to)."""
    with tarfile.open(archive, "w:gz", compresslevel=1, dereference=True) as tar:
        for part in (root.input_dir, root.code_dir):
            if part.exists():
                tar.add(part, arcname=part.name)
    return archive


def checkpoint_call(conn: KernelConnection, function: str, *args) -> dict:
    """nbsage.backends.checkpoints.<function>(*args) in the kernel; its JSON answer, decoded."""
    return conn.call("nbsage.backends.checkpoints", function, *args)


def start_checkpoints(conn: KernelConnection, request, remote_root: str, transfer: str, sink):
    """CheckpointConfig on the kernel place: the kernel restores the checkpoints into its job root and
    mirrors them while the runtime runs, where it reaches the URI (a URL both sides reach, or any
    URI when the kernel runs on this machine). Returns the URI, None (no sync) or False (failed)."""
    if request.checkpoint is None:
        return None
    uri = request.checkpoint.uri
    if not (kernel_reads(uri, transfer) or (isinstance(conn, LocalKernel) and not uri.startswith("memory://"))):
        sink.write(f"Checkpoints are not synced with {uri}: the kernel cannot reach it (a path or memory:// "
                   "URI and a kernel on another machine)")
        return None
    interval = float(os.environ.get("NBSAGE_CHECKPOINT_SYNC_SECONDS", "1"))
    try:
        result = checkpoint_call(conn, "kernel_start", remote_root, uri, request.checkpoint.local_path, interval)
    except KernelCodeError as e:
        sink.write(f"The kernel could not restore the checkpoints from {uri}: {e}")
        return False
    for line in result.get("log", []):
        sink.write(line)
    return uri


def stage_pipe_sources(root: JobRoot, request: dict, here: list[dict], remote_root: str) -> dict | None:
    """Pipe channels: their objects travel as files; the kernel's side feeds them into the FIFOs.

    Returns the request the remote PipeFeeder reads (None without Pipe channels): Pipe channels
    staged here point at their copies in the remote job root; those the kernel reads keep their URL.
    """
    pipe = [ch for ch in request["InputDataConfig"] if channel_options(ch, request)["input_mode"] == "Pipe"]
    if not pipe:
        return None
    pipe_request = copy.deepcopy(request)
    here_names = {ch["ChannelName"] for ch in here}
    for ch in pipe_request["InputDataConfig"]:
        name = ch["ChannelName"]
        if name not in here_names or channel_options(ch, request)["input_mode"] != "Pipe":
            continue
        s3 = ch["DataSource"]["S3DataSource"]
        # the objects as stored, every one: the feeder there shuffles, shards and gunzips per epoch
        stage_channel(s3["S3Uri"], root.input_dir / PIPE_SOURCES / name, name, input_mode="File",
                      s3_data_type=s3.get("S3DataType", "S3Prefix"))
        s3["S3Uri"] = str(Path(remote_root) / "input" / PIPE_SOURCES / name)
        s3["S3DataType"] = "S3Prefix"
    return pipe_request
