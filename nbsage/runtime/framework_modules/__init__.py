"""The helper modules SageMaker's framework containers put on a script's path, as far as the
SDK's example scripts use them: `sagemaker_containers`, `sagemaker_training` and
`sagemaker_xgboost_container`.

This folder is not a package a user imports: script mode (nbsage.runtime.script_mode) and the
model server (nbsage.runtime.user_code) add it to the end of the script's path, so only a job's
script sees these names, and a real installed copy of any of them comes first. A name the
examples do not use fails with one line naming the module and what to use instead.
"""
from pathlib import Path

PATH = str(Path(__file__).resolve().parent)


def missing(module: str, name: str, instead: str):
    """The AttributeError for a helper these stand-ins do not provide (module __getattr__)."""
    if name.startswith("__"):
        return AttributeError(name)
    return AttributeError(f"{module}.{name} is not provided by nbsage's stand-in for the SageMaker container "
                          f"helper {module}; {instead}")
