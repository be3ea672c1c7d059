"""The kernel place's remote half: runs inside the Jupyter kernel that runs the job.

The notebook's side (nbsage.backends.kernel_supervisor) sends short calls into the kernel, e.g.
`__import__('nbsage.backends.kernel_agent', fromlist=['_']).receive('job')` (built by
nbsage.backends.kernel_transport.call_code); each
returns a JSON string. Between them this module keeps the job's state, so nothing is added to the
kernel's user namespace. It needs only nbsage on the remote host; it never opens the notebook's
store: the job root arrives as a tar stream in chunks, log lines go back as the kernel's stdout
(stream messages), and model.tar.gz/output.tar.gz go back in chunks — or straight to the artifact
store when that is a URL this side reaches too.

The job root lives under `jobs_dir()` of the kernel's host (a kernel gateway passes only KERNEL_*
variables to its kernels, so `KERNEL_NBSAGE_JOBS_DIR` is the one to set from the notebook).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
import tarfile
from pathlib import Path

from nbsage.backends.runtime_process import RuntimeRun, max_runtime_limit, terminate_group

_jobs: dict[str, dict] = {}


def jobs_dir() -> Path:
    """Where job roots go on the kernel's side.

    $KERNEL_NBSAGE_JOBS_DIR, else $NBSAGE_HOME/kernel-jobs, else .nbsage-kernel-jobs in the kernel's
    working directory (a kernel gateway starts kernels in its own folder, without HOME), else
    ~/.nbsage/kernel-jobs.
    """
    base = os.environ.get("KERNEL_NBSAGE_JOBS_DIR")
    if base:
        return Path(base).expanduser()
    if os.environ.get("NBSAGE_HOME"):
        return Path(os.environ["NBSAGE_HOME"]).expanduser() / "kernel-jobs"
    cwd = Path.cwd()
    if os.access(cwd, os.W_OK) and cwd != Path(cwd.anchor):
        return cwd / ".nbsage-kernel-jobs"
    return Path("~/.nbsage").expanduser() / "kernel-jobs"


def _reply(**values) -> str:
    return json.dumps(values)


def _job(name: str) -> dict:
    if name not in _jobs:
        raise RuntimeError(f"job {name!r} was not opened in this kernel (it may have restarted)")
    return _jobs[name]


def describe() -> str:
    """CPU count, GPU count and memory of the kernel's host."""
    from nbsage.runtime.environment import count_gpus
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = None
    import platform
    return _reply(cpus=os.cpu_count(), gpus=count_gpus(), memory_gib=round(memory, 1) if memory else None,
                  host=platform.node(), python=sys.version.split()[0])


def open_job(name: str) -> str:
    """Make an empty job root for `name`; returns its path."""
    root = jobs_dir() / name / "opt_ml"
    if root.exists():
        _release_fastfile(root)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    incoming = root.parent / "incoming.tar"
    _jobs[name] = {"root": root, "incoming": incoming}
    incoming.write_bytes(b"")
    return _reply(root=str(root))


def receive(name: str, chunk: str | None = None) -> str:
    """Append one base64 chunk of the job root's tar stream: `chunk`, else the request's metadata
    "nbsage_chunk" (so that megabytes of data are not parsed as code)."""
    job = _job(name)
    if chunk is None:
        from IPython import get_ipython
        chunk = get_ipython().kernel.get_parent()["metadata"]["nbsage_chunk"]
    with open(job["incoming"], "ab") as f:
        f.write(base64.b64decode(chunk))
    return _reply(size=job["incoming"].stat().st_size)


def unpack(name: str) -> str:
    """Extract the received tar stream into the job root."""
    job = _job(name)
    with tarfile.open(job["incoming"], "r:*") as tar:
        tar.extractall(job["root"], filter="data")
    job["incoming"].unlink()
    return _reply(root=str(job["root"]))


def stage(name: str, request: str, channels: str) -> str:
    """Stage the channels this side reads itself (URLs both sides reach) into the job root."""
    from nbsage.backends.staging import channel_options, stage_channel
    from nbsage.runtime.layout import JobRoot
    request_dict = json.loads(request)
    root = JobRoot(_job(name)["root"])
    counts = {}
    for ch in request_dict.get("InputDataConfig", []):
        if ch["ChannelName"] in json.loads(channels):
            counts[ch["ChannelName"]] = stage_channel(
                ch["DataSource"]["S3DataSource"]["S3Uri"], root.channel_dir(ch["ChannelName"]), ch["ChannelName"],
                cache_dir=jobs_dir() / ".cache", log=lambda line: print(line, flush=True),
                **channel_options(ch, request_dict))
    return _reply(objects=counts)


