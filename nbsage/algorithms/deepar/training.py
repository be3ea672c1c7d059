"""DeepAR training: read the channels, train the network globally, checkpoint, score the test set.

Steps: 1. read and check the train (and test) records, resolve `auto` cardinality and
num_dynamic_feat, log the dataset statistics SageMaker logs; 2. each epoch draws
max(number of series, 10 * mini_batch_size) training windows (context_length + prediction_length
points, at uniformly random positions, every series visited equally often) and fits the
likelihood of every observed point of each window with the true values as lags; Adam with
gradient clipping, the learning rate halved when the epoch loss plateaus for 10 epochs, early
stopping on the training loss; 3. a checkpoint is written to the checkpoint folder after every
epoch, and a job started again with the same checkpoint folder resumes after the last one; 4. the
lowest-loss epoch's weights are saved and, with a test channel, its last prediction_length points
of each series are forecast from the rest and scored.

With instance_count > 1 the hosts train one network with torch.distributed (DistributedDataParallel,
through nbsage.algorithms.distributed): each rank draws its windows from its share of the train
series (FullyReplicated: series rank::N; ShardedByS3Key: the files it was given) with a
rank-dependent seed, every rank takes the same number of steps, the epoch loss is averaged over
the ranks, and the first host alone checkpoints, decides early stopping, saves and scores.

Laid out as GluonTS splits an estimator: `loading` (the channels), `building` (the network and the
model's settings), `step` (the lightning module: likelihood, optimizer, one training step),
`checkpoints` (resume) and, here, the loop over epochs and what a job does from start to end.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from nbsage.algorithms import distributed
from nbsage.algorithms.container_config import configuration
from nbsage.algorithms.log_lines import SageMakerLog
from nbsage.algorithms.torch_device import training_device
from nbsage.algorithms.deepar import likelihoods
from nbsage.algorithms.deepar.building import Model, build_model
from nbsage.algorithms.deepar.checkpoints import Checkpoints, Progress, resume
from nbsage.algorithms.deepar.declaration import ALGORITHM
from nbsage.algorithms.deepar.evaluation import format_quantile, score
from nbsage.algorithms.deepar.features import Frequency
from nbsage.algorithms.deepar.loading import TrainingData, load_data
from nbsage.algorithms.deepar.predictor import DeepARPredictor
from nbsage.algorithms.deepar.records import Series
from nbsage.algorithms.deepar.step import TrainingModule, TrainStep
from nbsage.algorithms.deepar.windows import SeriesTable
from nbsage.errors import DataError

SEED = 0
MIN_BATCHES_PER_EPOCH = 10       # SageMaker logs 1280 windows (10 mini-batches) per epoch on small data


@dataclass
class _Plan:
    """How an epoch is drawn: n_windows windows from this host's n_local series, in n_batches steps."""

    batch_size: int
    n_windows: int
    n_batches: int
    n_local: int


def train(env) -> None:
    # one host: nothing is initialised and _train runs as it always did; several hosts: data-parallel
    # training with torch.distributed (each rank draws windows from its share of the series, DDP
    # averages the gradients, the master checkpoints, saves and scores)
    with distributed.torch_process_group(env) as cluster:
        _train(env, cluster)


def _train(env, cluster) -> None:
    """A job from start to end: configure, load, build, resume, fit, then (master) save and score."""
    started = time.time()
    log = SageMakerLog(env)
    hps = configuration(env, log, ALGORITHM)
    device = training_device(env, log)
    freq = Frequency.parse(hps["time_freq"])
    lik = likelihoods.make(hps["likelihood"])
    lags = freq.lags()
    log.info(f"time_freq={freq}: lags {lags}; time features {', '.join(freq.time_feature_names())}, age")
    data = load_data(env, hps, freq, lik.name, log.info)

    seed = int(hps.get("_seed", SEED))  # hidden key, as SageMaker's `_`-prefixed ones: repeat runs
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(hps, env.hyperparameters, freq, lik, lags, data, device)
    step_model, local_series = _distribute(env, cluster, model, data, device, log)
    module = TrainingModule(model.network, lik, lags, hps["context_length"], hps["prediction_length"],
                            hps["learning_rate"], device, step_model)
    table = SeriesTable(local_series, freq, num_dynamic_feat=data.fields.num_dynamic_feat,
                        use_cat=data.fields.cardinality is not None, device=device)

    checkpoints = Checkpoints(env.checkpoints_dir, _signature(model, data, hps), log.info)
    progress = resume(checkpoints, module, rng, cluster, log.info)
    if cluster.distributed:
        # windows differ between ranks: a rank-dependent seed (also after a resume)
        rng = np.random.default_rng([seed, cluster.rank, progress.first_epoch])
        torch.manual_seed(seed + 7919 * cluster.rank + progress.first_epoch)

    plan = _plan(len(data.train), len(local_series), hps["mini_batch_size"], cluster, log)
    _fit(env, cluster, module, table, plan, rng, progress, checkpoints, hps, log)
    log.info(f"Final loss: {progress.best_loss!r} (occurred at epoch {progress.best_epoch})")
    if not cluster.is_master:
        log.info("The first host saves and scores the model")
        return
    log.quality("train final_loss", "loss", progress.best_loss)
    env.metric("train:final_loss", progress.best_loss)
    model.network.load_state_dict(progress.best_state)
    predictor = DeepARPredictor(model.settings, model.network, device=str(device))
    log.info(f"Serializing to {env.model_dir}")
    predictor.save(env.model_dir)
    if data.test:
        _score(env, predictor, data.test, hps["num_eval_samples"], seed, log)
    log.info(log.total_time("AWS/DeepAR", started))


