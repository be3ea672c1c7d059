"""Object Detection: nbsage's SSD job against a plain PyTorch loop training the same SSD, same run.

Both train SSD-300 (VGG-16 base, `image_shape` 300) from scratch on the same generated set
(shapes pasted on crops of scikit-learn's sample photographs, exact boxes), with the same
network width, optimizer, learning rate, batch size, epochs and augmentation, and are scored
with the same VOC07 11-point mAP on the same validation images. nbsage runs a real training job
(RecordIO channels, checks, log lines, validation every epoch); the reference is the bare loop:
images decoded and resized once, flip-only augmentation, match, loss, step. Images/s counts
training steps only for both (nbsage: the job's own `train throughput` lines).

No pretrained-backbone comparison is possible offline: SageMaker's default starts from an
ImageNet-pretrained VGG-16, and no weights can be downloaded here, so both sides train from
scratch. On a loaded 2-core machine keep it small (the defaults: width 1/8 of SSD's channels,
96 training images, 3 epochs; a few minutes); mAP after so few steps is low on both sides —
the row compares them, it does not measure SSD's accuracy.

    python benchmarks/bench_object_detection.py [--width 0.125] [--train 96] [--epochs 3]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def nbsage_job(folder: Path, hps: dict, train, validation) -> tuple[float, float, float]:
    """(best validation mAP, train images/s, wall seconds) of a real job."""
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
    lines: list[str] = []
    env.log = lines.append
    tic = time.time()
    algorithms.get("object-detection").train(env)
    wall = time.time() - tic
    maps = [float(m.group(1)) for l in lines if (m := re.search(r"validation mAP <score>=\((\S+)\)", l))]
    rates = [float(m.group(1)) for l in lines if (m := re.search(r"train throughput=(\S+) records/second", l))]
    return max(maps), float(np.mean(rates)), wall


def reference(hps: dict, train, validation, seed: int = 0) -> tuple[float, float, float]:
    """The same SSD trained by a bare PyTorch loop: (best validation mAP, train images/s, wall seconds)."""
    import torch
    from nbsage.algorithms.object_detection import boxes as box_ops
    from nbsage.algorithms.object_detection.augment import prepare
    from nbsage.algorithms.object_detection.evaluation import mean_ap
    from nbsage.algorithms.object_detection.network import SSD, multibox_loss
    from nbsage.formats.image import decode_image, encode_image
    tic = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    size, batch = int(hps["image_shape"]), int(hps["mini_batch_size"])
    # the same JPEG round trip the job's RecordIO images take
    x = torch.from_numpy(np.stack([prepare(decode_image(encode_image(im, "JPEG")), size) for im, _ in train]))
    xv = torch.from_numpy(np.stack([prepare(decode_image(encode_image(im, "JPEG")), size) for im, _ in validation]))
    net = SSD("vgg-16", int(hps["num_classes"]), size, float(hps["_network_width"]))
    opt = torch.optim.Adam(net.parameters(), lr=float(hps["learning_rate"]), weight_decay=0.0005)
    anchors_xyxy = box_ops.to_corners(net.anchors)
    best, rates = 0.0, []
    for epoch in range(int(hps["epochs"])):
        net.train()
        order = rng.permutation(len(train))
        t0 = time.time()
        steps = int(np.ceil(len(train) / batch))
        for b in range(steps):
            idx = order[b * batch:(b + 1) * batch]
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
        with torch.no_grad():
            logits, deltas = net(xv)
        detections = box_ops.detect(logits.softmax(-1), deltas, net.anchors, 0.45)
        best = max(best, mean_ap(detections, [o for _, o in validation], int(hps["num_classes"]), 0.5))
    return best, float(np.mean(rates)), time.time() - tic


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--train", type=int, default=96)
    parser.add_argument("--validation", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    from nbsage.algorithms.deepar.training import set_threads
    from nbsage.algorithms.object_detection import sample_data as sd
    threads = set_threads()
    train = sd.make_dataset(args.train, 300, 2, seed=1)
    validation = sd.make_dataset(args.validation, 300, 2, seed=2)
    hps = {"num_classes": "2", "num_training_samples": str(args.train), "epochs": str(args.epochs),
           "mini_batch_size": str(args.batch), "image_shape": "300", "_network_width": str(args.width),
           "optimizer": "adam", "learning_rate": "0.005", "_augmentation": "flip", "use_pretrained_model": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        ours = nbsage_job(Path(tmp), hps, train, validation)
    ref = reference(hps, train, validation)
    result = {"nbsage mAP": round(ours[0], 4), "nbsage images/s": round(ours[1], 2), "nbsage wall s": round(ours[2], 1),
              "reference mAP": round(ref[0], 4), "reference images/s": round(ref[1], 2),
              "reference wall s": round(ref[2], 1), "images/s ratio": round(ours[1] / ref[1], 3), "threads": threads,
              "settings": f"SSD-300 VGG-16 width {args.width}, {args.train} train / {args.validation} validation images, "
                          f"{args.epochs} epochs, batch {args.batch}, adam 0.005, flip"}
    print(result)
    return result


if __name__ == "__main__":
    main()
