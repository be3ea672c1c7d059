"""XGBoost in SageMaker's built-in algorithm mode.

What matches SageMaker's XGBoost container (sagemaker-xgboost-container, algorithm mode): the
hyperparameter names, ranges and cross-parameter rules; the channels (train, validation) and their
content types; the evaluation log lines `[17]\\ttrain-rmse:1.23000\\tvalidation-rmse:1.45000` that
SageMaker's metric regexes scrape; the container-computed metrics (accuracy, f1, r2, ...); early
stopping on `validation` with the best round kept; checkpoints `xgboost-checkpoint.<round>`;
k-fold mode (`_kfold`); the artifact `xgboost-model` (native UBJSON, loadable with
`xgboost.Booster().load_model(path)`); and the inference content types and response shapes.

`declaration` says what the algorithm accepts; `parameters` maps hyperparameters to xgboost's
params; `data` reads the channels into DMatrix; `evaluation` computes the container's metrics;
`callbacks` log the rounds and save checkpoints; `model` writes and reads the model and checkpoint
files; `training` is the job (`kfold` its cross-validation mode); `inference` the endpoint, with
`output_keys` for SAGEMAKER_INFERENCE_OUTPUT. Only the declaration is imported here, so looking
the algorithm up stays cheap: xgboost loads when a job or a model needs it.
"""
from nbsage.algorithms.xgboost.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
