"""Object2Vec trained through nbsage against a plain PyTorch InferSent-style siamese model.

Two tasks, both generated offline (nbsage.algorithms.object2vec.sample_data):

* digit pairs: scikit-learn's 8x8 digits as 8-token row sentences, pairs labelled same digit or
  not, test pairs from images never seen in training; encoder BiLSTM-max (nbsage `bilstm`),
  comparator [u, v, |u-v|, u*v] (`concat, abs_diff, hadamard`), softmax; accuracy.
* user-item ratings: 3 + u.v of rank-3 latent factors + N(0, 0.3^2) noise, so the best reachable
  test MSE (the noise floor) is 0.09; one-token inputs embedded by `pooled_embedding` (separate
  user and item vocabularies, enc1_network=pooled_embedding), the same comparator, regression.

The reference is written the way InferSent / sentence-transformers' SoftmaxLoss write it: an
nn.Embedding, the same encoder, torch.cat([u, v, |u-v|, u*v]), an MLP, torch.optim.Adam,
cross-entropy or MSE. Both sides get the same pairs, sizes, epochs, mini-batch size, learning rate,
one CPU thread, and keep the epoch with the lowest validation loss (nbsage's early-stopping rule).
nbsage's time is the whole job (`python -m nbsage.runtime train`: process start, imports, reading
JSON Lines, training, validation after each epoch, saving, scoring the test channel); the
reference's is its training loop with the same per-epoch validation, in a warm process.

    python benchmarks/bench_object2vec.py            # writes its section of RESULTS.md
    python benchmarks/bench_object2vec.py --quick    # fewer pairs and epochs, printed only
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
THREADS = 1


# ---- the reference: a plain PyTorch siamese model ------------------------------------------------
def reference(task: dict, train: list, validation: list, test: list, seed: int = 0) -> dict:
    import torch
    from torch import nn
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    cfg = task["reference"]
    regression = task["regression"]

    class Encoder(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            if cfg["encoder"] == "bilstm":
                self.embedding = nn.Embedding(vocab, cfg["token_dim"])
                self.lstm = nn.LSTM(cfg["token_dim"], cfg["enc_dim"] // 2, batch_first=True, bidirectional=True)
            else:  # one-token inputs: the mean of the token vectors is the vector
                self.embedding = nn.Embedding(vocab, cfg["enc_dim"])
                self.lstm = None

        def forward(self, ids):
            e = self.embedding(ids)
            if self.lstm is None:
                return e.mean(dim=1)
            h, _ = self.lstm(e)
            return h.max(dim=1).values  # BiLSTM-max (all sequences have the same length here)

    class Siamese(nn.Module):
        def __init__(self):
            super().__init__()
            self.u = Encoder(cfg["vocab0"])
            self.v = Encoder(cfg["vocab1"])
            d = cfg["enc_dim"]
            self.mlp = nn.Sequential(nn.Linear(4 * d, cfg["mlp_dim"]), nn.ReLU(), nn.Linear(cfg["mlp_dim"], cfg["mlp_dim"]),
                                     nn.ReLU(), nn.Linear(cfg["mlp_dim"], 1 if regression else 2))

        def forward(self, a, b):
            u, v = self.u(a), self.v(b)
            out = self.mlp(torch.cat([u, v, (u - v).abs(), u * v], dim=1))
            return out.squeeze(1) if regression else out

    def tensors(records):
        return (torch.tensor([r["in0"] for r in records]), torch.tensor([r["in1"] for r in records]),
                torch.tensor([r["label"] for r in records], dtype=torch.float32 if regression else torch.long))

    (a, b, y), (va, vb, vy), (ta, tb, ty) = tensors(train), tensors(validation), tensors(test)
    model = Siamese()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"])
    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()
    best, best_state = float("inf"), None
    started = time.time()
    for epoch in range(cfg["epochs"]):
        model.train()
        order = torch.randperm(len(y))
        for i in range(0, len(y), cfg["batch"]):
            idx = order[i:i + cfg["batch"]]
            loss = loss_fn(model(a[idx], b[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(va, vb), vy))
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    seconds = time.time() - started
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        out = model(ta, tb)
    metric = float(((out - ty) ** 2).mean()) if regression else float((out.argmax(1) == ty).float().mean())
    return {"metric": metric, "seconds": seconds}


# ---- nbsage: a real training job -------------------------------------------------------------------
def nbsage_job(task: dict, train: list, validation: list, test: list, folder: Path) -> dict:
    from nbsage.runtime.job_config import write_job_configs
    from nbsage.runtime.layout import JobRoot
    channels = {"train": train, "validation": validation, "test": test}
    request = {"TrainingJobName": "bench-object2vec",
               "AlgorithmSpecification": {"TrainingImage": "object2vec", "TrainingInputMode": "File"},
               "HyperParameters": {k: str(v) for k, v in task["hyperparameters"].items()},
               "InputDataConfig": [{"ChannelName": c, "ContentType": "application/jsonlines"} for c in channels],
               "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1}}
    root = write_job_configs(JobRoot(folder), request)
    for name, records in channels.items():
        path = root.channel_dir(name) / "data.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "nbsage.runtime", "train", "--root", str(root.path)],
                          capture_output=True, text=True, cwd=str(REPO),
                          env={**os.environ, "OMP_NUM_THREADS": str(THREADS),
                               "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    seconds = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    metrics = {m[0]: float(m[1]) for m in re.findall(r"^#metric (\S+)=(\S+)$", proc.stdout, re.M)}
    epochs = re.findall(r"Epoch\[\d+\] Elapsed time: (\S+) seconds", proc.stdout)
    return {"metric": metrics[task["metric"]], "seconds": seconds, "epoch_seconds": sum(float(e) for e in epochs),
            "epochs_run": len(epochs)}


# ---- the two tasks ------------------------------------------------------------------------------------
def tasks(quick: bool, seed: int) -> list[dict]:
    from nbsage.algorithms.object2vec.sample_data import digit_pairs, rating_pairs
    epochs = 4 if quick else 12
    digits = digit_pairs(n_train=2000 if quick else 6000, n_test=1000 if quick else 3000, seed=seed)
    ratings = rating_pairs(n_train=4000 if quick else 12000, n_test=2000, seed=seed)
    common = {"comparator_list": "concat, abs_diff, hadamard", "mlp_layers": 2, "mlp_activation": "relu",
              "epochs": epochs, "early_stopping_patience": 5, "early_stopping_tolerance": 1e-6, "optimizer": "adam"}
    return [
        {"name": "digit pairs (same digit?)", "metric": "test:accuracy", "regression": False,
         "data": (digits.train, digits.test[:1000], digits.test[1000:]), "better": max, "floor": None,
         "hyperparameters": {**common, "enc0_network": "bilstm", "enc0_max_seq_len": 8,
                             "enc0_vocab_size": digits.vocab_size, "enc0_token_embedding_dim": 32, "enc_dim": 64,
                             "mlp_dim": 64, "mini_batch_size": 64, "learning_rate": 0.005},
         "reference": {"encoder": "bilstm", "vocab0": digits.vocab_size, "vocab1": digits.vocab_size,
                       "token_dim": 32, "enc_dim": 64, "mlp_dim": 64, "batch": 64, "learning_rate": 0.005,
                       "epochs": epochs}},
        {"name": "user-item ratings (regression)", "metric": "test:mean_squared_error", "regression": True,
         "data": (ratings.train, ratings.test[:1000], ratings.test[1000:]), "better": min,
         "floor": ratings.noise_floor,
         "hyperparameters": {**common, "enc0_network": "pooled_embedding", "enc0_max_seq_len": 1,
                             "enc0_vocab_size": ratings.num_users, "enc1_network": "pooled_embedding",
                             "enc1_max_seq_len": 1, "enc1_vocab_size": ratings.num_items, "enc_dim": 16,
                             "mlp_dim": 32, "output_layer": "mean_squared_error", "mini_batch_size": 64,
                             "learning_rate": 0.01, "epochs": 2 * epochs},
         "reference": {"encoder": "pooled", "vocab0": ratings.num_users, "vocab1": ratings.num_items,
                       "enc_dim": 16, "mlp_dim": 32, "batch": 64, "learning_rate": 0.01, "epochs": 2 * epochs}},
    ]


def main(quick: bool = False) -> dict:
    import torch
    seeds = [0] if quick else [0, 1, 2]
    rows, results = [], {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict = {}
        for seed in seeds:  # a new image split / rating matrix and new initial weights per seed
            for k, task in enumerate(tasks(quick, seed)):
                train, validation, test = task["data"]
                task["hyperparameters"]["_seed"] = seed
                ours = nbsage_job(task, train, validation, test, Path(tmp) / f"job{k}-{seed}")
                ref = reference(task, train, validation, test, seed=seed)
                runs.setdefault(task["name"], (task, []))[1].append((ours, ref))
                print(task["name"], seed, ours["metric"], ref["metric"], flush=True)
        for name, (task, pairs) in runs.items():
            ours_m = float(np.mean([o["metric"] for o, _ in pairs]))
            ref_m = float(np.mean([r["metric"] for _, r in pairs]))
            better = task["better"](ours_m, ref_m) == ours_m
            results[name] = {"nbsage": ours_m, "reference": ref_m,
                             "per_seed": [(o["metric"], r["metric"]) for o, r in pairs]}
            floor = f"{task['floor']:.4f}" if task["floor"] is not None else "-"
            per_seed = ", ".join(f"{o['metric']:.4f} / {r['metric']:.4f}" for o, r in pairs)
            job_s = float(np.median([o["seconds"] for o, _ in pairs]))
            epoch_s = float(np.median([o["epoch_seconds"] for o, _ in pairs]))
            ref_s = float(np.median([r["seconds"] for _, r in pairs]))
            rows.append(f"| {name} | {task['metric']} | **{ours_m:.4f}** | {ref_m:.4f} | {floor} | "
                        f"{'yes' if better else 'no'} | {per_seed} | {job_s:.1f} whole job ({epoch_s:.1f} in "
                        f"epochs) | {ref_s:.1f} loop |")
    body = (f"Object2Vec through nbsage (`python -m nbsage.runtime train`) against a plain PyTorch InferSent-style "
            f"siamese model with the same encoder, comparator [u, v, |u-v|, u*v], MLP (2 x ReLU), optimizer (Adam), "
            f"mini-batch size, learning rate, epochs, 1 CPU thread, and the same rule for the kept epoch (lowest "
            f"validation loss). torch {torch.__version__} (CPU). Load average at the start: {load:.1f} "
            f"({'loaded' if load > 2 else 'quiet'} 2-core machine: wall times move with other work). Quality is the "
            f"mean over seeds {seeds} (each seed a new image split or rating matrix and new initial weights), "
            f"time the median.\n\n"
            "| task | metric | nbsage | reference | noise floor | nbsage at least the reference | per seed (nbsage / "
            "reference) | nbsage s | reference s |\n|---|---|---:|---:|---:|---|---|---:|---:|\n" + "\n".join(rows)
            + "\n" + NOTES)
    if quick:
        print(body)
    else:
        write_section("Object2Vec: nbsage vs a PyTorch siamese reference", body)
    return results


NOTES = """
What was done to get there:

