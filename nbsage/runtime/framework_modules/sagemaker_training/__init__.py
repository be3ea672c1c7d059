"""Stand-in for sagemaker-training's package as a script imports it: `environment` only."""
from sagemaker_training import environment  # noqa: F401 - the submodule scripts import


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_training", name, "use sagemaker_training.environment.Environment() or the "
                     "SM_* environment variables")
