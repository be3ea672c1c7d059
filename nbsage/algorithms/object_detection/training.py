"""Object Detection training: read and check the channels, train SSD, score, checkpoint, save.

Steps: 1. log the effective configuration as SageMaker's container does, validate it, and read
and check every training (and validation) image and label before the first step; 2. build the
network for base_network and the input size, load a previous model or base-network weights from
the `model` channel (nothing can be downloaded: use_pretrained_model=1 without such a file trains
from scratch, one log line says so), freeze the layers freeze_layer_pattern matches; 3. each epoch
draws the images in a seeded random order, augments each as SSD does, matches the default boxes
(IoU >= 0.5, plus each object's best box), and minimises softmax cross-entropy with 3:1
hard-negative mining plus smooth L1, both per matched box; the learning rate drops by
lr_scheduler_factor at the epochs of lr_scheduler_step; 4. after each epoch validation:mAP (VOC07
11-point at overlap_threshold) and COCO-style AP are logged, early stopping watches the mAP, and
a checkpoint is written when the job keeps checkpoints (a job started again with the same
checkpoint folder resumes after the last epoch); 5. the best-mAP epoch's network (the last one
without validation) is saved.

With instance_count > 1 the hosts train one network with torch.distributed (DistributedDataParallel
through nbsage.algorithms.distributed): each host takes its share of the training images
(FullyReplicated: images rank::N; ShardedByS3Key: the files it was given), every host takes the
same number of steps of mini_batch_size images; after each epoch every host detects the objects of its
share of the validation images and the first host scores them all (validation:mAP), checkpoints and
saves. Each host logs a checksum of its parameters at the end; they agree, as the gradients were averaged.
On one instance with several GPUs each mini-batch is split across them (DataParallel).
"""
from __future__ import annotations

import json
import math
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms import distributed
from nbsage.algorithms.torch_checkpoints import TorchCheckpoints
from nbsage.algorithms.torch_device import training_device
from nbsage.algorithms.log_lines import SageMakerLog
from nbsage.algorithms.object_detection import boxes as box_ops
from nbsage.algorithms.object_detection.augment import augment, prepare
from nbsage.algorithms.object_detection.declaration import ALGORITHM, scheduler_steps
from nbsage.algorithms.object_detection.detector import PARAMS_FILE, SETTINGS_FILE, Detector, Settings, read_settings
from nbsage.algorithms.object_detection.evaluation import coco_mean_ap, mean_ap
from nbsage.algorithms.object_detection.network import SSD, multibox_loss
from nbsage.algorithms.object_detection.records import Example, read_examples
from nbsage.errors import DataError

CHECKPOINT_PREFIX = "object-detection-checkpoint-epoch"
CHECKPOINTS_KEPT = 2
MATCH_THRESHOLD = 0.5    # SSD's matching IoU (overlap_threshold is the evaluation's, as SageMaker's doc says)


def train(env) -> None:
    with distributed.torch_process_group(env) as cluster:
        _train(env, cluster)


