"""Object Detection: nbsage's SSD job against a plain PyTorch loop training the same SSD, same run.

Both train SSD-300 (VGG-16 base, `image_shape` 300, 8,732 default boxes) from scratch on the same
generated set (three shape classes, up to three an image, pasted on crops of scikit-learn's sample photographs, exact
boxes), with the same network width, initial weights (the same torch seed), image order and flips
(the same numpy seed, drawn in the same sequence), optimizer, learning-rate schedule, batch size
and epochs, and are scored with the same VOC07 11-point mAP (IoU 0.5) on the same validation
images after every epoch. nbsage runs a real training job (RecordIO channels, checks, SageMaker
log lines, validation and best-epoch keeping); the reference is the bare loop: images decoded once
into a tensor, flip, match, loss, step.

Two rates per side: the training loop's images/s (steps only; nbsage's from the job's own
`train throughput` lines) and the whole run's (epochs x training images / wall seconds, from
channels to the trained model, validation included).

No pretrained-backbone comparison is possible offline: SageMaker's default starts from an
ImageNet-pretrained VGG-16, and no weights can be downloaded here, so both sides train from
scratch. The network is SSD's at a fraction of its channels (`_network_width`) so that a CPU
trains it to a useful mAP in minutes.

Figures are appended, as they come, one JSON object a line, to --log (per epoch of each side, then
a summary per round), so a run that is cut short still leaves its numbers. The sides run one after
the other (never concurrently), alternating which goes first when --rounds > 1. Nothing is
written to RESULTS.md: the figures are copied there by hand.

    python benchmarks/bench_object_detection.py [--train 320] [--epochs 6] [--rounds 2] [--threads 1] [--log FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VALIDATION_BATCH = 16        # the job validates in batches of 16 images; the reference does the same
DETECTION_MAP = re.compile(r"epoch=(\d+), validation mAP <score>=\((\S+)\)")
THROUGHPUT = re.compile(r"train throughput=(\S+) records/second")


class Record:
    """Appends one JSON object a line to the log file (flushed at once) and echoes it."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, **fields) -> None:
        fields = {"time": time.strftime("%H:%M:%S", time.gmtime()), "load": round(os.getloadavg()[0], 2), **fields}
        line = json.dumps(fields)
        print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def nbsage_job(folder: Path, hps: dict, train, validation, record: Record) -> dict:
    """A real job from RecordIO channels: best validation mAP, loop and whole-run images/s, wall seconds."""
    from nbsage import algorithms
    from nbsage.algorithms.object_detection import sample_data as sd
    from nbsage.runtime.environment import TrainingEnvironment
    from nbsage.runtime.job_config import write_job_configs
    from nbsage.runtime.layout import JobRoot
    request = {"TrainingJobName": "bench-od", "AlgorithmSpecification": {"TrainingImage": "object-detection"},
               "HyperParameters": hps, "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
               "InputDataConfig": [{"ChannelName": c, "ContentType": "application/x-recordio"}
                                   for c in ("train", "validation")]}
    root = write_job_configs(JobRoot(folder / "job"), request)
    for name, data in (("train", train), ("validation", validation)):
        rec = sd.write_recordio(data, folder / f"lst-{name}", name)
        root.channel_dir(name).mkdir(parents=True, exist_ok=True)
        shutil.copy(rec, root.channel_dir(name))
    env = TrainingEnvironment(root)
    maps: list[float] = []
    rates: list[float] = []

    def log(line: str) -> None:
        if m := THROUGHPUT.search(line):
            rates.append(float(m.group(1)))
        if m := DETECTION_MAP.search(line):
            maps.append(float(m.group(2)))
            record(side="nbsage", epoch=int(m.group(1)), mAP=round(maps[-1], 4), loop_images_s=rates[-1],
                   elapsed_s=round(time.time() - tic, 1))
    env.log = log
    tic = time.time()
    algorithms.get("object-detection").train(env)
    wall = time.time() - tic
    return {"mAP": max(maps), "mAP_last": maps[-1], "loop_images_s": float(np.mean(rates)),
            "run_images_s": int(hps["epochs"]) * len(train) / wall, "wall_s": wall}


