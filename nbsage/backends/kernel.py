"""The `kernel` place: the job runs in a Jupyter kernel that is not the notebook's own.

Where the kernel comes from (one of):

- `kernel="python3"` alone: a kernelspec on this machine (e.g. one bound to a GPU environment),
  started with jupyter_client;
- `gateway="http://gpu-box:8888"` (+ `kernel=NAME`, default the gateway's default kernel): a kernel
  started through a Jupyter Kernel Gateway or Enterprise Gateway (REST + websocket);
  `gateway_token=` (or $NBSAGE_GATEWAY_TOKEN) authenticates, `env={"KERNEL_...": ...}` is passed
  to the new kernel (gateways pass only KERNEL_* variables);
- `connection_file="kernel-1234.json"`: a kernel that already runs (it is not shut down after).

The remote side needs only nbsage installed. `start` launches a detached supervisor
(`python -m nbsage.backends.kernel_supervisor JOB`), so the job outlives the notebook's kernel. It
stages the channels here, sends the job root to the kernel through the connection, runs the
runtime there with its output streamed back into the store (logs, metrics), and brings
model.tar.gz/output.tar.gz back — through the connection, or, with `transfer="auto"` (the
default), straight through the artifact store when that is a URL both sides reach (s3://...);
channels given as such URLs are then read by the kernel itself. `transfer="connection"` sends
everything through the kernel connection.

Stop interrupts the kernel (the remote runtime gets SIGTERM, SIGKILL after the grace period); a
kernel that dies or a connection that drops ends the job Failed with a reason naming the kernel —
except under managed spot (nbsage.backends.spot), where it is an instance taken away: the job
goes Interrupted → Restarting on a new kernel (the job root sent again, the checkpoints restored
from CheckpointConfig.S3Uri) and trains on; so does a runtime killed by a signal in the kernel,
in the same kernel. The kernel itself restores and mirrors the checkpoints where it reaches the
URI (an s3:// URL, or any URI for a kernel started from a kernelspec on this machine).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from nbsage.backends.base import Backend
from nbsage.backends.options import PlaceOption
from nbsage.errors import PlaceError, did_you_mean
from nbsage.runtime.layout import PRIVATE_UMASK, private_dir, private_file
from nbsage.store.metadata import pid_alive

TRANSFERS = ("auto", "connection")
PLACE_FILE = "kernel-place.json"  # the kernel's whereabouts, next to the job's supervisor.log


class KernelBackend(Backend):
    """Runs a job in a Jupyter kernel: a local kernelspec, a kernel gateway's kernel, or a running kernel."""

    name = "kernel"
    options = (
        PlaceOption("gateway", "a Jupyter Kernel Gateway URL, e.g. http://gpu-box:8888", metavar="URL"),
        PlaceOption("kernel", "the kernel (kernelspec) name, e.g. python3", metavar="NAME"),
        PlaceOption("connection_file", "a running kernel's connection file", metavar="FILE"),
        PlaceOption("gateway_token", "the kernel gateway's token (default: $NBSAGE_GATEWAY_TOKEN)", metavar="TOKEN"),
        PlaceOption("env", "a KERNEL_* variable for the kernel a gateway starts", type=dict, metavar="KEY=VALUE",
                    flag="--kernel-env"),
        PlaceOption("transfer", "how channels and artifacts travel: auto (straight through the artifact store "
                    "when both sides reach it) or connection", metavar="HOW", choices=TRANSFERS),
    )

    def __init__(self, session, gateway: str | None = None, kernel: str | None = None,
                 connection_file: str | None = None, gateway_token: str | None = None,
                 env: dict | None = None, transfer: str = "auto", **options):
        super().__init__(session, **options)
        self.gateway = gateway.rstrip("/") if gateway else None
        self.kernel = kernel
        self.connection_file = str(connection_file) if connection_file else None
        self.gateway_token = gateway_token
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.transfer = transfer

    # ---- options -------------------------------------------------------------------------------
    def place(self) -> dict:
        """The kernel to use, as recorded with the job."""
        return {"gateway": self.gateway, "kernel": self.kernel, "connection_file": self.connection_file,
                "gateway_token": self.gateway_token, "env": self.env, "transfer": self.transfer}

    def _check_options(self) -> None:
        if self.transfer not in TRANSFERS:
            raise PlaceError(f"transfer {self.transfer!r} is not valid for the kernel place; "
                             f"use one of {', '.join(TRANSFERS)}")
        if self.connection_file and (self.gateway or self.kernel):
            raise PlaceError("give the kernel place either connection_file=... (a running kernel) or "
                             "kernel=NAME (with gateway=URL for a remote one), not both")
        if not (self.gateway or self.kernel or self.connection_file):
            raise PlaceError("the kernel place needs a kernel: kernel='python3' (a kernelspec here), "
                             "gateway='http://host:8888' (+ kernel=NAME) or connection_file='kernel-....json'")
        if self.gateway and not self.gateway.startswith(("http://", "https://")):
            raise PlaceError(f"gateway {self.gateway!r} is not an http:// or https:// URL, "
                             "e.g. gateway='http://gpu-box:8888'")
        bad_env = [k for k in self.env if not k.startswith("KERNEL_")]
        if self.gateway and bad_env:
            raise PlaceError(f"env {', '.join(bad_env)}: a kernel gateway passes only KERNEL_* variables "
                             "to the kernels it starts; name them KERNEL_...")

    def check(self, request: dict) -> None:
        from nbsage.backends import kernel_transport as kt
        if "ProcessingJobName" in request:
            raise PlaceError("the kernel place runs training jobs; run processing jobs on the local place "
                             "(backend='local')")
        self._check_options()
        output = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
        if output.startswith("memory://") or self.session.artifact_root.startswith("memory://"):
            raise PlaceError("memory:// lives inside one process and the kernel place runs each job through its "
                             "own supervisor process, so the job's artifacts would be lost; use a folder, "
                             "file:// or s3:// URL")
        if self.gateway:
            names = kt.gateway_kernel_names(self.gateway, self.gateway_token)  # also: does it answer?
            if self.kernel and self.kernel not in names:
                raise PlaceError(f"the kernel gateway at {self.gateway} has no kernel {self.kernel!r}"
                                 f"{did_you_mean(self.kernel, names)}; it offers {', '.join(names) or 'none'}")
        elif self.kernel:
            names = kt.local_kernel_names()
            if self.kernel not in names:
                raise PlaceError(f"there is no Jupyter kernelspec named {self.kernel!r} on this machine"
                                 f"{did_you_mean(self.kernel, names)}; kernelspecs are {', '.join(names) or 'none'} "
                                 "(for a remote kernel give gateway=URL too)")
        elif not os.path.isfile(os.path.expanduser(self.connection_file)):
            raise PlaceError(f"connection file {self.connection_file!r} does not exist")

    # ---- a job's life ----------------------------------------------------------------------------
    def start(self, job_name: str) -> None:
        self._check_options()
        store = self.session.store
        job_dir = self.session.jobs_dir / job_name
        private_dir(job_dir)
        place_file = job_dir / PLACE_FILE
        place_file.write_text(json.dumps(self.place(), indent=2))
        os.chmod(place_file, 0o600)  # it may hold the gateway's token
        env = dict(os.environ, NBSAGE_HOME=str(self.session.home),
                   NBSAGE_ARTIFACT_ROOT=self.session.artifact_root, PYTHONUNBUFFERED="1")
        with open(private_file(job_dir / "supervisor.log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nbsage.backends.kernel_supervisor", job_name],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, close_fds=True, umask=PRIVATE_UMASK)
        store.update_job(job_name, supervisor_pid=proc.pid)
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it: no zombie of this process

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
                os.kill(pid, signal.SIGTERM)  # the supervisor interrupts the kernel
            except ProcessLookupError:
                pass

    def refresh(self, job: dict) -> None:
        if job["status"] not in ("InProgress", "Stopping"):
            return
        pid = job.get("supervisor_pid")
        if pid is None or pid_alive(pid):
            return
        where = self._release_kernel(job["name"])
        if job.get("stop_requested"):
            self.session.store.set_status(job["name"], "Stopped", "Stopped", "Training job stopped")
            return
        self.session.store.set_status(
            job["name"], "Failed", "Failed", "The job's supervisor process ended unexpectedly",
            failure_reason=f"InternalServerError: the process that followed this job in {where} (pid {pid}) "
                           f"ended unexpectedly; see {self.session.jobs_dir / job['name']}/supervisor.log")

    def _release_kernel(self, job_name: str) -> str:
        """Shut down a kernel the dead supervisor had started; returns the kernel in words."""
        from nbsage.backends import kernel_transport as kt
        try:
            place = json.loads((self.session.jobs_dir / job_name / PLACE_FILE).read_text())
        except (OSError, ValueError):
            return "a Jupyter kernel"
        if place.get("kernel_id") and place.get("gateway"):
            kt.shutdown_gateway_kernel(place["gateway"], place["kernel_id"], place.get("gateway_token"))
            return f"the Jupyter kernel {place['kernel_id']} on the kernel gateway {place['gateway']}"
        if place.get("kernel_pid") and pid_alive(place["kernel_pid"]):
            try:
                os.kill(place["kernel_pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        return f"the Jupyter kernel {place.get('kernel') or place.get('connection_file')!r}"

    # ---- what it offers ----------------------------------------------------------------------------
    def describe_place(self) -> dict:
        """CPU/GPU/memory of the kernel's host, asked of a kernel started for the question."""
        where = (f"kernel {self.kernel or 'default'!r} on {self.gateway}" if self.gateway
                 else f"kernel {self.kernel!r} on this machine" if self.kernel
                 else f"the kernel of {self.connection_file}" if self.connection_file else None)
        info = {"name": self.name, "cpus": None, "gpus": None, "memory_gib": None,
                "where": where or "a Jupyter kernel (give kernel=, gateway= or connection_file=)"}
        if not where:
            return info
        from nbsage.backends import kernel_supervisor
        try:
            self._check_options()
            with kernel_supervisor.open_kernel(self.place(), quiet=True) as conn:
                answer = kernel_supervisor.call(conn, "describe")
        except PlaceError as e:
            info["error"] = str(e)
            return info
        info.update({k: answer.get(k) for k in ("cpus", "gpus", "memory_gib")})
        if answer.get("host"):
            info["where"] += f" (host {answer['host']})"
        return info
