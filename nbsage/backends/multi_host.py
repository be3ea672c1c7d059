"""Several hosts of one training job: one runtime process per host, each with its own job root.

SageMaker runs a job with InstanceCount N as N containers, algo-1 ... algo-N. nbsage runs N
`python -m nbsage.runtime train --root ROOT` processes. Host i's root holds its own
resourceconfig.json (current_host algo-i; hosts algo-1 ... algo-N), its share of every
ShardedByS3Key channel (staging.prepare_root with host_index=i), its Pipe-mode FIFOs and the
script's code; its process gets the variables of `rank_environment`: SM_HOSTS, SM_CURRENT_HOST and
torchrun's MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE / LOCAL_RANK, plus OMP_NUM_THREADS (the
host's share of the cores: N processes that each spin every core run a hundred times slower).
The algorithms join the hosts with nbsage.algorithms.distributed.

Where the processes run is the place's business: the local place runs them on this machine
(`supervise_local`, used by the local supervisor when InstanceCount > 1), the dask place on Dask
workers (nbsage.backends.dask_supervisor). Both run each host with `run_host` and end the job with
a `HostGroup`:

- logs: each line is stored as `[algo-i] line`. The first host's `#metric` / `#progress` lines are
  stored as they are, so the job's metrics and progress are the master's (the algorithms report
  values already reduced over all hosts); other hosts' are kept as prefixed log lines.
- artifacts: model.tar.gz and output.tar.gz are algo-1's, the host that saves the model.
- the end: the first host to fail fails the job with its reason, naming the host, and the other
  hosts are stopped; a stop or MaxRuntimeInSeconds stops every host.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from nbsage.backends.log_stream import LogSink
from nbsage.backends.staging import collect, host_count, prepare_root
from nbsage.errors import NBSageError
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.metrics import METRIC_LINE, PROGRESS_LINE


def host_names(count: int) -> list[str]:
    """algo-1 ... algo-N, the names resourceconfig.json gives the hosts."""
    return [f"algo-{i + 1}" for i in range(count)]


def free_port(addr: str = "127.0.0.1") -> int:
    """A TCP port free on `addr` now (the master's rendezvous port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def rank_environment(hosts: list[str], index: int, master_addr: str, master_port: int,
                     threads: int | None = None) -> dict[str, str]:
    """The variables host `index` runs with: SM_HOSTS/SM_CURRENT_HOST and torchrun's rank variables.

    Hosts are sorted lexicographically, as in resourceconfig.json, and a host's rank is its place
    in that order (the toolkit's node rank): algo-1 is rank 0, and with ten hosts algo-10 is rank 1.
    """
    ordered = sorted(hosts)
    rank = str(ordered.index(hosts[index]))
    env = {
        "SM_HOSTS": json.dumps(ordered), "SM_CURRENT_HOST": hosts[index],
        "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
        "RANK": rank, "WORLD_SIZE": str(len(hosts)), "NODE_RANK": rank, "GROUP_RANK": rank,
        "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def host_root(root: JobRoot, host: str) -> JobRoot:
    """Host `host`'s job root on this machine: the job's root for algo-1, a sibling for the others."""
    return root if host == "algo-1" else JobRoot(root.path.with_name(f"{root.path.name}-{host}"))


def log_line(host: str, line: str, master: bool) -> str:
    """How one host's line is stored: prefixed, except the master's metric and progress lines."""
    line = line.rstrip("\n")
    if master and (METRIC_LINE.match(line) or PROGRESS_LINE.match(line)):
        return line
    return f"[{host}] {line}"


def _with_host(reason: str, host: str) -> str:
    """'AlgorithmError: x' -> 'AlgorithmError: algo-2: x' (the prefix stays first, as SageMaker's)."""
    m = re.match(r"^([A-Za-z]+Error|Stopped|MaxRuntimeExceeded):\s*", reason)
    return f"{m.group(1)}: {host}: {reason[m.end():]}" if m else f"{host}: {reason}"


@dataclass
class HostResult:
    """How one host ended."""

    host: str
    rc: int | None  # None: the runtime never ran (staging failed, stopped before, the worker was lost)
    failure: str | None = None
    pid: int | None = None
    ended: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run_host(request: dict, index: int, root: JobRoot, env: dict, on_line: Callable[[str], None],
             should_stop: Callable[[float], bool], code_source: str | None = None,
             on_staged: Callable[[], None] | None = None, on_started: Callable[[int], None] | None = None,
             ) -> HostResult:
    """Stage host `index`'s root, run the runtime on it, stream its lines to on_line; return how it ended.

    `should_stop(timeout)` is polled while the runtime runs (it may block up to `timeout` seconds);
    once it returns True the runtime is stopped (SIGTERM, SIGKILL after the grace period).
    """
    from nbsage.backends.local_supervisor import _die_with_parent, _signal_name, _terminate
    from nbsage.backends.pipe_feeder import PipeFeeder
    host = host_names(host_count(request))[index]
    try:
        prepare_root(root, request, code_source, host_index=index)
        feeder = PipeFeeder(root, request, log=on_line)
    except (NBSageError, OSError) as e:
        return HostResult(host, None, f"ClientError: {e}")
    if on_staged:
        on_staged()
    if should_stop(0):
        return HostResult(host, None, "Stopped before training started")
    feeder.start()
    proc = subprocess.Popen([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(root.path), start_new_session=True, preexec_fn=_die_with_parent)
    if on_started:
        on_started(proc.pid)

    def watch():
        while proc.poll() is None:
            if should_stop(0.25):
                _terminate(proc)
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True, name=f"nbsage-stop-{host}").start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        on_line(raw.decode("utf-8", errors="replace"))
    rc = proc.wait()
    feeder.stop()
    failure = None
    if rc < 0:
        failure = (f"AlgorithmError: the training process was killed by {_signal_name(rc)}"
                   + (" (out of memory?)" if rc == -signal.SIGKILL else ""))
    elif rc != 0:
        failure = root.failure_reason() or f"AlgorithmError: the training process exited with code {rc}"
    return HostResult(host, rc, failure, proc.pid)


class HostGroup:
    """The hosts of one job as its supervisor sees them: their lines, their ends, the job's final status.

    A place calls `begin`, then for each host `line`, `staged` and `finished` as they happen (from
    any thread), waits until every host finished (`wait`), and calls `finish` with the root that
    holds algo-1's archives. `stop_hosts` is the place's hook that stops every host still running.
    """

    def __init__(self, session, job_name: str, request: dict, stop_hosts: Callable[[], None]):
        self.session, self.store, self.job_name, self.request = session, session.store, job_name, request
        self.hosts = host_names(host_count(request))
        self.sink = LogSink(self.store, job_name, request.get("AlgorithmSpecification", {}).get("MetricDefinitions"))
        self._stop_hosts = stop_hosts
        self._lock = threading.Lock()
        self._staged: set[str] = set()
        self.results: dict[str, HostResult] = {}
        self.first_failure: HostResult | None = None
        self.stopping = threading.Event()  # a stop, MaxRuntime or a failed host: every host is being stopped
        self.stop_requested = threading.Event()
        self.exceeded = threading.Event()
        self.all_done = threading.Event()
        self._timer: threading.Timer | None = None

    @property
    def max_runtime(self):
        return self.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")

    def begin(self, message: str = "Downloading input data") -> None:
        self.store.set_status(self.job_name, "InProgress", "Downloading", message)
        self.store.update_job(self.job_name, start_time=time.time())
        if self.max_runtime:
            self._timer = threading.Timer(float(self.max_runtime), self._exceed)
            self._timer.daemon = True
            self._timer.start()

    def _exceed(self) -> None:
        if not self.all_done.is_set():
            self.exceeded.set()
            self.sink.write(f"MaxRuntimeInSeconds ({self.max_runtime}) exceeded: stopping the job")
            self.stop()

    def request_stop(self) -> None:
        """StopTrainingJob (SIGTERM to the supervisor)."""
        self.stop_requested.set()
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self._stop_hosts()

    def line(self, host: str, text: str) -> None:
        if len(self.hosts) == 1:  # one host (the dask place with one instance): lines as the local place stores them
            self.sink.write(text)
        else:
            self.sink.write(log_line(host, text, host == self.hosts[0]))

    def staged(self, host: str) -> None:
        with self._lock:
            self._staged.add(host)
            everyone = len(self._staged) == len(self.hosts)
        if everyone and not self.stopping.is_set():
            self.store.set_status(self.job_name, "InProgress", "Training",
                                  "Training image download completed. Training in progress.")

    def finished(self, result: HostResult) -> None:
        with self._lock:
            self.results[result.host] = result
            failed_first = not result.ok and self.first_failure is None and not self.stopping.is_set()
            if failed_first:
                self.first_failure = result
            done = len(self.results) == len(self.hosts)
        if failed_first:
            self.sink.write(f"[{result.host}] failed: {result.failure}; stopping the other hosts")
            self.stop()
        if done:
            self.all_done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.all_done.wait(timeout)

    def finish(self, master_root: JobRoot) -> int:
        """Set the job's final status from the hosts' results; upload algo-1's artifacts when all succeeded."""
        if self._timer:
            self._timer.cancel()
        self.sink.close()
        store, job = self.store, self.job_name
        if self.exceeded.is_set():
            store.set_status(job, "Stopped", "MaxRuntimeExceeded",
                             f"Training job runtime exceeded MaxRuntimeInSeconds provided ({self.max_runtime} s)",
                             failure_reason=f"MaxRuntimeExceeded: the job ran longer than {self.max_runtime} s")
            return 0
        if self.first_failure is not None:
            f = self.first_failure
            store.set_status(job, "Failed", "Failed", f"Training job failed on {f.host}",
                             failure_reason=_with_host(f.failure or "AlgorithmError: the host failed", f.host))
            return 0
        if self.stop_requested.is_set() or store.get_job(job)["stop_requested"]:
            store.set_status(job, "Stopped", "Stopped", "Training job stopped")
            return 0
        missing = [h for h in self.hosts if h not in self.results or not self.results[h].ok]
        if missing:  # stopped for no reason recorded above: still never Completed
            first = self.results.get(missing[0])
            reason = (first.failure if first else None) or "InternalServerError: the host did not finish"
            store.set_status(job, "Failed", "Failed", f"Training job failed on {missing[0]}",
                             failure_reason=_with_host(reason, missing[0]))
            return 0
        store.set_status(job, "InProgress", "Uploading", "Uploading generated training model")
        try:
            model, output = collect(master_root, self.request, self.session.artifacts)
        except Exception as e:
            store.set_status(job, "Failed", "Failed", "Uploading failed",
                             failure_reason=f"InternalServerError: uploading artifacts failed: {e}")
            return 1
        store.set_status(job, "Completed", "Completed", "Training job completed",
                         model_artifacts=model, output_artifacts=output)
        return 0


def host_threads(hosts: int, cpus: int | None = None) -> int:
    """Threads for each of `hosts` processes sharing `cpus` cores."""
    return max(1, (cpus or os.cpu_count() or 1) // hosts)


def _gpu_devices(request: dict, hosts: int, index: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for one of several hosts on this machine: its own GPUs when there are enough."""
    from nbsage.runtime.environment import count_gpus, is_gpu_instance_type
    if not is_gpu_instance_type(request.get("ResourceConfig", {}).get("InstanceType")):
        return None
    per_host = count_gpus() // hosts
    if per_host < 1:
        return None  # fewer GPUs than hosts: they share them
    return ",".join(str(i) for i in range(index * per_host, (index + 1) * per_host))


def supervise_local(session, job: dict) -> int:
    """The local place with InstanceCount > 1: N runtime processes on this machine, one thread each."""
    request = json.loads(job["request"])
    job_name = job["name"]
    root = JobRoot(job["root"])
    stop = threading.Event()
    group = HostGroup(session, job_name, request, stop_hosts=stop.set)
    signal.signal(signal.SIGTERM, lambda signum, frame: group.request_stop())
    hosts = group.hosts
    port = free_port()
    threads = host_threads(len(hosts))
    base = dict(os.environ, TRAINING_JOB_NAME=job_name, PYTHONUNBUFFERED="1")
    base.update(request.get("Environment") or {})
    group.begin()

    def run(index: int) -> None:
        host = hosts[index]
        env = dict(base, **rank_environment(hosts, index, "127.0.0.1", port, threads))
        devices = _gpu_devices(request, len(hosts), index)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        try:
            result = run_host(
                request, index, host_root(root, host), env, on_line=lambda text: group.line(host, text),
                should_stop=lambda timeout: stop.wait(timeout), code_source=request.get("nbsage:SourceDir"),
                on_staged=lambda: group.staged(host),
                on_started=(lambda pid: session.store.update_job(job_name, runtime_pid=pid)) if index == 0 else None)
        except Exception as e:  # never leave a host unaccounted for
            result = HostResult(host, None, f"InternalServerError: {type(e).__name__}: {e}")
        group.finished(result)

    workers = [threading.Thread(target=run, args=(i,), name=f"nbsage-{hosts[i]}") for i in range(len(hosts))]
    for t in workers:
        t.start()
    if session.store.get_job(job_name)["stop_requested"]:
        group.request_stop()
    while not group.wait(0.5):
        pass
    for t in workers:
        t.join()
    return group.finish(root)
