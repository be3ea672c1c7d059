"""Hyperparameter tuning jobs: SageMaker's tuner semantics over an Optuna study.

- `config`: the CreateHyperParameterTuningJob request, checked before any trial starts (ranges inside
  the algorithm's declared ones, an objective metric it emits, SageMaker's limits), with SageMaker's words.
- `search`: the Optuna mapping (Bayesian -> TPE, Random -> RandomSampler, Grid -> GridSampler,
  Hyperband -> HyperbandPruner, early stopping Auto -> MedianPruner) and the ranges as distributions.
- `driver`: the detached process that runs one tuning job (ask, start a trial on the estimator's
  place, feed its per-round metrics to the pruner, tell); it resumes from the study after a crash.
- `records`: DescribeHyperParameterTuningJob and the trials' summaries, from the store alone.
- `watch`: following a tuning job (a trials table, best so far, objective over trials).

Optuna is imported only by `search` and `driver`: describing or listing tuning jobs never loads it.
"""
