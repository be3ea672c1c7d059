"""The process that looks after one job on the dask place (see nbsage.backends.dask).

Client side (`supervise`): connect to the scheduler (or start a LocalCluster), wait for one worker
per instance, pick them (workers with a GPU for a GPU instance type), choose MASTER_ADDR (worker
0's address) and a port free there, and submit `run_host_on_worker` for each host, pinned to its
worker. The hosts' lines arrive as Dask events on a topic of the job's own; the job ends as a
multi_host.HostGroup decides. A stop or MaxRuntimeInSeconds sets a Dask Event that every host
watches; a worker that leaves the cluster mid-job fails the job with that reason — or, under
managed spot, interrupts it, as a host's runtime killed by a signal does: every host is stopped,
and after the wait for capacity the job waits for enough workers again (a LocalCluster's nanny
restarts the lost one), picks them and runs every host anew; each host restores the checkpoints
from CheckpointConfig.S3Uri on its worker (an s3:// URL, or a path the workers see).

Worker side (`run_host_on_worker`): multi_host.run_host in a folder of the worker's local
directory, lines sent back in batches; returns the exit status and, from algo-1, the archives.
The runtime is also stopped when the task is released (the supervisor went away).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
import uuid
from pathlib import Path

from nbsage.backends.base import supervisor_main
from nbsage.backends.lifecycle import JobLifecycle, client_error, described, internal_error
from nbsage.backends.multi_host import HostGroup, HostResult, host_threads, rank_environment, run_host
from nbsage.runtime.layout import JobRoot
from nbsage.store import Stores
from nbsage.store.requests import TrainingRequest, request_of

# how long a job waits for the cluster to have one worker per instance
WORKER_WAIT_SECONDS = float(os.environ.get("NBSAGE_DASK_WORKER_WAIT_SECONDS", "60"))
_LINE_BATCH_SECONDS = 0.1


# ---- worker side --------------------------------------------------------------------------------


def _free_port_here(addr: str) -> int:
    from nbsage.backends.multi_host import free_port
    return free_port(addr)


def _unpack(data: bytes, dest: Path) -> str:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    entries = list(dest.iterdir())
    return str(entries[0] if len(entries) == 1 and entries[0].is_file() else dest)


def run_host_on_worker(job_name: str, request: dict, index: int, rank_env: dict, code: bytes | None,
                       stop_event: str, topic: str) -> dict:
    """One host of a job, run on this Dask worker; returns {"host", "rc", "failure", "lines", "model", "output"}."""
    from distributed import Event, get_client, get_worker
    worker = get_worker()
    key = worker.get_current_task()
    hosts = json.loads(rank_env["SM_HOSTS"])
    host = hosts[index]
    base = Path(worker.local_directory) / "nbsage-jobs" / job_name / host
    shutil.rmtree(base, ignore_errors=True)
    root = JobRoot(base / "opt_ml")
    code_source = _unpack(code, base / "source") if code else None

    pending: list[str] = []
    sent = [0]
    lock = threading.Lock()
    done = threading.Event()

    def send() -> None:
        with lock:
            batch, pending[:] = list(pending), []
        if batch:
            worker.log_event(topic, {"host": host, "lines": batch})
            sent[0] += len(batch)

    def pump() -> None:
        while not done.wait(_LINE_BATCH_SECONDS):
            send()

    def on_line(text: str) -> None:
        with lock:
            pending.append(text.rstrip("\n"))

    threading.Thread(target=pump, daemon=True, name=f"nbsage-lines-{host}").start()
    stop = Event(stop_event, client=get_client())  # made here: other threads have no worker context

    def should_stop(timeout: float) -> bool:
        task = worker.state.tasks.get(key)
        if task is None or task.state in ("cancelled", "released", "forgotten"):
            return True  # the supervisor let go of this job
        try:
            return stop.wait(timeout) if timeout else stop.is_set()
        except (OSError, TimeoutError):  # the scheduler is gone: nobody is left to report this job to
            return True

    env = dict(os.environ, TRAINING_JOB_NAME=job_name, PYTHONUNBUFFERED="1")
    env.update(TrainingRequest.from_dict(request).environment)
    env.update(rank_env)
    try:
        result = run_host(request, index, root, env, on_line, should_stop, code_source=code_source,
                          on_staged=lambda: worker.log_event(topic, {"host": host, "staged": True}))
        if result.failure and result.rc is None and "does not exist" in result.failure:
            result.failure += (f" on Dask worker {worker.address} (the workers read a Dask job's channels: give "
                               "s3:// or other URLs, or paths every worker sees)")
        out = {"host": host, "rc": result.rc, "failure": result.failure, "stopped": result.stopped,
               "model": None, "output": None}
        if index == 0 and (result.ok or result.stopped):  # a stopped host may have saved its model
            out["model"] = root.model_archive.read_bytes() if root.model_archive.exists() else None
            out["output"] = root.output_archive.read_bytes() if root.output_archive.exists() else None
    finally:
        done.set()
        send()
        shutil.rmtree(base, ignore_errors=True)
    out["lines"] = sent[0]
    return out


# ---- client side --------------------------------------------------------------------------------


def _pack(source: str) -> bytes:
    """The script's source (a folder or one file) as tar.gz bytes, shipped to every worker."""
    src = Path(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def skip(info):
            parts = Path(info.name).parts
            return None if any(p in (".git", "__pycache__", ".ipynb_checkpoints") for p in parts) else info
        if src.is_dir():
            for child in sorted(src.iterdir()):
                tar.add(child, arcname=child.name, filter=skip)
        else:
            tar.add(src, arcname=src.name)
    return buffer.getvalue()


def _busy(info: dict) -> int:
    """Tasks a worker is running or holding, from scheduler_info."""
    counts = (info.get("metrics") or {}).get("task_counts") or {}
    return sum(counts.get(state, 0) for state in ("executing", "ready", "waiting", "constrained"))


def _host_of(address: str) -> str:
    """tcp://10.0.0.5:4321 -> 10.0.0.5 (inproc:// and IPv6 brackets handled)."""
    hostport = address.split("://", 1)[-1]
    host = hostport.rsplit(":", 1)[0]
    return host.strip("[]") or "127.0.0.1"


class _NoWorkers(Exception):
    """The cluster has not the workers the job needs (the reason, ready for FailureReason)."""


class _DaskHosts:
    """The hosts of one job on a Dask cluster, as its supervisor runs them."""

    def __init__(self, client, stores: Stores, job: dict, request: TrainingRequest):
        self.client, self.store, self.job_name, self.request = client, stores.store, job["name"], request
        self.root = JobRoot(job["root"])
        self.life = JobLifecycle(self.store, self.job_name, request.kind)
        self.stop_wanted = threading.Event()
        self.group = HostGroup(stores, self.job_name, request, stop_hosts=self.stop_wanted.set)
        self._new_names()
        self.received: dict[str, int] = {}
        self.results: dict[str, dict] = {}

    def _new_names(self) -> None:
        """A topic and a stop Event of the attempt's own: a late line or a stop of the last attempt stays there."""
        token = uuid.uuid4().hex[:10]
        self.topic = f"nbsage-{self.job_name}-{token}"
        self.event_name = f"nbsage-stop-{self.job_name}-{token}"

    def on_event(self, event) -> None:
        _, msg = event
        host = msg.get("host")
        if msg.get("staged"):
            self.group.staged(host)
        for line in msg.get("lines", ()):
            self.group.line(host, line)
        self.received[host] = self.received.get(host, 0) + len(msg.get("lines", ()))

    def workers(self) -> dict:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def wait_for_workers(self) -> dict | None:
        needed = len(self.group.hosts)
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        told = -1
        while True:
            workers = self.workers()
            if len(workers) >= needed:
                return workers
            if len(workers) != told:
                told = len(workers)
                self.group.sink.write(f"Dask place: waiting for {needed} workers ({told} connected)")
                self.group.sink.flush()
            if self.stop_wanted.is_set() or time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def run(self, where: str) -> int:
        try:
            return self._run(where)
        except (OSError, TimeoutError) as e:  # CommClosedError is an OSError
            if self.stop_wanted.is_set():
                return self.life.stopped()
            return self.life.failed(internal_error(f"lost the Dask cluster at {where} during the job: {described(e)}"))
        finally:
            self.group.sink.close()  # every line written reaches the store, on every way out

    def _run(self, where: str) -> int:
        hosts = self.group.hosts
        workers = self.wait_for_workers()
        if self.stop_wanted.is_set():
            return self.life.stopped_before_start()
        if workers is None:
            return self.life.failed(self._too_few(where))
        source = self.request.source_dir
        code = _pack(source) if source and Path(source).exists() else None
        self.group.begin()
        first = [workers]

        def run_hosts() -> None:  # one attempt; a restart under managed spot waits for the workers again
            self.stop_wanted.clear()
            if self.group.stopping.is_set():
                self.stop_wanted.set()
            found = first.pop() if first else self.wait_for_workers()
            if found is None and self.group.stop_requested.is_set():
                return  # stopped while waiting for the workers of a restart
            if found is None:
                raise _NoWorkers(self._too_few(where))
            self._run_hosts(where, found, code)

        try:
            self.group.run(run_hosts)
        except _NoWorkers as e:
            return self.life.failed(str(e))
        master = self.results.get(hosts[0]) or {}
        self.root.output_dir.mkdir(parents=True, exist_ok=True)
        for name, path in (("model", self.root.model_archive), ("output", self.root.output_archive)):
            if master.get(name) is not None:
                path.write_bytes(master[name])
        return self.group.finish(self.root)

    def _too_few(self, where: str) -> str:
        hosts = self.group.hosts
        return client_error(f"the Dask cluster at {where} has {len(self.workers())} worker(s) and the job "
                            f"asks for {len(hosts)} instances, one worker each (waited {WORKER_WAIT_SECONDS:g} s); "
                            "add workers or lower instance_count")

    def _run_hosts(self, where: str, workers: dict, code: bytes | None) -> None:
        """Every host on a worker of its own, until each has finished (one attempt)."""
        from distributed import Event
        hosts = self.group.hosts
        self._new_names()
        self.received = {}
        self.results = {}
        chosen = self._choose_workers(where, workers)
        master_addr = _host_of(chosen[0])
        port = self.client.run(_free_port_here, master_addr, workers=[chosen[0]])[chosen[0]]
        stop_event = Event(self.event_name, client=self.client)
        self.client.subscribe_topic(self.topic, self.on_event)
        self.group.sink.write(f"Dask place: {', '.join(f'{h} on worker {w}' for h, w in zip(hosts, chosen))} of {where}")
        futures = {}
        for i, (host, worker) in enumerate(zip(hosts, chosen)):
            env = rank_environment(hosts, i, master_addr, port, workers[worker].get("nthreads") or 1)
            futures[host] = self.client.submit(
                run_host_on_worker, self.job_name, self.request.to_dict(), i, env, code, self.event_name, self.topic,
                key=f"nbsage-{self.job_name}-{host}-{uuid.uuid4().hex[:8]}", workers=[worker],
                allow_other_workers=False, pure=False, retries=0)
        if self.store.get_job(self.job_name)["stop_requested"]:
            self.group.request_stop()
        self._follow(futures, dict(zip(hosts, chosen)), stop_event)
        self.client.unsubscribe_topic(self.topic)

    def _choose_workers(self, where: str, workers: dict) -> list[str]:
        """One worker per host, idle ones first (a worker runs one host of one job at a time: the
        runtime is its task), with a GPU for a GPU instance type."""
        from nbsage.runtime.environment import is_gpu_instance_type
        hosts = self.group.hosts
        candidates = sorted(workers, key=lambda w: (_busy(workers[w]), w))
        instance_type = self.request.instance_type
        if is_gpu_instance_type(instance_type):
            from nbsage.runtime.environment import count_gpus
            gpus = self.client.run(count_gpus)
            candidates = [w for w in candidates if gpus.get(w)]
            if len(candidates) < len(hosts):
                raise _NoWorkers(client_error(f"instance type {instance_type!r} asks for a GPU on each of {len(hosts)} "
                                              f"instances and {len(candidates)} worker(s) of the Dask cluster at "
                                              f"{where} have one"))
        return candidates[:len(hosts)]

    def _follow(self, futures: dict, where_of: dict, stop_event) -> None:
        """Until every host has finished: hand a stop on to the hosts, record each host's end, and
        end a host whose worker left the cluster."""
        from distributed import wait
        stop_sent = False
        last_check = 0.0
        while len(self.group.results) < len(futures):
            pending = [f for h, f in futures.items() if h not in self.group.results]
            try:
                wait(pending, timeout=0.25, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
            if self.stop_wanted.is_set() and not stop_sent:
                stop_event.set()
                stop_sent = True
            for host, future in futures.items():
                if host not in self.group.results and future.done():
                    self._host_done(host, future, where_of[host])
            if time.monotonic() - last_check >= 0.5:
                last_check = time.monotonic()
                alive = set(self.workers())
                for host, worker in where_of.items():
                    if host not in self.group.results and worker not in alive:
                        futures[host].cancel()
                        self.group.finished(HostResult(
                            host, None, internal_error(f"the Dask worker {worker} that ran {host} left the "
                                                       "cluster during the job (killed, or out of memory?)"), lost=True))
        if self.stop_wanted.is_set() and not stop_sent:
            stop_event.set()

    def _host_done(self, host: str, future, worker: str) -> None:
        try:
            out = future.result()
        except Exception as e:  # the task itself broke (nbsage missing on the worker, ...)
            self.group.finished(HostResult(host, None, internal_error(f"host {host} on Dask worker {worker}: "
                                                                      f"{described(e)}")))
            return
        self._wait_for_lines(host, out["lines"])
        self.results[host] = out
        self.group.finished(HostResult(host, out["rc"], out["failure"], stopped=bool(out.get("stopped"))))

    def _wait_for_lines(self, host: str, count: int, timeout: float = 5.0) -> None:
        """Events and results travel separately: let the host's last lines arrive before its end is recorded."""
        deadline = time.monotonic() + timeout
        while self.received.get(host, 0) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def supervise(job_name: str, scheduler: str | None = None, n_workers: int | None = None,
              threads_per_worker: int | None = None) -> int:
    stores = Stores.from_environment()
    store = stores.store
    job = store.get_job(job_name)
    request = request_of(job)
    count = request.instance_count
    stopping = threading.Event()
    hosts_holder: dict = {}

    def on_sigterm(signum, frame):
        stopping.set()
        if "hosts" in hosts_holder:
            hosts_holder["hosts"].group.request_stop()

    signal.signal(signal.SIGTERM, on_sigterm)
    from distributed import Client, LocalCluster
    cluster = None
    if scheduler:
        where = scheduler
        store.add_logs(job_name, [(time.time(), f"Dask place: connecting to the scheduler at {scheduler}")])
    else:
        n_workers = n_workers or count
        where = f"a LocalCluster of {n_workers} workers"
        store.add_logs(job_name, [(time.time(), f"Dask place: starting {where}")])
    try:
        if scheduler:
            client = Client(scheduler, timeout=30)
        else:
            cluster = LocalCluster(n_workers=n_workers, processes=True, dashboard_address="127.0.0.1:0",
                                   threads_per_worker=threads_per_worker or host_threads(n_workers),
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
            where = f"{where} ({cluster.scheduler_address})"
    except (OSError, TimeoutError) as e:
        JobLifecycle(store, job_name, request.kind).failed_client(
            f"cannot reach the Dask scheduler at {where}: {e}", "The Dask cluster could not be reached")
        return 1
    if request.kind == "transform":  # input objects over the workers (nbsage.transform.dask_place)
        from nbsage.transform.dask_place import supervise as supervise_transform
        try:
            return supervise_transform(client, stores, job, request, where)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    try:
        hosts = _DaskHosts(client, stores, job, request)
        hosts_holder["hosts"] = hosts
        if stopping.is_set() or store.get_job(job_name)["stop_requested"]:
            hosts.stop_wanted.set()
        return hosts.run(where)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsage.backends.dask_supervisor")
    parser.add_argument("job_name")
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--n-workers", type=int, default=None)
    parser.add_argument("--threads-per-worker", type=int, default=None)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    # by its module name, not __main__: the workers import run_host_on_worker from nbsage
    from nbsage.backends import dask_supervisor
    return supervisor_main(dask_supervisor.supervise, args.job_name, args.scheduler, args.n_workers,
                           args.threads_per_worker)  # never leaves the job InProgress


if __name__ == "__main__":
    sys.exit(main())