def reference(hps: dict, train, validation, record: Record) -> dict:
    """The same SSD trained by a bare PyTorch loop, in the job's order of random draws."""
    import torch
    from nbsage.algorithms.object_detection import boxes as box_ops
    from nbsage.algorithms.object_detection.augment import prepare
    from nbsage.algorithms.object_detection.evaluation import mean_ap
    from nbsage.algorithms.object_detection.network import SSD, multibox_loss
    from nbsage.formats.image import decode_image, encode_image
    tic = time.time()
    seed = int(hps["_seed"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size, batch, epochs = int(hps["image_shape"]), int(hps["mini_batch_size"]), int(hps["epochs"])
    lr0, factor = float(hps["learning_rate"]), float(hps["lr_scheduler_factor"])
    drops = [int(s) for s in hps["lr_scheduler_step"].split(",") if s.strip()]
    # the same JPEG round trip the job's RecordIO images take, decoded and resized once
    x = torch.from_numpy(np.stack([prepare(decode_image(encode_image(im, "JPEG")), size) for im, _ in train]))
    xv = torch.from_numpy(np.stack([prepare(decode_image(encode_image(im, "JPEG")), size) for im, _ in validation]))
    net = SSD("vgg-16", int(hps["num_classes"]), size, float(hps["_network_width"]))
    opt = torch.optim.Adam(net.parameters(), lr=lr0, weight_decay=float(hps["weight_decay"]))
    anchors_xyxy = box_ops.to_corners(net.anchors)
    n, steps = len(train), int(np.ceil(len(train) / batch))
    maps, rates = [], []
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr0 * factor ** sum(1 for s in drops if epoch >= s)
        net.train()
        order = rng.permutation(n)
        t0 = time.time()
        for b in range(steps):
            idx = [int(order[(b * batch + k) % n]) for k in range(batch)]
            images = x[idx].clone()
            objects = [train[i][1].copy() for i in idx]
            for k in range(len(idx)):
                if rng.random() < 0.5:
                    images[k] = images[k].flip(-1)
                    o = objects[k]
                    o[:, [1, 3]] = 1 - o[:, [3, 1]]
            gt = np.full((len(idx), max(len(o) for o in objects), 5), -1, np.float32)
            for k, o in enumerate(objects):
                gt[k, :len(o)] = o
            logits, deltas = net(images)
            labels, matched = box_ops.match(torch.from_numpy(gt), anchors_xyxy, 0.5)
            ce, l1 = multibox_loss(logits, deltas, labels, matched, net.anchors)
            opt.zero_grad()
            (ce + l1).backward()
            opt.step()
        rates.append(steps * batch / (time.time() - t0))
        net.eval()
        detections = []
        with torch.no_grad():
            for i in range(0, len(xv), VALIDATION_BATCH):
                logits, deltas = net(xv[i:i + VALIDATION_BATCH])
                detections += box_ops.detect(logits.softmax(-1), deltas, net.anchors, float(hps["nms_threshold"]))
        maps.append(mean_ap(detections, [o for _, o in validation], int(hps["num_classes"]), 0.5))
        record(side="reference", epoch=epoch, mAP=round(maps[-1], 4), loop_images_s=round(rates[-1], 2),
               elapsed_s=round(time.time() - tic, 1))
    wall = time.time() - tic
    return {"mAP": max(maps), "mAP_last": maps[-1], "loop_images_s": float(np.mean(rates)),
            "run_images_s": epochs * n / wall, "wall_s": wall}


def warm_up(hps: dict) -> None:
    """Two training steps of a throw-away SSD, so neither side pays the process's first-use costs (allocator,
    oneDNN kernels) in its figures."""
    import torch
    from nbsage.algorithms.object_detection import boxes as box_ops
    from nbsage.algorithms.object_detection.network import SSD, multibox_loss
    size, batch = int(hps["image_shape"]), int(hps["mini_batch_size"])
    net = SSD("vgg-16", int(hps["num_classes"]), size, float(hps["_network_width"]))
    opt = torch.optim.Adam(net.parameters())
    gt = torch.tensor([[[0.0, 0.2, 0.2, 0.6, 0.6]]] * batch)
    for _ in range(2):
        logits, deltas = net(torch.randn(batch, 3, size, size))
        labels, matched = box_ops.match(gt, box_ops.to_corners(net.anchors), 0.5)
        ce, l1 = multibox_loss(logits, deltas, labels, matched, net.anchors)
        opt.zero_grad()
        (ce + l1).backward()
        opt.step()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=float, default=0.125, help="_network_width (1 is SSD's)")
    parser.add_argument("--train", type=int, default=320, help="training images (a multiple of --batch)")
    parser.add_argument("--validation", type=int, default=64)
    parser.add_argument("--classes", type=int, default=3, help="shape classes (rectangle, ellipse, triangle)")
    parser.add_argument("--objects", type=int, default=3, help="at most this many objects an image")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.002, help="Adam's learning rate")
    parser.add_argument("--lr-step", default="4", help="lr_scheduler_step ('' for none)")
    parser.add_argument("--lr-factor", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of each side (OMP_NUM_THREADS); on a shared 2-core machine 1 is the faster")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating which side goes first")
    parser.add_argument("--sides", default="nbsage,reference", help="which sides, in the first round's order")
    parser.add_argument("--log", type=Path, default=None, help="append JSON lines of figures here as they come")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)    # the job's set_threads reads it
    import torch
    torch.set_num_threads(args.threads)
    from nbsage.algorithms.object_detection import sample_data as sd
    record = Record(args.log)
    train = sd.make_dataset(args.train, 300, args.classes, seed=1, max_objects=args.objects)
    validation = sd.make_dataset(args.validation, 300, args.classes, seed=2, max_objects=args.objects)
    hps = {"num_classes": str(args.classes), "num_training_samples": str(args.train), "epochs": str(args.epochs),
           "mini_batch_size": str(args.batch), "image_shape": "300", "_network_width": str(args.width),
           "optimizer": "adam", "learning_rate": str(args.lr), "lr_scheduler_step": args.lr_step,
           "lr_scheduler_factor": str(args.lr_factor), "weight_decay": "0.0005", "nms_threshold": "0.45",
           "_augmentation": "flip", "_seed": "0", "use_pretrained_model": "0"}
    settings = (f"SSD-300 VGG-16 width {args.width}, {args.classes} classes, 1-{args.objects} objects an image, "
                f"{args.train} train / {args.validation} validation images, "
                f"{args.epochs} epochs, batch {args.batch}, adam {args.lr} (x{args.lr_factor} at epochs "
                f"{args.lr_step or 'none'}), weight decay 0.0005, flip, {args.threads} thread(s) each")
    record(event="start", settings=settings, argv=sys.argv[1:])
    warm_up(hps)
    sides = args.sides.split(",")
    results: dict = {}
    for r in range(args.rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            if side == "nbsage":
                with tempfile.TemporaryDirectory() as tmp:
                    out = nbsage_job(Path(tmp), hps, train, validation, record)
            else:
                out = reference(hps, train, validation, record)
            out = {k: round(v, 4 if "mAP" in k else 2) for k, v in out.items()}
            results.setdefault(side, []).append(out)
            record(event="side done", side=side, round=r, **out)
    if "nbsage" in results and "reference" in results:
        ratio = lambda key: round(float(np.median([o[key] for o in results["nbsage"]]))  # noqa: E731
                                  / float(np.median([o[key] for o in results["reference"]])), 3)
        record(event="summary", loop_ratio=ratio("loop_images_s"), run_ratio=ratio("run_images_s"),
               mAP_nbsage=[o["mAP"] for o in results["nbsage"]], mAP_reference=[o["mAP"] for o in results["reference"]])
    return results


if __name__ == "__main__":
    main()
