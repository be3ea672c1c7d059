"""Object2Vec training: read the pairs, train the two encoders and the comparator, keep the best epoch.

Steps: 1. the hyperparameters validated and logged as SageMaker logs them, the encoders resolved
(`building`), the train/validation/test channels read and checked (`records`), pretrained vectors
loaded from the auxiliary channel (`auxiliary`); 2. each epoch shuffles the pairs (with
bucket_width, pairs of similar lengths share mini-batches and the batches are shuffled), adds
negative_sampling_rate x N negatives made by pairing each in0 with the in1 of another record drawn
at random, labelled 0, and takes one optimizer step per mini-batch (cross-entropy for softmax, mean
squared error for regression); 3. after each epoch the validation channel (else the training loss)
decides early stopping: an epoch whose loss is not at least early_stopping_tolerance (relative)
below the best so far counts against early_stopping_patience, and the best epoch's weights are
kept; 4. a checkpoint per epoch lets a job started again with the same checkpoint folder resume;
5. the kept model is saved and scored on the test channel.

The instance type picks the device as for DeepAR (a GPU type trains on CUDA); on an instance with
several GPUs the mini-batches are split across them (torch DataParallel), as SageMaker's Object2Vec
uses every GPU of its one instance. SageMaker's Object2Vec trains on one instance only: a job with
instance_count > 1 is refused before any data is read.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from nbsage.algorithms.container_config import configuration
from nbsage.algorithms.log_lines import SageMakerLog
from nbsage.algorithms.torch_device import training_device
from nbsage.algorithms.object2vec import auxiliary, optim
from nbsage.algorithms.object2vec.building import limits, network_config
from nbsage.algorithms.object2vec.checkpoints import Checkpoints, Progress
from nbsage.algorithms.object2vec.declaration import ALGORITHM
from nbsage.algorithms.object2vec.evaluation import reported, score
from nbsage.algorithms.object2vec.network import Object2VecNetwork
from nbsage.algorithms.object2vec.predictor import Object2VecPredictor
from nbsage.algorithms.object2vec.records import Pairs, pad, read_channel
from nbsage.errors import DataError, ValidationError

SEED = 0


def train(env) -> None:
    started = time.time()
    if len(env.hosts) > 1:
        raise ValidationError(f"Object2Vec trains on one instance (SageMaker's Object2Vec has no distributed "
                              f"training), and this job has {len(env.hosts)}: set instance_count=1 (a "
                              "multi-GPU instance type uses all its GPUs)")
    log = SageMakerLog(env)
    hps = configuration(env, log, ALGORITHM)
    device = training_device(env, log)
    config = network_config(hps, env.hyperparameters, log.info)
    num_classes = hps["num_classes"] if hps["output_layer"] == "softmax" else None
    data = {name: _read(env, name, config, num_classes, log) for name in ("train", "validation", "test")
            if name in env.channels}
    if not len(data["train"]):
        raise DataError("channel 'train' holds no records")
    log.info(f"Training data: {len(data['train'])} pairs" + "".join(
        f"; {name}: {len(p)} pairs" for name, p in data.items() if name != "train"))

    seed = int(hps.get("_seed", SEED))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = Object2VecNetwork(config)
    auxiliary.load_pretrained(env, network, log.info)
    network.to(device)
    step_model = _parallel(network, env, device, log)
    optimizer = optim.make(hps["optimizer"], network.parameters(), hps["learning_rate"], hps["weight_decay"])
    signature = {"network": config.to_dict(), "num_train": len(data["train"]),
                 "mini_batch_size": hps["mini_batch_size"], "optimizer": hps["optimizer"]}
    checkpoints = Checkpoints(env.checkpoints_dir, signature, log.info)
    progress = checkpoints.resume(network, optimizer, rng)

    predictor = Object2VecPredictor(config, network, str(device), hyperparameters=env.hyperparameters)
    _fit(env, step_model, network, optimizer, predictor, data, hps, rng, progress, checkpoints, log, device)

    network.load_state_dict(progress.best_state)
    log.info(f"Keeping the model of epoch {progress.best_epoch} (loss {progress.best_loss!r})")
    for name, kind, value in reported(progress.best_metrics):
        log.quality(f"validation {name}", kind, value)
        env.metric(f"validation:{name}", value)
    log.info(f"Serializing to {env.model_dir}")
    predictor.save(env.model_dir)
    if "test" in data:
        metrics = score(predictor, data["test"])
        for name, kind, value in reported(metrics):
            log.quality(f"test {name}", kind, value)
            env.metric(f"test:{name}", value)
    log.info(log.total_time("AWS/Object2Vec", started))


# ---- the steps of train --------------------------------------------------------------------------------
def _parallel(network: nn.Module, env, device: torch.device, log: SageMakerLog) -> nn.Module:
    """The module the steps call: DataParallel over every GPU of a multi-GPU instance, else the network."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if gpus > 1:
        log.info(f"Splitting each mini-batch across {gpus} GPUs")
        return nn.DataParallel(network)
    return network


def _read(env, name: str, config, num_classes, log: SageMakerLog) -> Pairs:
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files under {env.channels[name].path}")
    return read_channel(files, limits(config), num_classes, root=env.root.data_dir, log=log.info, name=name)


