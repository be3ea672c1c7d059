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

from nbsage.backends.base import SupervisedBackend, kill_runtime_group


class LocalBackend(SupervisedBackend):
    name = "local"
    options = ()  # this machine needs no options
    supervisor_module = "nbsage.backends.local_supervisor"

    def check(self, request) -> None:
        from nbsage.errors import PlaceError
        from nbsage.runtime.environment import count_gpus, is_gpu_instance_type
        if is_gpu_instance_type(request.instance_type) and count_gpus() == 0:
            raise PlaceError(f"instance type {request.instance_type!r} asks for a GPU and the local place has none; "
                             "use instance_type='local' (CPU), or a place with an NVIDIA GPU")
        self.check_artifact_root(request)

    def release(self, job: dict) -> str:
        kill_runtime_group(job)  # a runtime that outlived its supervisor runs unwatched: it goes
        return super().release(job)

    def describe_place(self) -> dict:
        return {"name": self.name, **this_machine()}


def this_machine() -> dict:
    """CPU count, GPU count and memory of this machine (what the local place offers)."""
    from nbsage.runtime.environment import count_gpus
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return {"cpus": os.cpu_count(), "gpus": count_gpus(), "memory_gib": round(mem, 1) if mem else None,
            "where": "this machine"}
