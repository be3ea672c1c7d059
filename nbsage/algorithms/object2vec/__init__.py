"""Object2Vec: SageMaker's pair-embedding algorithm (two encoders, a comparator, an MLP), in PyTorch.

`declaration` says what the algorithm accepts; `records` reads and checks the JSON Lines pairs;
`building` resolves the encoders from the hyperparameters; `auxiliary` reads vocabulary and
pretrained embedding files; `network` is the model; `checkpoints` resume; `training` is the job;
`predictor` the trained model (pair scores and encoder embeddings); `evaluation` the metrics;
`inference` the endpoint's formats. Only the declaration is imported here, so looking the
algorithm up stays cheap (torch loads when a job or model needs it).

Where nbsage's Object2Vec differs from SageMaker's, on purpose or for want of a published detail:

* hcnn is stacked 1-D convolutions max-pooled over the sequence; bilstm is InferSent's BiLSTM-max
  (enc_dim/2 units a direction); pooled_embedding the mean of the token embeddings.
* Token id 0 is an ordinary token (padding is read from the lengths).
* Negative sampling pairs each in0 with the in1 of another record drawn at random each epoch,
  labelled 0 (SageMaker says only that negatives are generated).
* early_stopping_tolerance is a relative loss reduction, and the validation loss (cross_entropy
  or mean_squared_error) decides when there is a validation channel, else the training loss; the
  best epoch's weights are kept.
* The model directory holds `model_algo-1.pt` (torch weights) and `model_algo-1-config.json`,
  not MXNet params; one instance trains (SageMaker's Object2Vec has no multi-instance training),
  on every GPU of a multi-GPU instance type.
* A hidden `_seed` hyperparameter seeds a job.
"""
from nbsage.algorithms.object2vec.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