* **Small initial token vectors.** nbsage starts every token embedding at N(0, 0.1^2); the reference
  keeps nn.Embedding's default N(0, 1), as a plain PyTorch model does. With N(0, 1) nbsage was level with
  the reference (digits 0.792 vs 0.776, ratings 0.177 vs 0.170 MSE over the same three seeds, with a
  spread of 0.14-0.20 between seeds); the small start is what moves the ratings towards the noise floor
  and the digit pairs up by several points. It is a product choice, not a trick the reference could not
  use: a reference given the same initialisation would very likely close most of the gap (not measured).
* **The encoders are the references' encoders.** `bilstm` is InferSent's BiLSTM-max (enc_dim/2 units
  each direction, max over the sequence), `pooled_embedding` the mean of the token vectors, and the
  comparator builds the same [u, v, |u-v|, u*v] vector in comparator_list's order, so quality differences
  come from training, not architecture.
* **Padding never counts.** Mini-batches are padded to their longest pair and the encoders read the
  lengths (packed sequences for the LSTM, masks for pooling), so token id 0 is a real token and a short
  sequence is not diluted by padding.
* **No compiler import on the first step.** torch.optim's optimizers import torch._dynamo on their
  first step (8 s on this loaded machine, more than a small job's training); nbsage's five optimizers
  are the same update rules in plain tensor operations (checked equal to torch.optim's to 1e-6).
* **A mini-batch is an index, not a copy.** A channel's pairs are padded once into tensors; an epoch's
  batches (shuffled, bucketed by length with bucket_width, negatives drawn by re-pairing in1) are index
  arrays into them.
* **The kept model is the best validation epoch**, as early stopping with a validation channel keeps it.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(main(quick=parser.parse_args().quick))