# ---- the steps of _train -----------------------------------------------------------------------------
def _distribute(env, cluster, model: Model, data: TrainingData, device, log: SageMakerLog):
    """(the network wrapped for DDP or None, the series this host draws its windows from)."""
    if not cluster.distributed:
        return None, data.train
    # DDP broadcasts the master's initial weights and averages the gradients in backward(); the
    # hand-written Adam then takes the same step on every rank
    step_model = distributed.wrap(TrainStep(model.network), str(device))
    local_series = distributed.channel_share(env, "train", data.train)
    if distributed.agree(len(local_series), "min") == 0:
        # fewer series (or shards) than hosts: every rank samples from all it read
        local_series = data.train
    log.info(f"Distributed training on {cluster.size} hosts (rank {cluster.rank}): "
             f"{len(local_series)} of {len(data.train)} time series on this host")
    return step_model, local_series


def _signature(model: Model, data: TrainingData, hps: dict) -> dict:
    """What a checkpoint must have been trained with to be resumed from."""
    s = model.settings
    return {"time_freq": s.time_freq, "context_length": s.context_length, "prediction_length": s.prediction_length,
            "likelihood": s.likelihood, "network": model.config.to_dict(), "num_series": len(data.train),
            "num_observations": data.stats["number of observations"], "mini_batch_size": hps["mini_batch_size"]}


def _windows_per_epoch(num_series: int, batch_size: int) -> int:
    return max(num_series, MIN_BATCHES_PER_EPOCH * batch_size)


def _plan(num_series: int, n_local: int, batch_size: int, cluster, log: SageMakerLog) -> _Plan:
    n_windows = _windows_per_epoch(num_series, batch_size)
    n_batches = math.ceil(n_windows / batch_size)
    if cluster.distributed:
        # every rank draws as many windows from its share as one host would from all series, in the
        # same number of steps (DDP needs every rank to take the same number)
        n_batches = distributed.agree(n_batches, "min")
        n_windows = n_batches * batch_size
    if n_local < n_windows:
        passes = math.ceil(n_windows / n_local)
        log.info(f"Small number of time series. Doing {passes} passes over dataset with prob "
                 f"{n_windows / (passes * n_local):.4f} per epoch.")
    return _Plan(batch_size, n_windows, n_batches, n_local)


