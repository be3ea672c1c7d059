"""SKLearn, as `sagemaker.sklearn.estimator` has it: a scikit-learn training script in script mode."""
from __future__ import annotations

from nbsage.errors import ValidationError
from nbsage.framework import Framework
from nbsage.sklearn.model import SKLearnModel


class SKLearn(Framework):
    """Runs a scikit-learn script with the SM_* environment; deploy() serves it with SKLearnPredictor.

    scikit-learn trains on one instance (the SDK refuses instance_count > 1 too)."""

    framework = "SKLearn"
    _framework = "sklearn"
    image_repository = "sagemaker-scikit-learn"
    model_class = SKLearnModel

    def __init__(self, entry_point: str, framework_version: str | None = None, py_version: str = "py3",
                 source_dir: str | None = None, hyperparameters: dict | None = None, image_uri: str | None = None,
                 image_uri_region: str | None = None, **kwargs):
        count = kwargs.get("instance_count", kwargs.get("train_instance_count", 1))
        if count is not None and int(count) > 1:
            raise ValidationError(f"instance_count={count}: scikit-learn does not train across instances; "
                                  "use instance_count=1")
        super().__init__(entry_point, framework_version=framework_version, py_version=py_version,
                         source_dir=source_dir, hyperparameters=hyperparameters, image_uri=image_uri,
                         image_uri_region=image_uri_region, **kwargs)
