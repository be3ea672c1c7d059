"""The `local` place: each job runs in its own processes on this machine.

`start` launches a detached supervisor (`python -m nbsage.backends.local_supervisor`), so a job
outlives the kernel that started it. The supervisor stages the channels, runs
`python -m nbsage.runtime train --root ROOT` as a child in its own process group, streams its
output to the store, enforces MaxRuntimeInSeconds, uploads the artifacts and sets the final
status. Stop is SIGTERM to the runtime's process group, then SIGKILL after a grace period.
CheckpointConfig is restored and mirrored by the supervisor; under managed spot a runtime killed
by a signal is an interruption and the job trains again (nbsage.backends.spot).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from nbsage.backends.base import Backend
from nbsage.runtime.layout import PRIVATE_UMASK, private_dir, private_file
from nbsage.store.metadata import pid_alive


class LocalBackend(Backend):
    name = "local"
    options = ()  # this machine needs no options
    supervisor_module = "nbsage.backends.local_supervisor"

    def check(self, request: dict) -> None:
        from nbsage.errors import PlaceError
        from nbsage.runtime.environment import count_gpus, is_gpu_instance_type
        instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
        if is_gpu_instance_type(instance_type) and count_gpus() == 0:
            raise PlaceError(f"instance type {instance_type!r} asks for a GPU and the local place has none; "
                             "use instance_type='local' (CPU), or a place with an NVIDIA GPU")
        self.check_artifact_root(request)

    def check_artifact_root(self, request: dict) -> None:
        """Refuse memory:// artifacts: the job's supervisor is another process and would lose them."""
        from nbsage.errors import PlaceError
        output = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
        # a processing job's inputs and outputs name their own URIs
        uris = [i.get("S3Input", {}).get("S3Uri", "") for i in request.get("ProcessingInputs", [])]
        uris += [o.get("S3Output", {}).get("S3Uri", "") for o in request.get("ProcessingOutputConfig", {}).get("Outputs", [])]
        if any(u.startswith("memory://") for u in uris):
            output = "memory://"
        if output.startswith("memory://") or self.session.artifact_root.startswith("memory://"):
            raise PlaceError(f"memory:// lives inside one process and the {self.name} place runs each job in its "
                             "own process, so the job's artifacts would be lost; use a folder, file:// or s3:// URL")

    def supervisor_args(self) -> list[str]:
        """Arguments after the job name for the supervisor process (a place's options)."""
        return []

    def start(self, job_name: str) -> None:
        store = self.session.store
        log_dir = self.session.jobs_dir / job_name
        private_dir(log_dir)
        env = dict(os.environ, NBSAGE_HOME=str(self.session.home),
                   NBSAGE_ARTIFACT_ROOT=self.session.artifact_root, PYTHONUNBUFFERED="1")
        with open(private_file(log_dir / "supervisor.log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.supervisor_module, job_name, *self.supervisor_args()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, close_fds=True, umask=PRIVATE_UMASK)
        store.update_job(job_name, supervisor_pid=proc.pid)
        # reap the child when it ends, so it never lingers as a zombie of this process
        import threading
        threading.Thread(target=proc.wait, daemon=True).start()

    def stop(self, job_name: str) -> None:
        store = self.session.store
        job = store.get_job(job_name)
        if job["status"] != "InProgress":
            return
        store.update_job(job_name, stop_requested=1)
        store.set_status(job_name, "Stopping", "Stopping", "Stopping the training job")
        pid = job.get("supervisor_pid")
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def refresh(self, job: dict) -> None:
        if job["status"] not in ("InProgress", "Stopping"):
            return
        pid = job.get("supervisor_pid")
        if pid is None:
            return  # not launched yet
        if not pid_alive(pid):
            runtime = job.get("runtime_pid")
            if runtime and pid_alive(runtime):
                try:
                    os.killpg(runtime, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if job.get("stop_requested"):
                # a stop that reached the supervisor before it could hand it on still is a stop
                self.session.store.set_status(job["name"], "Stopped", "Stopped", "Training job stopped")
                return
            self.session.store.set_status(
                job["name"], "Failed", "Failed", "The job's supervisor process ended unexpectedly",
                failure_reason="InternalServerError: the process that ran this job on the local place "
                               f"(pid {pid}) ended unexpectedly; see {self.session.jobs_dir / job['name']}/supervisor.log")

    def describe_place(self) -> dict:
        from nbsage.runtime.environment import count_gpus
        mem = None
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        except (ValueError, OSError):
            pass
        return {"name": self.name, "cpus": os.cpu_count(), "gpus": count_gpus(),
                "memory_gib": round(mem, 1) if mem else None, "where": "this machine"}
