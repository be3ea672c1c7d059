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
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms import distributed
from nbsage.algorithms.base import AUTO
from nbsage.algorithms.deepar import likelihoods
from nbsage.algorithms.deepar.declaration import ALGORITHM
from nbsage.algorithms.deepar.evaluation import format_quantile, score
from nbsage.algorithms.deepar.features import Frequency
from nbsage.algorithms.deepar.network import DeepARNetwork, NetworkConfig
from nbsage.algorithms.deepar.optim import Adam, Plateau
from nbsage.algorithms.deepar.predictor import DeepARPredictor, ModelSettings
from nbsage.algorithms.deepar.records import (Series, check_series, read_channel,
                                              resolve_fields, statistics)
from nbsage.algorithms.deepar.windows import SeriesTable
from nbsage.checkpoint_files import write_checkpoint
from nbsage.errors import DataError

SEED = 0
MIN_BATCHES_PER_EPOCH = 10       # SageMaker logs 1280 windows (10 mini-batches) per epoch on small data
GRADIENT_CLIP = 10.0
LR_PATIENCE, LR_FACTOR, MIN_LR = 10, 0.5, 5e-5
CHECKPOINT_PREFIX = "deepar-checkpoint-epoch"
CHECKPOINTS_KEPT = 2
MAX_THREADS = 4                  # a small RNN stops gaining from more threads around here


class _Log:
    """SageMaker-style log lines: `[date INFO thread] message`."""

    def __init__(self, env):
        self.env = env
        self.host = env.current_host

    def info(self, message: str) -> None:
        stamp = time.strftime("%m/%d/%Y %H:%M:%S")
        self.env.log(f"[{stamp} INFO {threading.get_ident()}] {message}")

    def quality(self, what: str, kind: str, value: float, epoch: int | None = None) -> None:
        where = f"epoch={epoch}, " if epoch is not None else ""
        self.info(f"#quality_metric: host={self.host}, {where}{what} <{kind}>={float(value)!r}")


def set_threads() -> int:
    """torch threads: OMP_NUM_THREADS when set, else the cores not already busy, at most MAX_THREADS.

    A small RNN runs many short kernels; on a machine whose cores are taken by other work, extra
    threads that wait for a core make each step many times slower rather than faster.
    """
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        n = int(wanted)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        try:
            busy = int(round(os.getloadavg()[0]))
        except OSError:
            busy = 0
        n = max(1, min(cores - busy, MAX_THREADS))
    torch.set_num_threads(n)
    return n


