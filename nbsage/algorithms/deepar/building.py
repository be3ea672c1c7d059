"""Model building: the network's sizes and the model's settings, from the hyperparameters and the data.

The network's inputs follow from the frequency (lags, calendar features, age), the fields the train
channel fixed (dynamic features, category counts and their embeddings) and the likelihood (how many
parameters the head outputs); `ModelSettings` is what the saved model records to forecast later.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nbsage.algorithms.base import AUTO
from nbsage.algorithms.deepar.features import Frequency
from nbsage.algorithms.deepar.likelihoods import Likelihood
from nbsage.algorithms.deepar.loading import TrainingData
from nbsage.algorithms.deepar.network import DeepARNetwork, NetworkConfig
from nbsage.algorithms.deepar.predictor import ModelSettings


@dataclass
class Model:
    config: NetworkConfig
    settings: ModelSettings
    network: DeepARNetwork


def build_model(hps: dict, hyperparameters: dict, freq: Frequency, likelihood: Likelihood, lags: list[int],
                data: TrainingData, device: torch.device) -> Model:
    """A fresh network (initialised from torch's random state) and the settings it is saved with.

    `hps` are the validated hyperparameters, `hyperparameters` the job's own strings (recorded).
    """
    cardinality = data.fields.cardinality
    config = NetworkConfig(
        num_lags=len(lags), num_features=freq.num_time_features + 1 + (data.fields.num_dynamic_feat or 0),
        cardinality=list(cardinality or []),
        embedding_dimension=embedding_dims(hps["embedding_dimension"], cardinality),
        cell_type=hps["cell_type"], num_layers=hps["num_layers"], num_cells=hps["num_cells"],
        dropout_rate=hps["dropout_rate"], num_params=likelihood.num_params)
    settings = ModelSettings(
        time_freq=str(freq), context_length=hps["context_length"], prediction_length=hps["prediction_length"],
        likelihood=likelihood.name, lags=lags, cardinality=cardinality,
        num_dynamic_feat=data.fields.num_dynamic_feat, network=config.to_dict(),
        num_eval_samples=hps["num_eval_samples"], test_quantiles=[float(q) for q in hps["test_quantiles"]],
        hyperparameters=dict(hyperparameters))
    return Model(config, settings, DeepARNetwork(config).to(device))


def embedding_dims(setting, cardinality: list[int] | None) -> list[int]:
    """embedding_dimension per categorical feature; auto: half the categories, between 1 and 50."""
    if not cardinality:
        return []
    if setting == AUTO:
        return [max(1, min(50, (c + 1) // 2)) for c in cardinality]
    return [int(setting)] * len(cardinality)