class _Padded:
    """A channel's pairs as padded tensors on the device, so a mini-batch is an index, not a copy loop."""

    def __init__(self, pairs: Pairs, device):
        ids0, len0 = pad(pairs.in0)
        ids1, len1 = pad(pairs.in1)
        self.ids0, self.len0 = torch.from_numpy(ids0).to(device), torch.from_numpy(len0).to(device)
        self.ids1, self.len1 = torch.from_numpy(ids1).to(device), torch.from_numpy(len1).to(device)
        self.labels = torch.from_numpy(pairs.labels).to(device)
        self.lengths = np.stack([len0, len1], axis=1)


def _epoch_order(padded: _Padded, n: int, rate: int, batch: int, bucket_width: int,
                 rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The epoch's mini-batches as (in0 rows, in1 rows, is-negative) index arrays."""
    rows0 = [np.arange(n)]
    rows1 = [np.arange(n)]
    negative = [np.zeros(n, dtype=bool)]
    for _ in range(rate):
        # each in0 with the in1 of another record (a record drawn at random, never itself when n > 1)
        other = (np.arange(n) + rng.integers(1, n, size=n)) % n if n > 1 else np.zeros(1, dtype=np.int64)
        rows0.append(np.arange(n))
        rows1.append(other)
        negative.append(np.ones(n, dtype=bool))
    r0, r1, neg = np.concatenate(rows0), np.concatenate(rows1), np.concatenate(negative)
    order = rng.permutation(len(r0))
    if bucket_width > 0:
        # pairs of similar lengths together: stable sort of the shuffled order by length bucket
        key = (padded.lengths[r0[order], 0] // bucket_width) * 10_000 + padded.lengths[r1[order], 1] // bucket_width
        order = order[np.argsort(key, kind="stable")]
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    if bucket_width > 0:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return [(r0[b], r1[b], neg[b]) for b in batches]


def _fit(env, step_model, network, optimizer, predictor, data, hps, rng, progress: Progress,
         checkpoints: Checkpoints, log: SageMakerLog, device) -> None:
    train_pairs = data["train"]
    padded = _Padded(train_pairs, device)
    n = len(train_pairs)
    softmax = hps["output_layer"] == "softmax"
    loss_fn = nn.CrossEntropyLoss(reduction="sum") if softmax else nn.MSELoss(reduction="sum")
    rate = hps["negative_sampling_rate"]
    if rate:
        log.info(f"Negative sampling: {rate} negative(s) per pair each epoch ({rate * n} in all), labelled 0")
    epochs, patience, tolerance = hps["epochs"], hps["early_stopping_patience"], hps["early_stopping_tolerance"]
    monitored = "validation" if "validation" in data else "train"
    for epoch in range(progress.first_epoch, epochs):
        tic = time.time()
        network.train()
        total, count = 0.0, 0
        batches = _epoch_order(padded, n, rate, hps["mini_batch_size"], hps["bucket_width"], rng)
        for r0, r1, neg in batches:
            i0, i1 = torch.from_numpy(r0).to(device), torch.from_numpy(r1).to(device)
            l0, l1 = padded.len0[i0], padded.len1[i1]
            ids0 = padded.ids0[i0, :int(l0.max())]
            ids1 = padded.ids1[i1, :int(l1.max())]
            y = torch.where(torch.from_numpy(neg).to(device), torch.zeros_like(padded.labels[i0]), padded.labels[i0])
            out = step_model(ids0, l0, ids1, l1)
            loss = loss_fn(out, y.long()) if softmax else loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            (loss / len(r0)).backward()
            optimizer.step()
            total += float(loss.detach())
            count += len(r0)
        train_loss = total / max(count, 1)
        if not math.isfinite(train_loss):
            raise DataError(f"the training loss became {train_loss} at epoch {epoch}; lower learning_rate="
                            f"{hps['learning_rate']} or check the labels")
        elapsed = time.time() - tic
        log.quality("train loss", "loss", train_loss, epoch=epoch)
        env.metric("train:loss", train_loss, step=epoch)
        metrics = {"loss": train_loss}
        if monitored == "validation":
            metrics = score(predictor, data["validation"])
            for name, kind, value in reported(metrics):
                log.quality(f"validation {name}", kind, value, epoch=epoch)
        log.info(f"#throughput_metric: host={log.host}, train throughput={count / max(elapsed, 1e-9):.1f} "
                 "records/second")
        loss = metrics["loss"]
        improved = not math.isfinite(progress.best_loss) or loss < progress.best_loss * (1 - tolerance)
        if improved:
            progress.bad_epochs = 0
        else:
            progress.bad_epochs += 1
        if loss < progress.best_loss:
            progress.best_loss, progress.best_epoch = loss, epoch
            progress.best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
            progress.best_metrics = {k: v for k, v in metrics.items() if k != "loss"}
        path = checkpoints.save(epoch, network, optimizer, rng, progress)
        log.info(f"Epoch[{epoch}] Elapsed time: {elapsed:.3f} seconds; checkpoint {path.name}")
        log.info(f"#progress_metric: host={log.host}, completed {100 * (epoch + 1) // epochs} % of epochs")
        env.progress(epoch + 1, epochs)
        if progress.bad_epochs >= patience:
            log.info(f"The {monitored} loss has not improved by early_stopping_tolerance={tolerance} in {patience} "
                     "epochs. Stopping training.")
            break
    if progress.best_state is None:
        raise DataError("no epoch was trained")