def _release_fastfile(root: Path) -> None:
    """Unmount the FastFile mounts `stage` made under a job root (none unless staging ran here)."""
    if "nbsage.backends.staging" in sys.modules:
        from nbsage.backends.staging import release_fastfile
        release_fastfile(root)






def _print(text: str) -> None:
    """One line of the runtime's output to the kernel's stdout, which the notebook's side reads."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _ignore_interrupts() -> None:
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel restores its handler after the request
    except ValueError:
        pass  # not the main thread: nothing to ignore with


def run(name: str, environment: str = "{}", max_runtime: float | None = None, grace: float = 10.0,
        pipe_request: str | None = None, limits: str | None = None) -> str:
    """Run `python -m nbsage.runtime train --root` here, its output printed as it comes.

    An interrupt of the kernel (KeyboardInterrupt) is StopTrainingJob: SIGTERM to the runtime, SIGKILL
    after `grace` seconds. `max_runtime` is enforced here too, so a dropped connection does not
    leave a job running past it; `limits` (JSON [[seconds, name, log line], ...], nbsage.backends.spot's
    limits of this attempt: MaxRuntimeInSeconds left, MaxWaitTimeInSeconds left) replaces it. The
    first limit to expire stops the runtime and is answered as `exceeded` (its name).
    """
    from nbsage.runtime.layout import JobRoot
    job = _job(name)
    root = JobRoot(job["root"])
    env = dict(os.environ, TRAINING_JOB_NAME=name, PYTHONUNBUFFERED="1")
    env.update(json.loads(environment))
    feeder = None
    if pipe_request:
        from nbsage.backends.pipe_feeder import PipeFeeder
        feeder = PipeFeeder(root, json.loads(pipe_request), log=lambda line: print(line, flush=True))
        feeder.start()
    limit_list = json.loads(limits) if limits else [max_runtime_limit(max_runtime)] if max_runtime else []
    runtime = job["runtime"] = RuntimeRun(grace)
    stopped = False
    try:
        try:
            rc, exceeded = runtime.run("train", root.path, env, _print, limit_list)
        except KeyboardInterrupt:
            stopped, exceeded = True, runtime.exceeded
            _ignore_interrupts()  # the notebook's side repeats the interrupt until run returns
            proc = runtime.proc
            if proc is None:  # interrupted before the runtime started: nothing ran
                raise
            terminate_group(proc, grace)
            rc = proc.wait()
            for raw in proc.stdout:  # the runtime's last words ("Training stopped ...")
                _print(raw.decode("utf-8", errors="replace"))
    finally:
        if feeder is not None:
            feeder.stop()
        _release_fastfile(root.path)  # the runtime has ended: its FastFile mounts go
    return _reply(rc=rc, stopped=stopped, exceeded=exceeded, failure=root.failure_reason(),
                  model_size=root.model_archive.stat().st_size if root.model_archive.exists() else None,
                  output_size=root.output_archive.stat().st_size if root.output_archive.exists() else None)


def read(name: str, which: str, offset: int, size: int) -> str:
    """A base64 chunk of output/model.tar.gz (which='model') or output/output.tar.gz ('output')."""
    from nbsage.runtime.layout import JobRoot
    root = JobRoot(_job(name)["root"])
    path = root.model_archive if which == "model" else root.output_archive
    with open(path, "rb") as f:
        f.seek(offset)
        return _reply(data=base64.b64encode(f.read(size)).decode("ascii"))


def upload(name: str, model_uri: str | None, output_uri: str | None) -> str:
    """Write the archives straight to the artifact store (a URL this side reaches)."""
    from nbsage.runtime.layout import JobRoot
    from nbsage.store.artifacts import ArtifactStore
    root = JobRoot(_job(name)["root"])
    store = ArtifactStore(model_uri or output_uri or "")
    model = store.put_file(root.model_archive, model_uri) if model_uri and root.model_archive.exists() else None
    output = store.put_file(root.output_archive, output_uri) if output_uri and root.output_archive.exists() else None
    return _reply(model=model, output=output)


def close(name: str) -> str:
    """Remove the job root (the kernel's host keeps nothing of a finished job, as a SageMaker instance)."""
    job = _jobs.pop(name, None)
    if job is not None:
        proc = job["runtime"].proc if job.get("runtime") else None
        if proc is not None and proc.poll() is None:
            terminate_group(proc, 0)
        _release_fastfile(job["root"])
        shutil.rmtree(job["root"].parent, ignore_errors=True)
    return _reply(closed=job is not None)
