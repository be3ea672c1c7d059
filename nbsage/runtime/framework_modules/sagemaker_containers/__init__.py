"""Stand-in for the SageMaker container helper `sagemaker_containers` (deprecated by SageMaker in
favour of sagemaker-training): `entry_point` and `training_env()` only."""
from sagemaker_containers import entry_point  # noqa: F401 - the submodule scripts import

_INSTEAD = "read the SM_* environment variables (SM_HOSTS, SM_CHANNEL_TRAIN, SM_MODEL_DIR, ...) instead"


def training_env():
    """The training environment (sagemaker_training.environment.Environment's fields)."""
    from sagemaker_training.environment import Environment
    return Environment()


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_containers", name, _INSTEAD)
