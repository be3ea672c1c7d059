"""Where the PyTorch built-ins (DeepAR, Seq2Seq, Object2Vec) compute: the device and its CPU threads."""
from __future__ import annotations

import os

from nbsage.algorithms.log_lines import SageMakerLog

MAX_THREADS = 4                  # a small RNN stops gaining from more threads around here


def set_threads() -> int:
    """torch threads: OMP_NUM_THREADS when set, else the cores not already busy, at most MAX_THREADS.

    A small RNN runs many short kernels; on a machine whose cores are taken by other work, extra
    threads that wait for a core make each step many times slower rather than faster.
    """
    import torch

    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        n = int(wanted)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            busy = int(round(os.getloadavg()[0]))
        except OSError:
            busy = 0
        n = max(1, min(cores - busy, MAX_THREADS))
    torch.set_num_threads(n)
    return n


def training_device(env, log: SageMakerLog):
    """The job's torch.device (the environment's), its CPU threads set, logged as `Training on ...`."""
    import torch

    threads = set_threads()
    device = torch.device(env.device)
    log.info(f"Training on {device.type}" + (f" with {threads} CPU thread(s)" if device.type == "cpu" else ""))
    return device
