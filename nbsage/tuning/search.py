"""SageMaker's tuning strategies as Optuna samplers and pruners; the ranges as Optuna suggestions.

| SageMaker | Optuna |
|---|---|
| Bayesian | `TPESampler(seed)` (multivariate, constant liar for parallel asks); TPE rather than GPSampler, which needs torch |
| Random | `RandomSampler(seed)` |
| Grid | `GridSampler(all values, seed)`: categorical and integer ranges |
| Hyperband | `TPESampler(seed)` + `HyperbandPruner(MinResource, MaxResource)` fed each round's objective |
| early_stopping_type Auto | `MedianPruner(n_startup_trials=1)`: a trial worse than the median of the earlier trials at the same round stops |
| Logarithmic | `log=True` |
| ReverseLogarithmic | `u = 1 - x` sampled on a log scale; the trial gets `1 - u` |
| Auto | Logarithmic when the range is positive and spans at least two orders of magnitude, else Linear (a local rule) |

The study lives in an Optuna journal file, `study.journal` in the tuning job's folder next to the
store, so it outlives the process that drives it and is resumed from there.
"""
from __future__ import annotations

from pathlib import Path

from nbsage.parameter import CategoricalParameter, IntegerParameter

REVERSE_PREFIX = "1-"  # ReverseLogarithmic ranges are kept in the study as 1 - x under this name


def is_log(rng) -> bool:
    if rng.scaling_type == "Logarithmic":
        return True
    if rng.scaling_type == "Auto":
        low, high = float(rng.min_value), float(rng.max_value)
        return low > 0 and high / low >= 100
    return False


def suggest(trial, ranges: dict) -> dict[str, str]:
    """Ask `trial` for a value of each range; the values as hyperparameters.json strings."""
    values = {}
    for name, rng in ranges.items():
        if isinstance(rng, CategoricalParameter):
            values[name] = trial.suggest_categorical(name, list(rng.values))
        elif isinstance(rng, IntegerParameter):
            low, high = int(rng.min_value), int(rng.max_value)
            values[name] = str(trial.suggest_int(name, low, high, log=is_log(rng) and low > 0))
        elif rng.scaling_type == "ReverseLogarithmic":
            low, high = float(rng.min_value), float(rng.max_value)
            u = trial.suggest_float(REVERSE_PREFIX + name, 1 - high, 1 - low, log=True)
            values[name] = repr(1 - u)
        else:
            values[name] = repr(trial.suggest_float(name, float(rng.min_value), float(rng.max_value), log=is_log(rng)))
    return values


def sampler(strategy: str, ranges: dict, seed: int | None):
    import optuna
    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "Grid":
        space = {}
        for name, rng in ranges.items():
            if isinstance(rng, CategoricalParameter):
                space[name] = list(rng.values)
            else:
                space[name] = list(range(int(rng.min_value), int(rng.max_value) + 1))
        return _grid_sampler()(space, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid_sampler():
    """GridSampler without its `study.stop()` once the grid is done: that call is only allowed inside
    `optimize`, and raises in ask/tell use; the driver stops at MaxNumberOfTrainingJobs (the grid's size)."""
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            pass

    return AskTellGridSampler


def pruner(strategy: str, early_stopping_type: str, hyperband: tuple[int, int] | None = None):
    import optuna
    if strategy == "Hyperband" and hyperband:
        return optuna.pruners.HyperbandPruner(min_resource=hyperband[0], max_resource=hyperband[1])
    if early_stopping_type == "Auto":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def storage(path: Path):
    """The study's storage at `path`: Optuna's file journal (JournalFileBackend), safe for several processes.

    A journal rather than an RDBStorage in SQLite: creating the RDB schema (SQLAlchemy + Alembic, a
    dozen DDL transactions) took 4-5 s per tuning job on a loaded disk, the journal 1 ms; both survive
    the driver and are resumed from."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    return JournalStorage(JournalFileBackend(str(path), lock_obj=_flock(path)))


def _flock(path: Path):
    """The journal's write lock as an flock: the kernel releases it when its holder dies, where Optuna's
    default symlink lock, left behind by a driver killed while writing, holds the next one up for 30 s."""
    import fcntl
    import os

    class FlockJournalLock:  # what JournalFileBackend calls of a lock: acquire() and release()
        def __init__(self):
            self.lock_path, self.fd = f"{path}.lock", None

        def acquire(self) -> bool:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.fd = fd
            return True

        def release(self) -> None:
            fd, self.fd = self.fd, None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    return FlockJournalLock()


def open_study(path: Path, name: str, objective_type: str, strategy: str, ranges: dict, seed: int | None,
               early_stopping_type: str, hyperband: tuple[int, int] | None = None):
    """The tuning job's study: created on first use, loaded (with its trials) when the driver resumes."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        storage=storage(path), study_name=name, load_if_exists=True,
        direction="maximize" if objective_type == "Maximize" else "minimize",
        sampler=sampler(strategy, ranges, seed), pruner=pruner(strategy, early_stopping_type, hyperband))


def load_study(path: Path, name: str):
    """A finished tuning job's study (a warm start's parent)."""
    import optuna
    return optuna.load_study(study_name=name, storage=storage(path))


def warm_start(study, warm_start_type: str, parents: list) -> None:
    """IdenticalDataAndAlgorithm: the parents' finished trials join this study's history;
    TransferLearning: the parents' best configurations are tried first."""
    import optuna
    for parent in parents:
        done = [t for t in parent.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        if not done:
            continue
        if warm_start_type == "IdenticalDataAndAlgorithm":
            study.add_trials([optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, value=t.value,
                user_attrs={**t.user_attrs, "nbsage:WarmStartParent": parent.study_name}) for t in done])
        else:
            study.enqueue_trial(parent.best_trial.params, skip_if_exists=True)

