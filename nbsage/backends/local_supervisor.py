"""The process that looks after one job on the local place (see nbsage.backends.local)."""
from __future__ import annotations

import os
import signal
import sys
import time

from nbsage.backends.base import supervisor_main
from nbsage.backends.checkpoints import checkpoint_sync_for
from nbsage.backends.lifecycle import JobLifecycle, described
from nbsage.backends.log_stream import LogSink
from nbsage.backends.pipe_feeder import PipeFeeder
from nbsage.backends.runtime_process import RuntimeRun
from nbsage.backends.spot import Attempt, ManagedSpot, RestartFailed, killed_by
from nbsage.backends.staging import collect, prepare_root, release_fastfile, release_input, stopped_model
from nbsage.errors import NBSageError
from nbsage.runtime.layout import JobRoot
from nbsage.store import Stores
from nbsage.store.requests import request_of

_runtime = RuntimeRun()  # StopTrainingJob (SIGTERM to this process) stops it


def supervise(job_name: str) -> int:
    signal.signal(signal.SIGTERM, _runtime.stop)
    stores = Stores.from_environment()
    job = stores.store.get_job(job_name)
    request = request_of(job)
    if request.kind == "processing":  # the same supervisor, a processing job's steps
        from nbsage.backends.processing_job import supervise as supervise_processing
        return supervise_processing(stores, job, request)
    if request.kind == "transform":  # model servers on this machine (nbsage.transform.job)
        from nbsage.transform.job import supervise as supervise_transform
        return supervise_transform(stores, job, request)
    if request.is_multi_host:  # several instances: one runtime process per host
        from nbsage.backends.multi_host import supervise_local
        return supervise_local(stores, job, request)
    return _LocalJob(stores, job, request).run()


class _LocalJob:
    """One training job on one host of this machine: stage, train (again, under managed spot), upload."""

    def __init__(self, stores: Stores, job: dict, request):
        self.stores, self.store, self.name, self.request = stores, stores.store, job["name"], request
        self.root = JobRoot(job["root"])
        self.life = JobLifecycle(self.store, self.name, request.kind)
        self.sink = LogSink(self.store, self.name, request.metric_definitions)
        self.rc = 0

    def stop_requested(self) -> bool:
        return bool(self.store.get_job(self.name)["stop_requested"])

    def run(self) -> int:
        request, raw, life = self.request, self.request.to_dict(), self.life
        try:
            life.downloading()
            started = time.time()
            self.store.update_job(self.name, start_time=started)
            prepare_root(self.root, raw, request.source_dir, log=self.sink.write)
            self.feeder = PipeFeeder(self.root, raw, log=self.sink.write)  # Pipe-mode channels' FIFOs
            self.sync = checkpoint_sync_for(raw, self.root, log=self.sink.write)  # CheckpointConfig: restore, then mirror
            if self.sync:
                self.sync.restore()
        except (NBSageError, OSError) as e:
            life.failed_client(e)
            return 1
        except Exception as e:  # the checkpoint URI could not be read
            life.failed_restoring_checkpoints(described(e))
            return 1
        if self.stop_requested():
            return life.stopped_before_start()
        self.env = dict(os.environ, TRAINING_JOB_NAME=self.name, PYTHONUNBUFFERED="1")
        self.env.update(request.environment)
        self.spot = ManagedSpot(self.store, self.name, request, log=self.sink.write, started=started)
        try:
            last = self.spot.run(self.attempt, self.restart, self.stop_requested)
        except RestartFailed as e:  # the checkpoints could not be restored
            self.sink.close()
            self.spot.bill()
            life.failed_restoring_checkpoints(e)
            return 1
        release_input(self.root)  # the runtime has ended: its FastFile mounts and staged input go before the job ends
        self.sink.close()
        return self.finish(last)

    def attempt(self, limits) -> Attempt:
        self.life.training(self.spot.training_message)
        if self.sync:
            self.sync.start()
        self.feeder.start()
        rc, exceeded = _runtime.run("train", self.root.path, self.env, self.sink.write, limits, self._started)
        self.rc = rc
        self.feeder.stop()
        if self.sync:
            try:
                self.sync.stop()
            except Exception as e:  # the checkpoints are not the model: the job goes on
                self.sink.write(f"Checkpoint upload to {self.sync.url} failed: {described(e)}")
        # managed spot: a runtime killed by a signal (not by a stop) is a worker taken away
        return Attempt(exceeded=exceeded, interrupted=f"the worker was killed by {killed_by(rc)}" if rc < 0 else None)

    def _started(self, pid: int) -> bool:
        self.store.update_job(self.name, runtime_pid=pid)
        return self.stop_requested()

    def restart(self) -> None:
        """New capacity: the checkpoints back from the URI, fresh Pipe FIFOs."""
        if self.sync:
            self.sync.restore()
        self.feeder = PipeFeeder(self.root, self.request.to_dict(), log=self.sink.write)

    def finish(self, last: Attempt) -> int:
        life, rc = self.life, self.rc
        self.spot.bill()
        if last.exceeded:
            return self.spot.end_exceeded(last.exceeded)
        if last.stopped:
            return life.stopped(model=stopped_model(self.root, self.request.to_dict(), self.stores.artifacts, print))
        if rc != 0:
            return life.failed_runtime(rc, self.root.failure_reason())
        life.uploading()
        try:
            model, output = collect(self.root, self.request.to_dict(), self.stores.artifacts)
        except Exception as e:
            life.failed_uploading(e)
            return 1
        self.spot.bill()
        return life.completed(model=model, output=output)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return supervisor_main(supervise, argv[0])  # never leaves the job InProgress
    finally:
        release_fastfile()  # whatever way the job ended, no mount outlives it
        _prune_old_job_folders()


def _prune_old_job_folders() -> None:
    """NBSAGE_JOB_RETENTION_DAYS: old job folders go once this job has ended (never its failure)."""
    from nbsage.backends.retention import prune_by_setting
    try:
        prune_by_setting(Stores.from_environment())
    except Exception as e:  # pruning is housekeeping: the job's outcome is already recorded
        print(f"Pruning old job folders failed: {type(e).__name__}: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