def _embedding_dims(setting, cardinality: list[int] | None) -> list[int]:
    if not cardinality:
        return []
    if setting == AUTO:
        return [max(1, min(50, (c + 1) // 2)) for c in cardinality]
    return [int(setting)] * len(cardinality)


def _read(env, name: str, root: Path) -> list[Series]:
    channel = env.channels[name]
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files under {channel.path}")
    return read_channel(files, channel.content_type, root=root)


def _windows_per_epoch(num_series: int, batch_size: int) -> int:
    return max(num_series, MIN_BATCHES_PER_EPOCH * batch_size)


class _Checkpoints:
    """One file per finished epoch in the checkpoint folder; the newest readable one resumes."""

    def __init__(self, folder: Path, signature: dict, log: _Log):
        self.folder, self.signature, self.log = Path(folder), signature, log

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{CHECKPOINT_PREFIX}*.pt"), reverse=True)

    def latest(self) -> dict | None:
        for path in self._files():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - a half-written or foreign file: try the previous one
                self.log.info(f"Checkpoint {path} could not be read ({type(e).__name__}: {e}); skipping it")
                continue
            if state.get("signature") != self.signature:
                theirs = state.get("signature") or {}
                changed = sorted(k for k in set(theirs) | set(self.signature) if theirs.get(k) != self.signature.get(k))
                self.log.info(f"Checkpoint {path} was written with different settings ({', '.join(changed)}); "
                              "training from scratch")
                return None
            state["path"] = str(path)
            return state
        return None

    def save(self, state: dict) -> Path:
        path = self.folder / f"{CHECKPOINT_PREFIX}{state['epoch']:05d}.pt"
        write_checkpoint(path, lambda f: torch.save({**state, "signature": self.signature}, f))
        for old in self._files()[CHECKPOINTS_KEPT:]:
            old.unlink(missing_ok=True)
        return path


class _TrainStep(torch.nn.Module):
    """The network's training forward pass as one module, for DistributedDataParallel (several hosts)."""

    def __init__(self, network: DeepARNetwork):
        super().__init__()
        self.network = network

    def forward(self, lags, features, cat, scale):
        raw, _ = self.network(lags, features, self.network.static_features(cat, scale))
        return raw


def train(env) -> None:
    # one host: nothing is initialised and _train runs as it always did; several hosts: data-parallel
    # training with torch.distributed (each rank draws windows from its share of the series, DDP
    # averages the gradients, the master checkpoints, saves and scores)
    with distributed.torch_process_group(env) as cluster:
        _train(env, cluster)


def _train(env, cluster) -> None:
    started = time.time()
    multi = cluster.distributed
    master = cluster.is_master
    log = _Log(env)
    defaults = {hp.name: hp.to_string(hp.default) for hp in ALGORITHM.hyperparameters if hp.default is not None}
    log.info(f"Reading default configuration: {json.dumps(defaults, sort_keys=True)}")
    log.info(f"Merging with provided configuration from {env.root.config_dir / 'hyperparameters.json'}: "
             f"{json.dumps(env.hyperparameters, sort_keys=True)}")
    hps = ALGORITHM.validate(env.hyperparameters)
    log.info(f"Final configuration: {json.dumps({**defaults, **env.hyperparameters}, sort_keys=True)}")
    ALGORITHM.check_channels({name: ch.content_type for name, ch in env.channels.items()})

    threads = set_threads()
    device = torch.device(env.device)
    log.info(f"Training on {device.type}" + (f" with {threads} CPU thread(s)" if device.type == "cpu" else ""))
    freq = Frequency.parse(hps["time_freq"])
    C, P = hps["context_length"], hps["prediction_length"]
    lik = likelihoods.make(hps["likelihood"])
    lags = freq.lags()
    log.info(f"time_freq={freq}: lags {lags}; time features {', '.join(freq.time_feature_names())}, age")

    # ---- data -----------------------------------------------------------------------------------
    root = env.root.data_dir
    train_series = _read(env, "train", root)
    fields = resolve_fields(train_series, hps["cardinality"], hps["num_dynamic_feat"], log.info)
    rule = f"context_length + prediction_length = {C} + {P}"
    for s in train_series:
        check_series(s, fields, min_length=C + P, future=0, likelihood=lik.name, rule_lengths=rule)
        s.index(freq)
    stats = statistics(train_series)
    for key, value in stats.items():
        log.info(f"{key}: {value}")
    test_series: list[Series] = []
    if "test" in env.channels:
        test_series = _read(env, "test", root)
        for s in test_series:
            check_series(s, fields, min_length=C + P, future=0, likelihood=lik.name, rule_lengths=rule)
            s.index(freq)
        log.info(f"Test data: {len(test_series)} time series")

    cardinality = fields.cardinality
    net_config = NetworkConfig(
        num_lags=len(lags), num_features=freq.num_time_features + 1 + (fields.num_dynamic_feat or 0),
        cardinality=list(cardinality or []), embedding_dimension=_embedding_dims(hps["embedding_dimension"], cardinality),
        cell_type=hps["cell_type"], num_layers=hps["num_layers"], num_cells=hps["num_cells"],
        dropout_rate=hps["dropout_rate"], num_params=lik.num_params)
    settings = ModelSettings(
        time_freq=str(freq), context_length=C, prediction_length=P, likelihood=lik.name, lags=lags,
        cardinality=cardinality, num_dynamic_feat=fields.num_dynamic_feat, network=net_config.to_dict(),
        num_eval_samples=hps["num_eval_samples"], test_quantiles=[float(q) for q in hps["test_quantiles"]],
        hyperparameters=dict(env.hyperparameters))

    seed = int(hps.get("_seed", SEED))  # hidden key, as SageMaker's `_`-prefixed ones: repeat runs
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = DeepARNetwork(net_config).to(device)
    step_model = None
    local_series = train_series
    if multi:
        # DDP broadcasts the master's initial weights and averages the gradients in backward(); the
        # hand-written Adam then takes the same step on every rank
        step_model = distributed.wrap(_TrainStep(network), str(device))
        local_series = distributed.channel_share(env, "train", train_series)
        if distributed.agree(len(local_series), "min") == 0:
            # fewer series (or shards) than hosts: every rank samples from all it read
            local_series = train_series
        log.info(f"Distributed training on {cluster.size} hosts (rank {cluster.rank}): "
                 f"{len(local_series)} of {len(train_series)} time series on this host")
    optimizer = Adam(network.parameters(), lr=hps["learning_rate"])
    scheduler = Plateau(optimizer, factor=LR_FACTOR, patience=LR_PATIENCE, min_lr=MIN_LR)
    table = SeriesTable(local_series, freq, num_dynamic_feat=fields.num_dynamic_feat,
                        use_cat=cardinality is not None, device=device)
    lags_t = torch.tensor(lags, dtype=torch.long, device=device)

    # ---- resume ---------------------------------------------------------------------------------
    signature = {"time_freq": str(freq), "context_length": C, "prediction_length": P, "likelihood": lik.name,
                 "network": net_config.to_dict(), "num_series": len(train_series),
                 "num_observations": stats["number of observations"],
                 "mini_batch_size": hps["mini_batch_size"]}
    checkpoints = _Checkpoints(env.checkpoints_dir, signature, log)
    epochs = hps["epochs"]
    first_epoch, best_loss, best_epoch, bad_epochs = 0, math.inf, -1, 0
    best_state = None
    history: list[float] = []
    if multi:
        # the master's checkpoint, on every rank: weights, optimizer and scheduler state must agree
        resumed = distributed.broadcast_object(checkpoints.latest() if master else None)
    else:
        resumed = checkpoints.latest()
    if resumed is not None:
        network.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        if not multi:
            torch.set_rng_state(resumed["torch_rng"])
            rng.bit_generator.state = json.loads(resumed["numpy_rng"])
        first_epoch = resumed["epoch"] + 1
        best_loss, best_epoch, bad_epochs = resumed["best_loss"], resumed["best_epoch"], resumed["bad_epochs"]
        best_state = resumed["best_model"]
        history = list(resumed["history"])
        log.info(f"Resuming from checkpoint {resumed['path']}: epochs 0-{resumed['epoch']} done, "
                 f"continuing at epoch {first_epoch}")

    if multi:
        # windows differ between ranks: a rank-dependent seed (also after a resume)
        rng = np.random.default_rng([seed, cluster.rank, first_epoch])
        torch.manual_seed(seed + 7919 * cluster.rank + first_epoch)

    # ---- train ----------------------------------------------------------------------------------
    batch_size = hps["mini_batch_size"]
    n_windows = _windows_per_epoch(len(train_series), batch_size)
    n_batches = math.ceil(n_windows / batch_size)
    if multi:
        # every rank draws as many windows from its share as one host would from all series, in the
        # same number of steps (DDP needs every rank to take the same number)
        n_batches = distributed.agree(n_batches, "min")
        n_windows = n_batches * batch_size
    n_local = len(local_series)
    if n_local < n_windows:
        passes = math.ceil(n_windows / n_local)
        log.info(f"Small number of time series. Doing {passes} passes over dataset with prob "
                 f"{n_windows / (passes * n_local):.4f} per epoch.")
    patience = hps.get("early_stopping_patience")
    lengths = table.lengths.to(torch.float32)
    stopped_early = False
    for epoch in range(first_epoch, epochs):
        if patience is not None and bad_epochs >= patience:
            stopped_early = True
            break
        tic = time.time()
        order = np.concatenate([rng.permutation(n_local)
                                for _ in range(math.ceil(n_windows / n_local))])[:n_windows]
        order_t = torch.from_numpy(order).to(device)
        network.train()
        total, count = 0.0, 0
        for b in range(n_batches):
            idx = order_t[b * batch_size:(b + 1) * batch_size]
            # forecast start t uniform in [1, n - P]: the prediction range lies inside the series
            t = 1 + (torch.rand(len(idx), device=device) * (lengths[idx] - P)).long()
            win = table.window(idx, t - C, C + P, lags_t, C, lik.scaled)
            if step_model is None:
                raw, _ = network(win.lags, win.features, network.static_features(win.cat, win.scale))
            else:
                raw = step_model(win.lags, win.features, win.cat, win.scale)
            nll = lik.nll(lik.params(raw, win.scale.unsqueeze(1)), win.target)
            observed = win.observed.sum()
            loss = (nll * win.observed).sum() / observed.clamp(min=1.0)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), GRADIENT_CLIP)
            optimizer.step()
            total += float(loss.detach()) * float(observed)
            count += float(observed)
        epoch_loss = total / max(count, 1.0)
        if multi:
            # the loss over all ranks' windows: every rank sees the same value, so the learning-rate
            # schedule and the best epoch agree
            epoch_loss = distributed.mean(epoch_loss, weight=count)
        if not math.isfinite(epoch_loss):
            raise DataError(f"the training loss became {epoch_loss} at epoch {epoch}; check the targets "
                            f"(likelihood={lik.name}) or lower learning_rate={hps['learning_rate']}")
        history.append(epoch_loss)
        if scheduler.step(epoch_loss):
            log.info(f"Learning rate lowered to {optimizer.lr:g}")
        elapsed = time.time() - tic
        if master:
            log.quality("train loss", "loss", epoch_loss, epoch=epoch)
            env.metric("train:loss", epoch_loss, step=epoch)
        log.info(f"#throughput_metric: host={log.host}, train throughput={n_windows / max(elapsed, 1e-9):.1f} "
                 "records/second")
        if epoch_loss < best_loss:
            best_loss, best_epoch, bad_epochs = epoch_loss, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        else:
            bad_epochs += 1
            log.info("loss did not improve")
        if master:
            path = checkpoints.save({
                "epoch": epoch, "model": {k: v.detach().cpu() for k, v in network.state_dict().items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "numpy_rng": json.dumps(rng.bit_generator.state),
                "best_loss": best_loss, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                "best_model": best_state, "history": history})
            log.info(f"Epoch[{epoch}] Elapsed time: {elapsed:.3f} seconds; checkpoint {path.name}")
        else:
            log.info(f"Epoch[{epoch}] Elapsed time: {elapsed:.3f} seconds")
        log.info(f"#progress_metric: host={log.host}, completed {100 * (epoch + 1) // epochs} % of epochs")
        env.progress(epoch + 1, epochs)
        stop = patience is not None and bad_epochs >= patience
        if multi:
            stop = bool(distributed.agree(int(stop) if master else 0, "max"))  # the master's decision
        if stop:
            stopped_early = True
            break
    if stopped_early:
        log.info(f"Loss has not improved in {patience} epochs. Stopping training.")
    if best_state is None:
        raise DataError("no epoch was trained")
    log.info(f"Final loss: {best_loss!r} (occurred at epoch {best_epoch})")
    if not master:
        log.info("The first host saves and scores the model")
        return
    log.quality("train final_loss", "loss", best_loss)
    env.metric("train:final_loss", best_loss)

    # ---- save -----------------------------------------------------------------------------------
    network.load_state_dict(best_state)
    predictor = DeepARPredictor(settings, network, device=str(device))
    log.info(f"Serializing to {env.model_dir}")
    predictor.save(env.model_dir)

    # ---- test -----------------------------------------------------------------------------------
    if test_series:
        n = hps["num_eval_samples"]
        log.info(f"Evaluating model accuracy on testset using {n} samples")
        history_series = [Series(source=s.source, start=s.start, target=s.target[:-P], cat=s.cat,
                                 dynamic_feat=s.dynamic_feat, ordinal=s.ordinal) for s in test_series]
        samples = predictor.forecast(history_series, n, seed=seed)
        actual = np.stack([s.target[-P:] for s in test_series]).astype(np.float64)
        metrics = score(samples.astype(np.float64), actual, settings.test_quantiles)
        for name in ("RMSE", "mean_absolute_QuantileLoss", "mean_wQuantileLoss"):
            log.info(f"#test_score ({log.host}, {name}): {metrics[name]!r}")
        for q in settings.test_quantiles:
            key = f"wQuantileLoss[{format_quantile(q)}]"
            log.info(f"#test_score ({log.host}, {key}): {metrics[key]!r}")
        log.quality("test RMSE", "loss", metrics["RMSE"])
        log.quality("test mean_wQuantileLoss", "loss", metrics["mean_wQuantileLoss"])
        env.metric("test:RMSE", metrics["RMSE"])
        env.metric("test:mean_wQuantileLoss", metrics["mean_wQuantileLoss"])
        for q in settings.test_quantiles:
            key = f"wQuantileLoss[{format_quantile(q)}]"
            env.metric(f"test:{key}", metrics[key])
    ended = time.time()
    ms = (ended - started) * 1000
    log.info("#metrics " + json.dumps({
        "StartTime": started, "EndTime": ended,
        "Dimensions": {"Algorithm": "AWS/DeepAR", "Host": log.host, "Operation": "training"},
        "Metrics": {"totaltime": {"sum": ms, "count": 1, "min": ms, "max": ms}}}))
