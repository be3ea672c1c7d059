"""Seq2Seq training: read the channels, train with validation checkpoints, keep the best, save.

Steps: 1. read and check the vocab files and the train and validation records (ids inside the
vocabularies; sequences longer than max_seq_len_* truncated with a warning, as SageMaker
documents); 2. batches of `batch_size` pairs drawn from Sockeye's (source, target) length buckets
(`bucket_width` steps on the longer side; a bucket's last batch filled up with its own pairs), or at
random with bucketing_enabled=false, in a new order every epoch; 3. every
`checkpoint_frequency_num_batches` updates, and when training ends, a checkpoint: validation
perplexity and accuracy (and BLEU when asked), logged as Sockeye's `Checkpoint [n]` line and as
`#quality_metric` lines; the best checkpoint by `optimized_metric` is kept, the learning-rate
schedule steps, and training stops after `checkpoint_threshold` checkpoints without improvement
(once `min_num_epochs` are done), after `max_num_epochs` or after `max_num_batches`; 4. the
kept checkpoint's weights, its settings and both vocabularies are saved to the model directory.

Seq2Seq on SageMaker trains on one machine only (its GPUs), so a job with several instances is
refused. nbsage trains on the instance type's device: CUDA for ml.p*/ml.g*/local_gpu, else CPU
(SageMaker's container is GPU-only); one device, where SageMaker would use all the machine's GPUs.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from nbsage.algorithms.container_config import configuration
from nbsage.algorithms.log_lines import SageMakerLog
from nbsage.algorithms.torch_device import training_device
from nbsage.algorithms.seq2seq.checkpoints import Checkpoints, Progress, resume
from nbsage.algorithms.seq2seq.declaration import ALGORITHM
from nbsage.algorithms.seq2seq.evaluation import bleu, teacher_forced
from nbsage.algorithms.seq2seq.network import NetworkConfig, Seq2SeqNetwork, initialise
from nbsage.algorithms.seq2seq.optim import Optimizer, Schedule
from nbsage.algorithms.seq2seq.records import Pairs, read_pairs
from nbsage.algorithms.seq2seq.translator import Translator
from nbsage.algorithms.seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID, find_vocabularies
from nbsage.errors import DataError, ValidationError

SEED = 0
MAXIMISED = {"bleu", "accuracy"}


def parallel_buckets(max_source: int, max_target: int, width: int, ratio: float) -> list[tuple[int, int]]:
    """Sockeye's (source, target) length buckets: the longer side of the data in steps of `width`, the
    shorter in steps scaled by the mean target/source length ratio, each side ending at its maximum
    (a side that gets there first stays there); one diagonal of buckets, not a grid."""
    source_step = target_step = width
    if ratio >= 1.0:
        source_step = max(1, int(width / ratio))
    else:
        target_step = max(1, int(width * ratio))

    def steps(maximum: int, step: int) -> list[int]:
        out = list(range(step, maximum + step, step))
        out[-1] = maximum
        return out

    source, target = steps(max_source, source_step), steps(max_target, target_step)
    source += [source[-1]] * (len(target) - len(source))
    target += [target[-1]] * (len(source) - len(target))
    return list(dict.fromkeys((max(2, s), max(2, t)) for s, t in zip(source, target)))


class Batches:
    """A channel's pairs on the device, padded once, cut into batches of similar lengths each epoch.

    With bucketing, pairs go to the first of Sockeye's length buckets (`parallel_buckets`) they fit,
    and a bucket whose pairs do not fill its last batch fills it with pairs of the same bucket drawn
    at random (Sockeye's default `fill_up=replicate`), so every batch has `batch_size` pairs."""

    def __init__(self, pairs: Pairs, batch_size: int, bucket_width: int, bucketing: bool, device):
        self.n, self.batch_size = len(pairs), batch_size
        self.src_len = np.array([len(s) for s in pairs.source], dtype=np.int64)
        self.trg_len = np.array([len(t) + 1 for t in pairs.target], dtype=np.int64)  # + <s> or </s>
        # int32 on the device (half of int64's memory), widened per batch
        source = np.full((self.n, self.src_len.max()), PAD_ID, dtype=np.int32)
        target = np.full((self.n, self.trg_len.max() + 1), PAD_ID, dtype=np.int32)
        for i, (s, t) in enumerate(zip(pairs.source, pairs.target)):
            source[i, :len(s)] = s
            target[i, 0] = BOS_ID
            target[i, 1:len(t) + 1] = t
            target[i, len(t) + 1] = EOS_ID
        self.source = torch.from_numpy(source).to(device)
        self.target = torch.from_numpy(target).to(device)
        self.lengths = torch.from_numpy(self.src_len).to(device)
        self.fill_up = bucketing
        self.buckets = np.zeros(self.n, dtype=np.int64)
        if bucketing:
            ratio = float(np.mean(self.trg_len / np.maximum(self.src_len, 1)))
            bounds = np.array(parallel_buckets(int(self.src_len.max()), int(self.trg_len.max()), bucket_width, ratio))
            fits = (self.src_len[:, None] <= bounds[None, :, 0]) & (self.trg_len[:, None] <= bounds[None, :, 1])
            self.buckets = np.where(fits.any(1), fits.argmax(1), len(bounds) - 1)

    def epoch(self, seed: int, epoch: int) -> list[np.ndarray]:
        """The batches (index arrays) of an epoch: the same for the same seed and epoch (so a resumed job
        continues the same order)."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(self.n)
        order = order[np.argsort(self.buckets[order], kind="stable")]  # shuffled within each bucket
        batches = []
        for bucket in np.unique(self.buckets):
            members = order[self.buckets[order] == bucket]
            short = -len(members) % self.batch_size
            if self.fill_up and short:
                members = np.concatenate([members, rng.choice(members, short)])
            batches += [members[i:i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def tensors(self, index: np.ndarray):
        """(source, lengths, target_in, target_out) of a batch, trimmed to its longest sentence."""
        idx = torch.from_numpy(index).to(self.source.device)
        S, T = int(self.src_len[index].max()), int(self.trg_len[index].max())
        target = self.target[idx, :T + 1].long()
        return self.source[idx, :S].long(), self.lengths[idx], target[:, :T], target[:, 1:T + 1]

    def in_order(self):
        return (self.tensors(np.arange(i, min(i + self.batch_size, self.n))) for i in range(0, self.n, self.batch_size))


def train(env) -> None:
    started = time.time()
    log = SageMakerLog(env)
    if len(env.hosts) > 1:
        raise ValidationError(
            f"Seq2Seq trains on a single instance: SageMaker's Seq2Seq supports single-machine training only "
            f"(one or more GPUs of one instance), and this job has InstanceCount {len(env.hosts)}; "
            "use instance_count=1")
    hps = configuration(env, log, ALGORITHM, name_file=False)
    device = training_device(env, log)
    source_vocab, target_vocab = find_vocabularies(env.channels["vocab"].path)
    log.info(f"Vocabulary sizes: source {len(source_vocab)}, target {len(target_vocab)}")
    limits = (hps["max_seq_len_source"], hps["max_seq_len_target"])
    sizes = (len(source_vocab), len(target_vocab))
    train_pairs = read_pairs(_files(env, "train"), sizes, limits, "train", log.info)
    val_pairs = read_pairs(_files(env, "validation"), sizes, limits, "validation", log.info)
    log.info(f"Training data: {len(train_pairs)} sentence pairs, {train_pairs.num_tokens} target tokens; "
             f"validation data: {len(val_pairs)} sentence pairs")

    seed = int(hps.get("_seed", SEED))
    torch.manual_seed(seed)
    config = NetworkConfig.from_hyperparameters(hps, *sizes)
    network = Seq2SeqNetwork(config)
    initialise(network, hps["weight_init_type"], hps["weight_init_scale"], hps["xavier_factor_type"])
    network.to(device).train()
    log.info(f"Network: {config.encoder_type} encoder, rnn decoder with {config.attention_type} attention, "
             f"{sum(p.numel() for p in network.parameters())} parameters")
    optimizer = Optimizer(network.parameters(), hps["optimizer_type"], hps["learning_rate"], hps["weight_decay"],
                          hps.get("momentum") if hps["optimizer_type"] == "sgd" else None, hps["clip_gradient"])
    schedule = Schedule(optimizer, hps["lr_scheduler_type"], hps["plateau_reduce_lr_factor"],
                        hps["plateau_reduce_lr_threshold"], hps["fixed_rate_lr_half_life"])
    batches = Batches(train_pairs, hps["batch_size"], hps["bucket_width"], hps["bucketing_enabled"], device)
    validation = Batches(val_pairs, hps["batch_size"], hps["bucket_width"], False, device)
    signature = {"network": config.to_dict(), "train_pairs": len(train_pairs), "batch_size": hps["batch_size"],
                 "bucket_width": hps["bucket_width"], "bucketing_enabled": hps["bucketing_enabled"], "seed": seed}
    checkpoints = Checkpoints(env.checkpoints_dir if env.checkpointing else None, signature, log.info)
    progress = resume(checkpoints, network, optimizer, schedule, log.info)
    settings = {"beam_size": hps["beam_size"], "max_seq_len_source": limits[0], "max_seq_len_target": limits[1],
                "hyperparameters": {k: v for k, v in env.hyperparameters.items()}}
    translator = Translator(network, source_vocab, target_vocab, settings, str(device))
    loop = _Loop(env, log, hps, network, optimizer, schedule, batches, validation, val_pairs, translator,
                 checkpoints, progress, seed)
    loop.run()
    if progress.best_state is None:
        raise DataError("no checkpoint was made: training ended before its first batch")
    metric = hps["optimized_metric"]
    log.info(f"Best checkpoint: [{progress.best_checkpoint}] with validation {metric}={progress.best_value!r}")
    for name, value in progress.best_metrics.items():
        log.info(f"#quality_metric: host={log.host}, validation {name} <{_kind(name)}>={value!r}")
        env.metric(f"validation:{name}", value)
    network.load_state_dict(progress.best_state)
    log.info(f"Serializing to {env.model_dir}")
    translator.save(env.model_dir)
    log.info(log.total_time("AWS/Seq2Seq", started))


def _kind(metric: str) -> str:
    return "score" if metric in MAXIMISED else "loss"


def _files(env, name: str):
    files = env.channel_files(name)
    if not files:
        raise DataError(f"channel {name!r} has no data files under {env.channels[name].path}")
    return files


class _Loop:
    """The batches, the checkpoints and the stopping rules of one job."""

    def __init__(self, env, log, hps, network, optimizer, schedule, batches, validation, val_pairs, translator,
                 checkpoints, progress: Progress, seed: int):
        self.env, self.log, self.hps = env, log, hps
        self.network, self.optimizer, self.schedule = network, optimizer, schedule
        self.batches, self.validation, self.val_pairs, self.translator = batches, validation, val_pairs, translator
        self.checkpoints, self.progress, self.seed = checkpoints, progress, seed
        self.train_loss = self.train_correct = self.train_tokens = 0.0
        self.tic, self.pairs_seen = time.time(), 0

    def run(self) -> None:
        p, hps = self.progress, self.hps
        max_epochs, max_batches = hps.get("max_num_epochs"), hps["max_num_batches"]
        freq = hps["checkpoint_frequency_num_batches"]
        while max_epochs is None or p.epoch < max_epochs:
            order = self.batches.epoch(self.seed, p.epoch)
            while p.batch < len(order):
                self._step(order[p.batch])
                p.batch += 1
                if p.batch == len(order):
                    p.epoch, p.batch = p.epoch + 1, 0
                if p.updates % freq == 0 and self._checkpoint():
                    return
                if 0 < max_batches <= p.updates:
                    self.log.info(f"Maximum number of batches ({max_batches}) reached")
                    self._final()
                    return
                if p.batch == 0:
                    break
            if max_epochs is not None:
                self.env.progress(min(p.epoch, max_epochs), max_epochs)
        self.log.info(f"Maximum number of epochs ({max_epochs}) reached")
        self._final()

    def _final(self) -> None:
        if self.progress.updates and self.progress.history and self.progress.history[-1]["updates"] == self.progress.updates:
            return
        self._checkpoint(final=True)

    def _step(self, index: np.ndarray) -> None:
        source, lengths, target_in, target_out = self.batches.tensors(index)
        logits = self.network(source, lengths, target_in)
        flat = target_out.reshape(-1)
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, ignore_index=PAD_ID, reduction="sum")
        words = flat != PAD_ID
        n = words.sum()
        self.optimizer.zero_grad()
        (loss_sum / n).backward()
        self.optimizer.step()
        self.progress.updates += 1
        self.pairs_seen += len(index)
        self.train_loss += float(loss_sum.detach())
        self.train_tokens += int(n)
        if self.hps["training_metric"] == "accuracy":
            self.train_correct += int((logits.detach().argmax(-1).reshape(-1)[words] == flat[words]).sum())
        if not math.isfinite(self.train_loss):
            raise DataError(f"the training loss became {self.train_loss} at update {self.progress.updates}; "
                            f"lower learning_rate={self.hps['learning_rate']} or set clip_gradient")

    def _validation_metrics(self) -> dict:
        metrics = teacher_forced(self.network, self.validation.in_order())
        out = {"perplexity": metrics["perplexity"], "accuracy": metrics["accuracy"]}
        sample = self.hps["bleu_sample_size"]
        if sample != 0 or self.hps["optimized_metric"] == "bleu":
            n = len(self.val_pairs) if sample <= 0 else min(sample, len(self.val_pairs))
            results = self.translator.translate_ids([s.tolist() for s in self.val_pairs.source[:n]])
            vocab = self.translator.target_vocab
            out["bleu"] = bleu([vocab.decode(ids) for ids, _ in results],
                               [vocab.decode(t.tolist()) for t in self.val_pairs.target[:n]])
        self.network.train()
        return out

    def _checkpoint(self, final: bool = False) -> bool:
        """Validate, keep the best, step the schedule, write the checkpoint; True when training should stop."""
        p, hps, log = self.progress, self.hps, self.log
        elapsed = max(time.time() - self.tic, 1e-9)
        p.checkpoint += 1
        metrics = self._validation_metrics()
        train_tokens = max(self.train_tokens, 1)
        train_value = (self.train_correct / train_tokens if hps["training_metric"] == "accuracy"
                       else math.exp(min(self.train_loss / train_tokens, 700.0)))
        train_name = hps["training_metric"]
        where = f"epoch={p.epoch}, batch={p.updates}"
        log.info(f"Checkpoint [{p.checkpoint}]\tUpdates={p.updates} Epoch={p.epoch} "
                 f"Train-{train_name}={train_value:.6f} "
                 + " ".join(f"Validation-{k}={v:.6f}" for k, v in metrics.items()))
        log.info(f"#quality_metric: host={log.host}, {where} train {train_name} <{_kind(train_name)}>={train_value!r}")
        for name, value in metrics.items():
            log.info(f"#quality_metric: host={log.host}, {where} validation {name} <{_kind(name)}>={value!r}")
            self.env.metric(f"validation:{name}", value, step=p.checkpoint)
        log.info(f"#throughput_metric: host={log.host}, train throughput={self.pairs_seen / elapsed:.1f} records/second")
        log.info(f"Speed: {self.train_tokens / elapsed:.1f} target tokens/second ({int(self.train_tokens)} "
                 f"tokens in {elapsed:.3f} s)")
        metric = hps["optimized_metric"]
        value = metrics[metric]
        better = math.isnan(p.best_value) or (value > p.best_value if metric in MAXIMISED else value < p.best_value)
        if better:
            p.best_value, p.best_checkpoint, p.bad_checkpoints = value, p.checkpoint, 0
            p.best_metrics = dict(metrics)
            p.best_state = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}
        else:
            p.bad_checkpoints += 1
            log.info(f"Validation {metric} did not improve for {p.bad_checkpoints} checkpoint(s)")
        if self.schedule.after_checkpoint(better):
            log.info(f"Learning rate changed to {self.optimizer.lr:g}")
        p.history.append({"updates": p.updates, **metrics})
        path = self.checkpoints.save(p, self.network, self.optimizer, self.schedule)
        if path is not None:
            log.info(f"Saved checkpoint {path.name}")
        self.train_loss = self.train_correct = self.train_tokens = 0.0
        self.tic, self.pairs_seen = time.time(), 0
        if final:
            return True
        if p.bad_checkpoints >= hps["checkpoint_threshold"] and p.epoch >= hps["min_num_epochs"]:
            log.info(f"Validation {metric} has not improved for {p.bad_checkpoints} checkpoints "
                     f"(checkpoint_threshold={hps['checkpoint_threshold']}). Stopping training.")
            return True
        return False
