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
- checkpoints (CheckpointConfig): as on SageMaker, every host has its own checkpoint folder, and
  every host restores it from CheckpointConfig.S3Uri at its start and mirrors it there while it
  runs (`run_host`), so hosts share one URI: the master alone writes checkpoints (nbsage's
  XGBoost does) or each host writes names of its own. The URI is read and written from where the
  host runs: an s3:// (or other fsspec) URL, or a path that machine sees.
- managed spot (nbsage.backends.spot): a host whose runtime is killed by a signal (not by a stop),
  or whose Dask worker leaves, interrupts the whole job: every host is stopped, the job goes
  Interrupted → Restarting, and every host is staged again, restores the checkpoints and trains.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from nbsage.backends.lifecycle import (
    JobLifecycle,
    algorithm_error,
    client_error,
    described,
    internal_error,
    runtime_failure,
)
from nbsage.backends.log_stream import LogSink
from nbsage.backends.spot import Attempt, ManagedSpot, RestartFailed, killed_by
from nbsage.backends.staging import collect, host_count, prepare_root, releases_fastfile, stopped_model
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
    stopped: bool = False  # the place stopped the runtime (a stop, a limit, another host's end)
    lost: bool = False  # the machine that ran the host went away (a Dask worker that left)

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def taken_away(self) -> str | None:
        """Why the host's worker was taken away (killed by a signal that no stop sent, or lost), else None:
        under managed spot, an interruption."""
        if self.lost:
            return re.sub(r"^[A-Za-z]+Error:\s*", "", self.failure or f"the worker of {self.host} was lost")
        if self.rc is not None and self.rc < 0 and not self.stopped:
            return f"the worker of {self.host} was killed by {killed_by(self.rc)}"
        return None


@releases_fastfile  # the host's FastFile mounts go when its runtime has ended (or never started)
def run_host(request: dict, index: int, root: JobRoot, env: dict, on_line: Callable[[str], None],
             should_stop: Callable[[float], bool], code_source: str | None = None,
             on_staged: Callable[[], None] | None = None, on_started: Callable[[int], None] | None = None,
             ) -> HostResult:
    """Stage host `index`'s root, run the runtime on it, stream its lines to on_line; return how it ended.

    `should_stop(timeout)` is polled while the runtime runs (it may block up to `timeout` seconds);
    once it returns True the runtime is stopped (SIGTERM, SIGKILL after the grace period).
    """
    from nbsage.backends.checkpoints import checkpoint_sync_for
    from nbsage.backends.pipe_feeder import PipeFeeder
    from nbsage.backends.runtime_process import start_runtime, terminate_group
    host = host_names(host_count(request))[index]
    try:
        prepare_root(root, request, code_source, host_index=index, log=on_line)
        feeder = PipeFeeder(root, request, log=on_line)
    except (NBSageError, OSError) as e:
        return HostResult(host, None, client_error(e))
    # CheckpointConfig: this host's checkpoint folder, restored from the URI, then mirrored to it
    sync = checkpoint_sync_for(request, root, log=on_line)
    if sync:
        try:
            sync.restore()
        except Exception as e:  # the URI cannot be read from where this host runs
            return HostResult(host, None, client_error(f"restoring checkpoints from {sync.url} failed: {described(e)}"))
    if on_staged:
        on_staged()
    if should_stop(0):
        return HostResult(host, None, "Stopped before training started")
    if sync:
        sync.start()
    feeder.start()
    proc = start_runtime("train", root.path, env)
    if on_started:
        on_started(proc.pid)

    terminated = threading.Event()

    def watch():
        while proc.poll() is None:
            if should_stop(0.25):
                terminated.set()
                terminate_group(proc)
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True, name=f"nbsage-stop-{host}").start()
    assert proc.stdout is not None
    for raw in proc.stdout:
        on_line(raw.decode("utf-8", errors="replace"))
    rc = proc.wait()
    feeder.stop()
    if sync:
        try:
            sync.stop()
        except Exception as e:  # the checkpoints are not the model: the host goes on
            on_line(f"Checkpoint upload to {sync.url} failed: {described(e)}")
    failure = runtime_failure(rc, root.failure_reason()) if rc != 0 else None
    return HostResult(host, rc, failure, proc.pid, stopped=terminated.is_set())


