"""DeepAR forecasting: SageMaker's autoregressive RNN forecaster, in PyTorch.

`declaration` says what the algorithm accepts; `records` reads and checks the JSON Lines /
Parquet records; `features` derives lags and calendar features from time_freq; `windows` cuts
training and forecast windows from all series at once; `likelihoods` and `network` are the model;
`optim` its optimizer; `training` is the job; `predictor` the trained model and its sample paths;
`inference` the endpoint's request and response formats; `evaluation` the test metrics. Only the
declaration is imported here, so looking the algorithm up stays cheap (torch loads when a job or
model needs it).

Where nbsage's DeepAR differs from SageMaker's, on purpose:

* `dropout_rate` is dropout between stacked RNN layers (torch's fused LSTM/GRU), not zoneout,
  which would need a Python loop per time step; `cell_type` (lstm/gru) is an nbsage addition.
* A series shorter than context_length + prediction_length is an error naming the record
  (SageMaker silently skips series shorter than prediction_length).
* An epoch is max(number of series, 10 * mini_batch_size) windows, every series visited equally
  often (SageMaker's logs show the same count on small data; its exact rule is not published).
* The model directory holds `model_algo-1.pt` (torch weights) and `model_algo-1-config.json`,
  not MXNet params; the endpoint answers on CPU, like SageMaker's.
* A hidden `_seed` hyperparameter seeds a job (SageMaker's `_`-prefixed keys are accepted too).
"""
from nbsage.algorithms.deepar.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