def _train(env, cluster) -> None:
    started = time.time()
    log = SageMakerLog(env)
    hps = _configuration(env, log)
    device = training_device(env, log)
    seed = hps["_seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    _check_shard(env, cluster)
    train_set = read_examples(env, "train", hps["num_classes"], hps["label_width"], log.info)
    has_validation = "validation" in env.channels
    validation = _read_validation(env, cluster, hps, log) if has_validation else []
    log.info(f"{len(train_set)} training images ({sum(len(e.objects) for e in train_set)} objects), "
             f"{len(validation)} validation images")
    local, total = _host_share(env, cluster, train_set, log)
    if has_validation and cluster.distributed:
        validation = _validation_share(env, cluster, validation, log)
    if total != hps["num_training_samples"]:
        log.info(f"num_training_samples={hps['num_training_samples']} but the train channel holds "
                 f"{total} images; lr_scheduler_step counts epochs, so the schedule is unaffected here")

    settings = Settings(hps["base_network"], hps["num_classes"], hps.get("_small_image_shape") or hps["image_shape"],
                        hps["_network_width"], hps["nms_threshold"])
    if settings.image_shape != hps["image_shape"]:
        log.info(f"_small_image_shape={settings.image_shape}: training at {settings.image_shape}x"
                 f"{settings.image_shape} instead of image_shape={hps['image_shape']} (nbsage addition)")
    network = settings.build()
    log.info(f"SSD with base network {settings.base_network} (width {settings.width:g}): feature maps "
             f"{network.feature_sizes}, {network.anchors.shape[0]} default boxes, "
             f"{sum(p.numel() for p in network.parameters())} parameters")
    _initial_weights(env, hps, network, log)
    _freeze(network, hps["freeze_layer_pattern"], log)
    network.to(device)
    step_model = distributed.wrap(network, str(device)) if cluster.distributed else _gpus(network, device, hps, log)
    optimizer = _optimizer(hps, [p for p in network.parameters() if p.requires_grad])
    steps = scheduler_steps(hps["lr_scheduler_step"])

    batch = hps["mini_batch_size"]
    n_batches = max(1, math.ceil(len(local) / batch))
    if cluster.distributed:
        n_batches = int(distributed.agree(n_batches, "min"))

    state = _State()
    checkpoint_dir = Path(env.checkpoints_dir) if env.checkpointing else None
    signature = {"settings": vars(settings), "num_train": total, "mini_batch_size": batch,
                 "optimizer": hps["optimizer"]}
    checkpoints = _Checkpoints(checkpoint_dir, signature, log.info)
    resumed = checkpoints.latest()
    if cluster.distributed:
        resumed = distributed.broadcast_object(resumed if cluster.is_master else None)
    if resumed is not None:
        network.load_state_dict(resumed["network"])
        optimizer.load_state_dict(resumed["optimizer"])
        state = _State(**resumed["state"])
        rng = np.random.default_rng([seed, state.first_epoch])
        log.info(f"Resuming from checkpoint {resumed['path']}: epochs 0-{state.first_epoch - 1} done")
    if cluster.distributed:
        rng = np.random.default_rng([seed, cluster.rank, state.first_epoch])

    epochs = hps["epochs"]
    anchors_xyxy = box_ops.to_corners(network.anchors).to(device)
    anchors = network.anchors.to(device)
    for epoch in range(state.first_epoch, epochs):
        lr = hps["learning_rate"] * hps["lr_scheduler_factor"] ** sum(1 for s in steps if epoch >= s)
        for group in optimizer.param_groups:
            group["lr"] = lr
        tic = time.time()
        network.train()
        order = rng.permutation(len(local))
        ce_sum = l1_sum = 0.0
        for b in range(n_batches):
            idx = [int(order[(b * batch + k) % len(order)]) for k in range(min(batch, len(order)) or 1)]
            if len(idx) == 1:
                idx = idx * 2  # batch normalisation needs two images; the second is another augmented draw
            images, gt = _batch([local[i] for i in idx], settings.image_shape, rng, hps["_augmentation"] == "ssd")
            logits, deltas = step_model(images.to(device))
            labels, matched = box_ops.match(gt.to(device), anchors_xyxy, MATCH_THRESHOLD)
            ce, l1 = multibox_loss(logits.float(), deltas.float(), labels, matched, anchors)
            optimizer.zero_grad(set_to_none=True)
            (ce + l1).backward()
            optimizer.step()
            ce_sum += ce.detach().item()
            l1_sum += l1.detach().item()
        elapsed = time.time() - tic
        ce_mean, l1_mean = ce_sum / n_batches, l1_sum / n_batches
        if cluster.distributed:
            ce_mean, l1_mean = distributed.mean(ce_mean), distributed.mean(l1_mean)
        if not (math.isfinite(ce_mean) and math.isfinite(l1_mean)):
            raise DataError(f"the training loss became {ce_mean + l1_mean} at epoch {epoch}; lower learning_rate="
                            f"{hps['learning_rate']}")
        log.info(f"#quality_metric: host={log.host}, epoch={epoch}, batch={n_batches} train cross_entropy "
                 f"<loss>={ce_mean!r}")
        log.info(f"#quality_metric: host={log.host}, epoch={epoch}, batch={n_batches} train smooth_l1 "
                 f"<loss>={l1_mean!r}")
        log.info(f"#throughput_metric: host={log.host}, train throughput={n_batches * batch / max(elapsed, 1e-9):.2f} "
                 "records/second")
        if cluster.is_master:
            env.metric("train:cross_entropy", ce_mean, step=epoch)
            env.metric("train:smooth_l1", l1_mean, step=epoch)
        scored = _detect(settings, network, validation, cluster) if has_validation else None
        stop = False
        if cluster.is_master:
            stop = _end_epoch(env, hps, settings, network, scored, epoch, state, log)
            if checkpoint_dir is not None:
                checkpoints.write(epoch, {"signature": signature, "network": network.state_dict(),
                                          "optimizer": optimizer.state_dict(), "state": vars(state)})
        log.info(f"Epoch[{epoch}] Time cost={elapsed:.3f} lr={lr:g}")
        log.info(f"#progress_metric: host={log.host}, completed {100 * (epoch + 1) // epochs} % of epochs")
        env.progress(epoch + 1, epochs)
        if cluster.distributed:
            stop = bool(distributed.agree(int(stop), "max"))
        if stop:
            log.info(f"Early stopping: validation mAP has not improved in {hps['early_stopping_patience']} epochs")
            break
    if cluster.distributed:
        _compare_parameters(network, cluster, log)
    if not cluster.is_master:
        log.info("The first host saves the model")
        return
    if state.best_state is not None:
        network.load_state_dict(state.best_state)
        log.info(f"Keeping the network of epoch {state.best_epoch} (validation mAP {state.best_map!r})")
    Detector(settings, network.cpu()).save(env.model_dir)
    log.info(f"Saved the model to {env.model_dir} (parameters checksum {parameter_checksum(network)})")
    log.info(log.total_time("AWS/ObjectDetection", started))


def _gpus(network: SSD, device: torch.device, hps: dict, log: SageMakerLog):
    """The module the steps call on one instance: DataParallel over its GPUs when it has several, each
    handling mini_batch_size / GPUs images as SageMaker's doc says (at least two per GPU, for batch
    normalisation), else the network itself. (Several instances: one GPU each, see distributed.)"""
    gpus = min(torch.cuda.device_count(), hps["mini_batch_size"] // 2) if device.type == "cuda" else 0
    if gpus < 2:
        return network
    log.info(f"Splitting each mini-batch of {hps['mini_batch_size']} images across {gpus} GPUs")
    return torch.nn.DataParallel(network, device_ids=list(range(gpus)))


def _read_validation(env, cluster, hps: dict, log: SageMakerLog) -> list[Example]:
    """The validation images this host holds (none where ShardedByS3Key gave it no file)."""
    if cluster.distributed and env.channels["validation"].distribution == "ShardedByS3Key" and \
            not env.channel_files("validation"):
        log.info("No validation file on this host (ShardedByS3Key); the other hosts score theirs")
        return []
    return read_examples(env, "validation", hps["num_classes"], hps["label_width"], log.info)


def _validation_share(env, cluster, validation: list[Example], log: SageMakerLog) -> list[Example]:
    """The validation images this host scores after each epoch: its share, as for training; the first
    host computes validation:mAP over every host's detections."""
    sharded = env.channels["validation"].distribution == "ShardedByS3Key"
    local = distributed.channel_share(env, "validation", validation)
    total = int(distributed.agree(len(local), "sum")) if sharded else len(validation)
    log.info(f"Validation: {len(local)} of {total} images scored on this host after each epoch")
    return local


def _check_shard(env, cluster) -> None:
    """A ShardedByS3Key train channel that gave this host no file: say so (not 'the channel is empty')."""
    sharded = env.channels["train"].distribution == "ShardedByS3Key"
    if cluster.distributed and sharded and not env.channel_files("train"):
        raise DataError(f"host {cluster.current_host} has no training images: ShardedByS3Key hands out whole "
                        f"files, and the train channel has fewer files than the job's {cluster.size} hosts; "
                        "split the data into at least one file per host, or use FullyReplicated")


def _host_share(env, cluster, train_set: list[Example], log: SageMakerLog) -> tuple[list[Example], int]:
    """This host's training images and the job's image count.

    As SageMaker's MXNet container splits a RecordIO file between the workers of a dist_sync job:
    FullyReplicated (every host holds every image) gives host i of N the images i, i+N, ...;
    ShardedByS3Key already gave each host its own files, which it reads whole.
    """
    if not cluster.distributed:
        return train_set, len(train_set)
    sharded = env.channels["train"].distribution == "ShardedByS3Key"
    local = distributed.channel_share(env, "train", train_set)
    total = int(distributed.agree(len(local), "sum")) if sharded else len(train_set)
    how = ("ShardedByS3Key: the train files this host was given" if sharded
           else f"FullyReplicated: images {cluster.rank}, {cluster.rank + cluster.size}, ... of the channel")
    log.info(f"Distributed training on {cluster.size} hosts (rank {cluster.rank}): {len(local)} of {total} images "
             f"on this host ({how}); gradients are averaged over the hosts every step (dist_sync)")
    if not local:  # FullyReplicated with fewer images than hosts (a ShardedByS3Key file holds at least one)
        raise DataError(f"host {cluster.current_host} has no training images: the train channel holds {total} "
                        f"images for {cluster.size} hosts; use fewer instances or more images")
    return local, total


def parameter_checksum(network) -> str:
    """A short SHA-256 of the network's trainable state (its parameters, in order, as float32 bytes).

    Hosts that average their gradients every step hold the same parameters after training; batch
    normalisation's running statistics are left out, as each host updates them from its own images.
    """
    import hashlib
    digest = hashlib.sha256()
    for name, p in network.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _compare_parameters(network, cluster, log: SageMakerLog) -> None:
    """Each host logs its parameters' checksum; the first host says whether all hosts agree."""
    mine = parameter_checksum(network)
    log.info(f"Network parameters after training: checksum {mine} on host {cluster.current_host}")
    checksums = distributed.gather_objects(mine)
    if not cluster.is_master:
        return
    if len(set(checksums)) == 1:
        log.info(f"All {cluster.size} hosts hold the same network parameters (checksum {mine})")
    else:
        by_host = ", ".join(f"{host} {c}" for host, c in zip(cluster.hosts, checksums))
        log.info(f"WARNING: the hosts' network parameters differ after training: {by_host}; the model saved is "
                 f"{cluster.current_host}'s")


class _State:
    def __init__(self, first_epoch: int = 0, best_map: float = -1.0, best_epoch: int = -1, bad_epochs: int = 0,
                 best_state: dict | None = None):
        self.first_epoch, self.best_map, self.best_epoch = first_epoch, best_map, best_epoch
        self.bad_epochs, self.best_state = bad_epochs, best_state


def _configuration(env, log: SageMakerLog) -> dict:
    """The two configuration lines SageMaker's container prints, then the validated hyperparameters."""
    defaults = {hp.name: hp.to_string(hp.default) for hp in ALGORITHM.hyperparameters
                if hp.default is not None and not hp.name.startswith("_")}
    log.info(f"Reading default configuration from /opt/amazon/lib/python3.8/site-packages/algorithm/"
             f"default-input.json: {json.dumps(defaults, sort_keys=True)}")
    log.info(f"Reading provided configuration from {env.root.config_dir / 'hyperparameters.json'}: "
             f"{json.dumps(env.hyperparameters, sort_keys=True)}")
    hps = ALGORITHM.validate(env.hyperparameters)
    log.info(f"Final configuration: {json.dumps({**defaults, **env.hyperparameters}, sort_keys=True)}")
    ALGORITHM.check_channels({name: ch.content_type for name, ch in env.channels.items()})
    return hps


def _batch(examples: list[Example], size: int, rng: np.random.Generator,
           full: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, S, S) augmented inputs and (B, G, 5) objects padded with class -1."""
    images, objects = [], []
    for ex in examples:
        x, obj = augment(ex.image(), ex.objects, size, rng, full)
        images.append(x)
        objects.append(obj)
    g = max(1, max(len(o) for o in objects))
    gt = np.full((len(objects), g, 5), -1.0, dtype=np.float32)
    for i, o in enumerate(objects):
        gt[i, :len(o)] = o
    return torch.from_numpy(np.stack(images)), torch.from_numpy(gt)


def _optimizer(hps: dict, params: list) -> torch.optim.Optimizer:
    lr, wd = hps["learning_rate"], hps["weight_decay"]
    name = hps["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=hps["momentum"], weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)


def _freeze(network: SSD, pattern: str, log: SageMakerLog) -> None:
    if not pattern:
        return
    frozen = []
    for name, params in network.layer_names().items():
        if re.match(pattern, name):
            for p in params:
                p.requires_grad_(False)
            frozen.append(name)
    if not frozen:
        raise DataError(f"freeze_layer_pattern={pattern!r} matches no layer; layers are "
                        f"{', '.join(network.layer_names())}")
    log.info(f"freeze_layer_pattern={pattern!r}: not training {', '.join(frozen)}")


# ---- the model channel -----------------------------------------------------------------------------------
def _initial_weights(env, hps: dict, network: SSD, log: SageMakerLog) -> None:
    """A previous model (incremental training) or base-network weights from the `model` channel."""
    files = env.channel_files("model") if "model" in env.channels else []
    if not files:
        if hps["use_pretrained_model"] == 1:
            log.info("use_pretrained_model=1: no ImageNet-pretrained base network can be downloaded here, so the "
                     f"{hps['base_network']} base network trains from scratch (a weights file in the model channel "
                     "would be used)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = _unpack(files, Path(tmp))
        if (folder / SETTINGS_FILE).exists() and (folder / PARAMS_FILE).exists():
            previous = read_settings(folder)
            for key in ("base_network", "num_classes"):
                if getattr(previous, key) != hps[key]:
                    raise DataError(f"the model channel holds a model trained with {key}={getattr(previous, key)!r}; "
                                    f"incremental training needs the same {key} (this job has {hps[key]!r})")
            if previous.width != hps["_network_width"]:
                raise DataError(f"the model channel holds a model of _network_width={previous.width:g}; this job has "
                                f"{hps['_network_width']:g}")
            state = torch.load(folder / PARAMS_FILE, map_location="cpu", weights_only=True)
            loaded = _load_matching(network, state)
            log.info(f"Incremental training: starting from the model in the model channel ({loaded} of "
                     f"{len(network.state_dict())} tensors)")
            return
        weights = [p for p in folder.rglob("*") if p.suffix in (".params", ".pt", ".pth")]
        if not weights:
            raise DataError(f"the model channel holds neither a model ({SETTINGS_FILE} + {PARAMS_FILE}) nor a "
                            "weights file (.params, .pt, .pth)")
        try:
            state = torch.load(weights[0], map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file: say which
            raise DataError(f"{weights[0].name} in the model channel is not a torch weights file ({e})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else {}
        loaded = _load_matching(network, state) + _load_matching(network, {f"base.{k}": v for k, v in state.items()})
        if loaded == 0:
            raise DataError(f"{weights[0].name} in the model channel has no tensor whose name and shape match the "
                            f"{hps['base_network']} network (names such as base.layers.conv1_1.0.weight)")
        log.info(f"Base network weights from {weights[0].name}: {loaded} tensors loaded")


def _unpack(files: list[Path], tmp: Path) -> Path:
    for f in files:
        if f.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(f) as tar:
                tar.extractall(tmp, filter="data")
        else:
            shutil.copy(f, tmp / f.name)
    return tmp


def _load_matching(network: SSD, state: dict) -> int:
    own = network.state_dict()
    matching = {k: v for k, v in state.items() if k in own and hasattr(v, "shape") and v.shape == own[k].shape}
    network.load_state_dict(matching, strict=False)
    return len(matching)


# ---- after each epoch ------------------------------------------------------------------------------------
def _detect(settings, network, validation: list[Example], cluster) -> tuple[list, list]:
    """(detections, ground truth) of the validation images; with several hosts each scores its share with
    the first host's batch-normalisation statistics (the parameters are already the same everywhere) and
    every host gets all of them."""
    if cluster.distributed:
        buffers = distributed.broadcast_object({k: v.detach().cpu() for k, v in network.named_buffers()}
                                               if cluster.is_master else None)
        for name, buffer in network.named_buffers():
            buffer.copy_(buffers[name])
    detector = Detector(settings, network, device=str(next(network.parameters()).device))
    detections = []
    for i in range(0, len(validation), 16):
        batch = np.stack([prepare(ex.image(), settings.image_shape) for ex in validation[i:i + 16]])
        detections += detector.predict_inputs(torch.from_numpy(batch))
    truths = [ex.objects for ex in validation]
    if cluster.distributed:
        parts = distributed.gather_objects((detections, truths))
        detections = [d for part, _ in parts for d in part]
        truths = [t for _, part in parts for t in part]
    return detections, truths


def _end_epoch(env, hps, settings, network, scored: tuple[list, list] | None, epoch: int, state: _State,
               log: SageMakerLog) -> bool:
    """Score the validation detections, keep the best network, and decide early stopping (True: stop)."""
    state.first_epoch = epoch + 1
    if scored is None:
        return False
    detections, truths = scored
    score = mean_ap(detections, truths, settings.num_classes, hps["overlap_threshold"])
    coco = coco_mean_ap(detections, truths, settings.num_classes)
    log.info(f"#quality_metric: host={log.host}, epoch={epoch}, validation mAP <score>=({score!r})")
    log.info(f"#quality_metric: host={log.host}, epoch={epoch}, validation coco_AP <score>=({coco!r})")
    env.metric("validation:mAP", score, step=epoch)
    env.metric("validation:coco_AP", coco, step=epoch)
    improved = state.best_map < 0 or score > state.best_map * (1 + hps["early_stopping_tolerance"]) or (
        state.best_map == 0 and score > 0)
    if improved:
        state.best_map, state.best_epoch, state.bad_epochs = score, epoch, 0
        state.best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    else:
        state.bad_epochs += 1
    return (hps["early_stopping"] and epoch + 1 >= hps["early_stopping_min_epochs"]
            and state.bad_epochs >= hps["early_stopping_patience"])


class _Checkpoints(TorchCheckpoints):
    """One file per finished epoch; the newest two kept."""

    prefix = CHECKPOINT_PREFIX
    kept = CHECKPOINTS_KEPT