class HostGroup:
    """The hosts of one job as its supervisor sees them: their lines, their ends, the job's final status.

    A place calls `begin`, then `run(run_hosts)`: `run_hosts()` starts every host, reports for each
    `line`, `staged` and `finished` as they happen (from any thread) and returns once every host
    finished (`wait`); under managed spot `run` calls it again after an interruption. Then the
    place calls `finish` with the root that holds algo-1's archives. `stop_hosts` is the place's
    hook that stops every host still running; `run_hosts` starts an attempt with its stop undone,
    unless `stopping` is set already.
    """

    def __init__(self, stores, job_name: str, request, stop_hosts: Callable[[], None]):
        self.stores, self.store, self.job_name, self.request = stores, stores.store, job_name, request
        self.life = JobLifecycle(self.store, job_name, request.kind)
        self.hosts = host_names(request.instance_count)
        self.sink = LogSink(self.store, job_name, request.metric_definitions)
        self._stop_hosts = stop_hosts
        self._lock = threading.Lock()
        self._staged: set[str] = set()
        self.results: dict[str, HostResult] = {}
        self.first_failure: HostResult | None = None
        self.stopping = threading.Event()  # a stop, a limit or a failed host: every host is being stopped
        self.stop_requested = threading.Event()
        self.exceeded: str | None = None  # the limit (MaxRuntimeExceeded, MaxWaitTimeExceeded) that stopped the hosts
        self.all_done = threading.Event()
        self._timers: list[threading.Timer] = []
        self.spot = ManagedSpot(self.store, job_name, request, log=self.sink.write)
        self.last: Attempt | None = None  # how the last attempt ended
        self.restart_failure: str | None = None

    def begin(self) -> None:
        self.life.downloading()
        self.spot.started = time.time()
        self.store.update_job(self.job_name, start_time=self.spot.started)

    def run(self, run_hosts: Callable[[], None], restart: Callable[[], None] | None = None) -> None:
        """Run the hosts once, or, under managed spot, again after each interruption (nbsage.backends.spot)."""
        def attempt(limits) -> Attempt:
            self._new_attempt(limits)
            run_hosts()
            for t in self._timers:
                t.cancel()
            return Attempt(exceeded=self.exceeded, interrupted=self.interruption(),
                           stopped=self.stop_requested.is_set())

        try:
            self.last = self.spot.run(attempt, restart or (lambda: None), self._stop_wanted)
        except RestartFailed as e:
            self.restart_failure = str(e)

    def _stop_wanted(self) -> bool:
        return self.stop_requested.is_set() or bool(self.store.get_job(self.job_name)["stop_requested"])

    def _new_attempt(self, limits: list[tuple[float, str, str]]) -> None:
        with self._lock:
            self._staged.clear()
            self.results = {}
            self.first_failure = None
            self.exceeded = None
            self.all_done.clear()
            self.stopping.clear()
            if self.stop_requested.is_set():
                self.stopping.set()
        self._timers = [threading.Timer(seconds, self._exceed, args=(name, message)) for seconds, name, message in limits]
        for t in self._timers:
            t.daemon = True
            t.start()

    def _exceed(self, name: str, message: str) -> None:
        if not self.all_done.is_set() and self.exceeded is None:
            self.exceeded = name
            self.sink.write(message)
            self.stop()

    def interruption(self) -> str | None:
        """Why this attempt's hosts were taken away (the first host that was), or None."""
        taken = [r for r in self.results.values() if r.taken_away]
        if not taken:
            return None
        return min(taken, key=lambda r: r.ended).taken_away

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
            self.life.training(self.spot.training_message)

    def finished(self, result: HostResult) -> None:
        with self._lock:
            self.results[result.host] = result
            failed_first = not result.ok and self.first_failure is None and not self.stopping.is_set()
            if failed_first:
                self.first_failure = result
            done = len(self.results) == len(self.hosts)
        if failed_first:
            if self.spot.enabled and result.taken_away:
                self.sink.write(f"[{result.host}] interrupted: {result.taken_away}; stopping the other hosts")
            else:
                self.sink.write(f"[{result.host}] failed: {result.failure}; stopping the other hosts")
            self.stop()
        if done:
            self.all_done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.all_done.wait(timeout)

    def finish(self, master_root: JobRoot) -> int:
        """Set the job's final status from the hosts' results; upload algo-1's artifacts when all succeeded."""
        for t in self._timers:
            t.cancel()
        self.sink.close()
        life = self.life
        self.spot.bill()
        if self.restart_failure:
            return life.failed_restarting(self.restart_failure)
        if self.last is not None and self.last.exceeded:
            return self.spot.end_exceeded(self.last.exceeded)
        stopped_while_interrupted = self.last is not None and self.last.stopped and bool(self.last.interrupted)
        if self.first_failure is not None and not (self.spot.enabled and stopped_while_interrupted):
            f = self.first_failure
            return life.failed(_with_host(f.failure or algorithm_error("the host failed"), f.host),
                               f"{life.words.noun} failed on {f.host}")
        if self.stop_requested.is_set() or self._stop_wanted():
            return life.stopped(model=stopped_model(master_root, self.request.to_dict(), self.stores.artifacts, print))
        missing = [h for h in self.hosts if h not in self.results or not self.results[h].ok]
        if missing:  # stopped for no reason recorded above: still never Completed
            first = self.results.get(missing[0])
            reason = (first.failure if first else None) or internal_error("the host did not finish")
            return life.failed(_with_host(reason, missing[0]), f"{life.words.noun} failed on {missing[0]}")
        life.uploading()
        try:
            model, output = collect(master_root, self.request.to_dict(), self.stores.artifacts)
        except Exception as e:
            life.failed_uploading(e)
            return 1
        self.spot.bill()
        return life.completed(model=model, output=output)


