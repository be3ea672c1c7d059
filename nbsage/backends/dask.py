"""The `dask` place: each host of a job runs on a Dask worker.

`Estimator(..., backend="dask", scheduler="tcp://host:8786")` runs on an existing cluster; without a
scheduler (and without dask's `scheduler-address` setting) each job starts a LocalCluster on this
machine with one worker process per instance and closes it when the job ends.

As on the local place, `start` launches a detached supervisor (`python -m
nbsage.backends.dask_supervisor JOB [--scheduler ADDR]`), so a job outlives the kernel that started
it; start, stop (SIGTERM to the supervisor) and refresh are nbsage.backends.base.SupervisedBackend's. The supervisor is a Dask
client: it picks one worker per instance, runs host i's runtime on worker i (nbsage.backends.multi_host:
staged into the worker's local directory, rank variables with MASTER_ADDR = worker 0's address),
streams the hosts' lines back through Dask events, and uploads algo-1's model.tar.gz, which comes
back as the task's result. XGBoost trains through xgboost's collective across the workers (what
xgboost.dask runs underneath), the torch algorithms through torch.distributed; instance_count=1 is one
worker running the job as the local place would.

CheckpointConfig and managed spot work as on the local place with several instances (see
nbsage.backends.multi_host): each host restores and mirrors its checkpoints on its worker, so the
URI must be one the workers reach; under spot a host's runtime killed by a signal, or a worker
that leaves the cluster, interrupts the job and every host runs again once enough workers are back.

Workers must have nbsage installed. They read channels themselves: on a cluster of other machines,
give channels as s3:// (or other fsspec) URLs or paths every worker sees; the script's source folder
is shipped with the job.
"""
from __future__ import annotations

from nbsage.backends.base import SupervisedBackend
from nbsage.backends.options import PlaceOption
from nbsage.errors import PlaceError, ValidationError

INSTALL = 'pip install "dask[distributed]"'


def scheduler_address(scheduler) -> str | None:
    """An address from what a user passes: "tcp://...", a distributed Client or Cluster, or None."""
    if scheduler is None:
        try:
            import dask
            return dask.config.get("scheduler-address", None) or None
        except ImportError:
            return None
    if isinstance(scheduler, str):
        return scheduler
    for attr in ("scheduler_address", "address"):
        address = getattr(scheduler, attr, None)
        if isinstance(address, str):
            return address
    scheduler_obj = getattr(scheduler, "scheduler", None)
    if isinstance(getattr(scheduler_obj, "address", None), str):
        return scheduler_obj.address
    raise ValidationError(f"scheduler {scheduler!r} is not a Dask scheduler address (tcp://host:8786), "
                          "Client or Cluster")


def require_distributed():
    try:
        import distributed
    except ImportError:
        raise PlaceError(f"the dask place needs dask.distributed, which is not installed: {INSTALL}") from None
    return distributed


class DaskBackend(SupervisedBackend):
    """Jobs on a Dask cluster: an existing scheduler, or a LocalCluster started for each job."""

    name = "dask"
    supervisor_module = "nbsage.backends.dask_supervisor"
    options = (
        PlaceOption("scheduler", "a Dask scheduler address, e.g. tcp://host:8786 (default: a LocalCluster per job)",
                    metavar="ADDR"),
        PlaceOption("n_workers", "the LocalCluster's worker processes (default: one per instance)", type=int,
                    metavar="N"),
        PlaceOption("threads_per_worker", "threads of each LocalCluster worker", type=int, metavar="N"),
    )

    def __init__(self, session, **options):
        super().__init__(session, **options)
        self.scheduler = scheduler_address(options.get("scheduler"))
        self.n_workers = options.get("n_workers")
        self.threads_per_worker = options.get("threads_per_worker")

    def check(self, request) -> None:
        from nbsage.runtime.environment import count_gpus, is_gpu_instance_type
        require_distributed()
        if request.kind not in ("training", "transform"):  # transform: nbsage.transform.dask_place
            raise PlaceError(f"the dask place runs training and transform jobs; run {request.kind} jobs on the "
                             "local place (backend='local')")
        self.check_artifact_root(request)
        count = request.instance_count
        if self.scheduler is None and self.n_workers and int(self.n_workers) < count:
            raise PlaceError(f"n_workers={self.n_workers} is fewer than instance_count={count}: the dask place runs "
                             "each instance on a worker of its own")
        instance_type = request.instance_type
        if not is_gpu_instance_type(instance_type):
            return
        if self.scheduler is None:
            if count_gpus() == 0:
                raise PlaceError(f"instance type {instance_type!r} asks for a GPU and this machine, where the dask "
                                 "place would start its LocalCluster, has none; use instance_type='local' (CPU), "
                                 "or scheduler= a cluster whose workers have NVIDIA GPUs")
            return
        gpus = self._worker_gpus()
        if not any(gpus.values()):
            raise PlaceError(f"instance type {instance_type!r} asks for a GPU and none of the {len(gpus)} workers of "
                             f"the Dask cluster at {self.scheduler} has one; use instance_type='local' (CPU), or a "
                             "cluster with GPU workers")

    def _worker_gpus(self) -> dict[str, int]:
        from nbsage.runtime.environment import count_gpus
        distributed = require_distributed()
        try:
            with distributed.Client(self.scheduler, timeout=15, set_as_default=False) as client:
                return client.run(count_gpus)
        except (OSError, TimeoutError) as e:
            raise PlaceError(f"cannot reach the Dask scheduler at {self.scheduler}: {e}") from None

    def supervisor_args(self) -> list[str]:
        args = ["--scheduler", self.scheduler] if self.scheduler else []
        if self.n_workers:
            args += ["--n-workers", str(int(self.n_workers))]
        if self.threads_per_worker:
            args += ["--threads-per-worker", str(int(self.threads_per_worker))]
        return args

    def describe_place(self) -> dict:
        if self.scheduler is None:
            from nbsage.backends.local import this_machine
            return {"name": self.name, **this_machine(), "where": "a LocalCluster on this machine, started for each job"}
        distributed = require_distributed()
        from nbsage.runtime.environment import count_gpus
        try:
            with distributed.Client(self.scheduler, timeout=15, set_as_default=False) as client:
                workers = client.scheduler_info(n_workers=-1)["workers"]
                gpus = client.run(count_gpus)
        except (OSError, TimeoutError) as e:
            raise PlaceError(f"cannot reach the Dask scheduler at {self.scheduler}: {e}") from None
        return {"name": self.name, "where": self.scheduler, "workers": len(workers),
                "cpus": sum(w.get("nthreads", 0) for w in workers.values()), "gpus": sum(gpus.values()),
                "memory_gib": round(sum(w.get("memory_limit", 0) or 0 for w in workers.values()) / 2**30, 1)}
