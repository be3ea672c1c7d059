"""BlazingText training entry: configuration, the engine for the instance type, the schedule.

`train(env)` validates the hyperparameters and channels, picks the engine — the compiled
hogwild kernels (`kernels.py`, numba) on CPU instance types, PyTorch on GPU instance types
(`local_gpu`, ml.g*, ml.p*: `env.device` says which) and on the CPU where numba is missing —
and hands over to `word2vec.train` or `supervised.train`. Both share `Schedule`: the epoch
split into slices, the learning rate decayed linearly to zero over all of training (fastText's
schedule, printed as "Alpha"), and BlazingText's progress lines.

With instance_count > 1 (SageMaker: batch_skipgram on CPU instances only; the other modes are
refused with an error saying so) the hosts train one model together: see `word2vec.train`.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from nbsage.algorithms import distributed
from nbsage.algorithms.blazingtext.declaration import ALGORITHM, SUPERVISED
from nbsage.errors import HyperparameterError, NBSageError

SEED = 0
DISTRIBUTED_MODE = "batch_skipgram"  # the one mode SageMaker trains across several instances
LOG_EVERY_SECONDS = 2.0


@dataclass
class EngineChoice:
    name: str      # "numba" or "torch"
    device: str    # "cpu" or "cuda"
    threads: int


def choose_engine(env, hps: dict, log) -> EngineChoice:
    """Compiled kernels on CPU instance types, PyTorch on GPU ones or where numba is missing.

    The hidden hyperparameter `_engine` = torch forces the PyTorch engine on the CPU (tests).
    """
    threads = max(1, int(env.num_cpus))
    if distributed.cluster(env).distributed and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        # several hosts on one machine: the place gives each its share of the cores
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    if env.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise NBSageError(
                f"instance type {env.instance_type!r} asks for a GPU, and the installed PyTorch "
                f"{torch.__version__} cannot use CUDA here; install a CUDA build of torch or use "
                f"instance_type='local'")
        return EngineChoice("torch", "cuda", 1)
    if str(hps.get("_engine", "auto")).strip('"') == "torch":
        return EngineChoice("torch", "cpu", threads)
    try:
        import nbsage.algorithms.blazingtext.kernels  # noqa: F401  (numba compiles lazily)
    except ImportError as e:
        log(f"numba is not available ({e}): training with the PyTorch engine on the CPU, which is "
            f"several times slower; `pip install numba` for the compiled kernels")
        return EngineChoice("torch", "cpu", threads)
    return EngineChoice("numba", "cpu", threads)


@contextmanager
def torch_threads(choice: EngineChoice):
    """One intra-op thread for the PyTorch engine on the CPU: its operations are small, and
    OpenMP threads competing for busy cores make them many times slower."""
    if choice.name != "torch" or choice.device != "cpu":
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Schedule:
    """Slices of each epoch, the linear learning-rate decay and BlazingText's progress lines."""

    def __init__(self, log, learning_rate: float, epochs: int, words_per_epoch: int):
        self.log = log
        self.lr, self.epochs = float(learning_rate), int(epochs)
        self.words_per_epoch = max(1, int(words_per_epoch))
        # slices of ~250k words (at most 50 an epoch): the driver logs and checks in between
        self.slices = int(np.clip(self.words_per_epoch // 250_000, 1, 50))
        self.started = time.perf_counter()
        self.words_done = 0
        self.last_log = 0.0

    def alpha(self, epoch: int, slice_index: float) -> float:
        progress = (epoch + slice_index / self.slices) / self.epochs
        return self.lr * max(0.0, 1.0 - progress)

    def bounds(self, parts: np.ndarray, slice_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-thread [start, stop) of this slice, given each thread's part boundaries."""
        lo, hi = parts[:-1], parts[1:]
        span = hi - lo
        starts = lo + span * slice_index // self.slices
        stops = lo + span * (slice_index + 1) // self.slices
        return starts.astype(np.int64), stops.astype(np.int64)

    def rate(self) -> float:
        """Words per second since training began (this run)."""
        elapsed = time.perf_counter() - self.started
        return self.words_done / elapsed if elapsed > 0 else 0.0

    def report(self, epoch: int, slice_index: int, force: bool = False) -> None:
        """The progress line, at most every LOG_EVERY_SECONDS (and when forced)."""
        now = time.perf_counter()
        if not force and now - self.last_log < LOG_EVERY_SECONDS:
            return
        self.last_log = now
        progress = 100.0 * min(1.0, (epoch + (slice_index + 1) / self.slices) / self.epochs)
        alpha = self.alpha(epoch, slice_index + 1)
        self.log(f"##### Alpha: {alpha:.4f}  Progress: {progress:.2f}%  "
                 f"Million Words/sec: {self.rate() / 1e6:.2f} #####")


def split_parts(weights: np.ndarray, threads: int) -> np.ndarray:
    """Boundaries of `threads` contiguous parts of items with the given cumulative weights
    (a pointer array, weights[-1] the total), each with about the same total weight."""
    n = weights.shape[0] - 1
    targets = np.linspace(0, weights[-1], threads + 1)
    parts = np.searchsorted(weights, targets).clip(0, n).astype(np.int64)
    parts[0], parts[-1] = 0, n
    return parts


def initial_weights(rows: int, dim: int, seed: int = SEED) -> np.ndarray:
    """Input rows uniform in [-1/dim, 1/dim], as fastText starts them."""
    rng = np.random.default_rng(seed)
    w = rng.random((rows, dim), dtype=np.float32)
    w *= 2.0 / dim
    w -= 1.0 / dim
    return w


def train(env) -> None:
    started = time.time()
    log = env.log
    hps = ALGORITHM.validate(env.hyperparameters)
    defaults = {hp.name: hp.to_string(hp.default) for hp in ALGORITHM.hyperparameters
                if hp.default is not None}
    final = {**defaults, **{k: str(v) for k, v in env.hyperparameters.items()}}
    log(f"Final configuration: {json.dumps(final, sort_keys=True)}")
    ALGORITHM.check_channels({name: ch.content_type for name, ch in env.channels.items()})
    mode = hps["mode"]
    cluster = distributed.cluster(env)
    if cluster.distributed and mode != DISTRIBUTED_MODE:
        raise HyperparameterError(
            f"hyperparameter 'mode' = {mode!r} trains on a single instance, and this job has "
            f"instance_count={cluster.size}; as in SageMaker, only mode={DISTRIBUTED_MODE} trains "
            f"across several instances: use instance_count=1, or mode={DISTRIBUTED_MODE} for word vectors",
            name="mode")
    choice = choose_engine(env, hps, log)
    if mode == "batch_skipgram" and choice.device == "cuda":
        raise HyperparameterError(
            "hyperparameter 'mode' = 'batch_skipgram' runs on CPU instance types only (as in "
            "SageMaker); on a GPU instance type use mode=skipgram or cbow", name="mode")
    log(f"Training on {choice.device} with the {choice.name} engine"
        + (f" ({choice.threads} threads)" if choice.name == "numba" else ""))
    with torch_threads(choice):
        if mode == SUPERVISED:
            from nbsage.algorithms.blazingtext import supervised
            supervised.train(env, hps, choice, log)
        else:
            if "validation" in env.channels:
                log("The validation channel is not used in Word2Vec modes; ignoring it")
            from nbsage.algorithms.blazingtext import word2vec
            with distributed.torch_process_group(env, device=choice.device) as cluster:
                word2vec.train(env, hps, choice, log, cluster)
    log(f"Total job time in seconds: {time.time() - started:.2f}")
