"""Stand-in for `sagemaker_training.environment`: Environment(), the job's settings as attributes.

Read from SM_TRAINING_ENV, which script mode sets with the toolkit's keys (num_cpus, num_gpus,
hosts, current_host, model_dir, channel_input_dirs, hyperparameters, ...)."""
import json
import os


class Environment:
    """The training environment; each SM_TRAINING_ENV key is an attribute (env.num_cpus, env.hosts)."""

    def __init__(self, resource_config=None, input_data_config=None, hyperparameters=None):
        self._env = json.loads(os.environ.get("SM_TRAINING_ENV") or "{}")
        if not self._env:
            self._env = {"num_cpus": os.cpu_count() or 1, "num_gpus": 0, "hosts": ["algo-1"],
                         "current_host": "algo-1", "hyperparameters": {}, "channel_input_dirs": {}}
        if hyperparameters is not None:
            self._env["hyperparameters"] = hyperparameters

    def __getattr__(self, name):
        env = self.__dict__.get("_env", {})
        if name in env:
            return env[name]
        raise AttributeError(f"sagemaker_training.environment.Environment has no {name!r} here; it has "
                             f"{', '.join(sorted(env))}")

    def to_env_vars(self) -> dict:
        """The SM_* variables of this job."""
        return {k: v for k, v in os.environ.items() if k.startswith("SM_")}

    def __repr__(self) -> str:
        return f"Environment({self._env!r})"


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_training.environment", name, "use Environment() or the SM_* environment variables")