# ---- the loop ------------------------------------------------------------------------------------------
def _fit(env, cluster, module: TrainingModule, table: SeriesTable, plan: _Plan, rng: np.random.Generator,
         progress: Progress, checkpoints: Checkpoints, hps: dict, log: SageMakerLog) -> None:
    """Train epochs progress.first_epoch .. epochs-1, or until early stopping; `progress` is updated."""
    epochs, patience = hps["epochs"], hps.get("early_stopping_patience")
    lengths = table.lengths.to(torch.float32)
    stopped_early = False
    for epoch in range(progress.first_epoch, epochs):
        if patience is not None and progress.bad_epochs >= patience:
            stopped_early = True
            break
        tic = time.time()
        epoch_loss = _epoch(module, table, lengths, plan, rng, cluster)
        if not math.isfinite(epoch_loss):
            raise DataError(f"the training loss became {epoch_loss} at epoch {epoch}; check the targets "
                            f"(likelihood={module.likelihood.name}) or lower learning_rate={hps['learning_rate']}")
        progress.history.append(epoch_loss)
        if module.end_epoch(epoch_loss):
            log.info(f"Learning rate lowered to {module.optimizer.lr:g}")
        elapsed = time.time() - tic
        if cluster.is_master:
            log.quality("train loss", "loss", epoch_loss, epoch=epoch)
            env.metric("train:loss", epoch_loss, step=epoch)
        log.info(f"#throughput_metric: host={log.host}, train throughput={plan.n_windows / max(elapsed, 1e-9):.1f} "
                 "records/second")
        if epoch_loss < progress.best_loss:
            progress.best_loss, progress.best_epoch, progress.bad_epochs = epoch_loss, epoch, 0
            progress.best_state = {k: v.detach().cpu().clone() for k, v in module.network.state_dict().items()}
        else:
            progress.bad_epochs += 1
            log.info("loss did not improve")
        if cluster.is_master:
            path = checkpoints.save_epoch(epoch, module, rng, progress)
            log.info(f"Epoch[{epoch}] Elapsed time: {elapsed:.3f} seconds; checkpoint {path.name}")
        else:
            log.info(f"Epoch[{epoch}] Elapsed time: {elapsed:.3f} seconds")
        log.info(f"#progress_metric: host={log.host}, completed {100 * (epoch + 1) // epochs} % of epochs")
        env.progress(epoch + 1, epochs)
        stop = patience is not None and progress.bad_epochs >= patience
        if cluster.distributed:
            stop = bool(distributed.agree(int(stop) if cluster.is_master else 0, "max"))  # the master's decision
        if stop:
            stopped_early = True
            break
    if stopped_early:
        log.info(f"Loss has not improved in {patience} epochs. Stopping training.")
    if progress.best_state is None:
        raise DataError("no epoch was trained")


def _epoch(module: TrainingModule, table: SeriesTable, lengths: torch.Tensor, plan: _Plan,
           rng: np.random.Generator, cluster) -> float:
    """One epoch's training steps; the loss per observed point (averaged over the ranks)."""
    order = np.concatenate([rng.permutation(plan.n_local)
                            for _ in range(math.ceil(plan.n_windows / plan.n_local))])[:plan.n_windows]
    order_t = torch.from_numpy(order).to(module.device)
    module.network.train()
    total, count = 0.0, 0
    size = plan.batch_size
    for b in range(plan.n_batches):
        loss_sum, observed = module.training_step(table, lengths, order_t[b * size:(b + 1) * size])
        total += loss_sum
        count += observed
    epoch_loss = total / max(count, 1.0)
    if cluster.distributed:
        # the loss over all ranks' windows: every rank sees the same value, so the learning-rate
        # schedule and the best epoch agree
        epoch_loss = distributed.mean(epoch_loss, weight=count)
    return epoch_loss


# ---- after training --------------------------------------------------------------------------------------
def _score(env, predictor: DeepARPredictor, test: list[Series], num_samples: int, seed: int, log: SageMakerLog) -> None:
    """Forecast the last prediction_length points of each test series from the rest, and score them."""
    P, quantiles = predictor.settings.prediction_length, predictor.settings.test_quantiles
    log.info(f"Evaluating model accuracy on testset using {num_samples} samples")
    history_series = [Series(source=s.source, start=s.start, target=s.target[:-P], cat=s.cat,
                             dynamic_feat=s.dynamic_feat, ordinal=s.ordinal) for s in test]
    samples = predictor.forecast(history_series, num_samples, seed=seed)
    actual = np.stack([s.target[-P:] for s in test]).astype(np.float64)
    metrics = score(samples.astype(np.float64), actual, quantiles)
    for name in ("RMSE", "mean_absolute_QuantileLoss", "mean_wQuantileLoss"):
        log.info(f"#test_score ({log.host}, {name}): {metrics[name]!r}")
    for q in quantiles:
        key = f"wQuantileLoss[{format_quantile(q)}]"
        log.info(f"#test_score ({log.host}, {key}): {metrics[key]!r}")
    log.quality("test RMSE", "loss", metrics["RMSE"])
    log.quality("test mean_wQuantileLoss", "loss", metrics["mean_wQuantileLoss"])
    env.metric("test:RMSE", metrics["RMSE"])
    env.metric("test:mean_wQuantileLoss", metrics["mean_wQuantileLoss"])
    for q in quantiles:
        key = f"wQuantileLoss[{format_quantile(q)}]"
        env.metric(f"test:{key}", metrics[key])
