"""The configuration step every built-in algorithm's container starts with, logged as SageMaker logs it.

SageMaker's algorithms print the declared defaults, the job's hyperparameters, and the two merged
("Reading default configuration / Merging with provided configuration / Final configuration"),
then validate the hyperparameters and the channels before reading any data, so a bad setting fails
the job in its first seconds with the field named.
"""
from __future__ import annotations

import json

from nbsage.algorithms.log_lines import SageMakerLog


def configuration(env, log: SageMakerLog, algorithm, *, name_file: bool = True) -> dict:
    """The job's validated hyperparameters under `algorithm`'s declaration; its channels checked.

    `name_file`: whether the merging line names the hyperparameters file (Seq2Seq's does not).
    """
    defaults = {hp.name: hp.to_string(hp.default) for hp in algorithm.hyperparameters if hp.default is not None}
    log.info(f"Reading default configuration: {json.dumps(defaults, sort_keys=True)}")
    source = f" from {env.root.config_dir / 'hyperparameters.json'}" if name_file else ""
    log.info(f"Merging with provided configuration{source}: {json.dumps(env.hyperparameters, sort_keys=True)}")
    hps = algorithm.validate(env.hyperparameters)
    log.info(f"Final configuration: {json.dumps({**defaults, **env.hyperparameters}, sort_keys=True)}")
    algorithm.check_channels({name: ch.content_type for name, ch in env.channels.items()})
    return hps