def host_threads(hosts: int, cpus: int | None = None) -> int:
    """Threads for each of `hosts` processes sharing `cpus` cores."""
    return max(1, (cpus or os.cpu_count() or 1) // hosts)


def _gpu_devices(request, hosts: int, index: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for one of several hosts on this machine: its own GPUs when there are enough."""
    from nbsage.runtime.environment import count_gpus, is_gpu_instance_type
    if not is_gpu_instance_type(request.instance_type):
        return None
    per_host = count_gpus() // hosts
    if per_host < 1:
        return None  # fewer GPUs than hosts: they share them
    return ",".join(str(i) for i in range(index * per_host, (index + 1) * per_host))


def supervise_local(stores, job: dict, request) -> int:
    """The local place with InstanceCount > 1: N runtime processes on this machine, one thread each."""
    job_name = job["name"]
    root = JobRoot(job["root"])
    stop = threading.Event()
    group = HostGroup(stores, job_name, request, stop_hosts=stop.set)
    signal.signal(signal.SIGTERM, lambda signum, frame: group.request_stop())
    hosts = group.hosts
    port = free_port()
    threads = host_threads(len(hosts))
    base = dict(os.environ, TRAINING_JOB_NAME=job_name, PYTHONUNBUFFERED="1")
    base.update(request.environment)
    group.begin()

    def run(index: int) -> None:
        host = hosts[index]
        env = dict(base, **rank_environment(hosts, index, "127.0.0.1", port, threads))
        devices = _gpu_devices(request, len(hosts), index)
        if devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = devices
        try:
            result = run_host(
                request.to_dict(), index, host_root(root, host), env, on_line=lambda text: group.line(host, text),
                should_stop=lambda timeout: stop.wait(timeout), code_source=request.source_dir,
                on_staged=lambda: group.staged(host),
                on_started=(lambda pid: stores.store.update_job(job_name, runtime_pid=pid)) if index == 0 else None)
        except Exception as e:  # never leave a host unaccounted for
            result = HostResult(host, None, internal_error(described(e)))
        group.finished(result)

    def run_hosts() -> None:  # one attempt: every host staged (again) and run
        stop.clear()
        if group.stopping.is_set():  # a stop that came as the attempt began
            stop.set()
        workers = [threading.Thread(target=run, args=(i,), name=f"nbsage-{hosts[i]}") for i in range(len(hosts))]
        for t in workers:
            t.start()
        if stores.store.get_job(job_name)["stop_requested"]:
            group.request_stop()
        while not group.wait(0.5):
            pass
        for t in workers:
            t.join()

    group.run(run_hosts)
    return group.finish(root)
