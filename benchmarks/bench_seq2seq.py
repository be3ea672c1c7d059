"""Seq2Seq quality and speed: nbsage's built-in against a plain PyTorch seq2seq written the way the
PyTorch tutorial writes it (intermediate_source/seq2seq_translation_tutorial.py: a GRU encoder, a GRU
decoder with Bahdanau attention stepping one word at a time with teacher forcing, Adam, greedy
decoding), with the same sizes, batch size, learning rate and epochs, in the same run.

Tasks (generated, nothing downloaded):
* numbers: English number words -> French number words (num2words), unseen numbers in the test set;
* reversal: sequences of 15-30 symbols -> the same reversed (long: attention is needed).

Reported: test BLEU (sacrebleu corpus BLEU, 13a), exact-match share, training target tokens per second
(non-padding target tokens incl. </s>, over the time spent in training steps only, both single-threaded),
and the ablation: nbsage with `mlp` attention against `fixed` (no attention) on the reversal task.

    python benchmarks/bench_seq2seq.py [--quick] [--seeds 0,1,2] [--tasks numbers,harder,reversal] [--no-write]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from common import write_section  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from nbsage import algorithms  # noqa: E402
from nbsage.algorithms.seq2seq.evaluation import bleu  # noqa: E402
from nbsage.algorithms.seq2seq.preparation import prepare  # noqa: E402
from nbsage.algorithms.seq2seq.sample_data import number_pairs, reversal_pairs  # noqa: E402
from nbsage.algorithms.seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID  # noqa: E402
from nbsage.runtime.environment import TrainingEnvironment  # noqa: E402
from nbsage.runtime.job_config import write_job_configs  # noqa: E402
from nbsage.runtime.layout import JobRoot  # noqa: E402

SEQ2SEQ = algorithms.get("seq2seq")
RECORDIO = "application/x-recordio-protobuf"


# ---- the reference: the PyTorch tutorial's model ------------------------------------------------
class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, source):
        return self.gru(self.dropout(self.embedding(source)))


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys, mask):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys))).squeeze(2).unsqueeze(1)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))  # (the tutorial pads without a mask)
        weights = F.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, mask, target_tensor=None, max_length=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.full((batch_size, 1), BOS_ID, dtype=torch.long)
        decoder_hidden = encoder_hidden
        steps = target_tensor.size(1) if target_tensor is not None else max_length
        outputs = []
        for i in range(steps):
            decoder_output, decoder_hidden = self.forward_step(decoder_input, decoder_hidden, encoder_outputs, mask)
            outputs.append(decoder_output)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # teacher forcing
            else:
                decoder_input = decoder_output.argmax(-1).detach()
        return F.log_softmax(torch.cat(outputs, dim=1), dim=-1)

    def forward_step(self, source, hidden, encoder_outputs, mask):
        embedded = self.dropout(self.embedding(source))
        context, _ = self.attention(hidden.permute(1, 0, 2), encoder_outputs, mask)
        output, hidden = self.gru(torch.cat((embedded, context), dim=2), hidden)
        return self.out(output), hidden


def _pad(seqs, extra_eos=False):
    n = max(len(s) for s in seqs) + (1 if extra_eos else 0)
    out = torch.full((len(seqs), n), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = list(s) + ([EOS_ID] if extra_eos else [])
        out[i, :len(row)] = torch.tensor(row)
    return out


def _warm_up_torch_optim() -> None:
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.zeros(1)
    torch.optim.Adam([p]).step()


def run_reference(train_ids, test_ids, sizes, cfg: dict, seed: int) -> dict:
    """Train the tutorial's model; (BLEU inputs, tokens/s)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    H = cfg["hidden"]
    encoder, decoder = EncoderRNN(sizes[0], H), AttnDecoderRNN(H, sizes[1])
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg["learning_rate"])
    _warm_up_torch_optim()  # its first step imports torch._dynamo (seconds): not counted as training
    B = cfg["batch_size"]
    tokens, seconds = 0, 0.0
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(train_ids))  # the tutorial's RandomSampler
        for lo in range(0, len(order), B):
            batch = [train_ids[i] for i in order[lo:lo + B]]
            tic = time.perf_counter()
            source = _pad([s for s, _ in batch])
            target = _pad([t for _, t in batch], extra_eos=True)
            mask = source != PAD_ID
            encoder_outputs, encoder_hidden = encoder(source)
            out = decoder(encoder_outputs, encoder_hidden, mask, target)
            loss = F.nll_loss(out.reshape(-1, out.size(-1)), target.reshape(-1), ignore_index=PAD_ID)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds += time.perf_counter() - tic
            tokens += int((target != PAD_ID).sum())
    encoder.eval(), decoder.eval()
    hyps = []
    with torch.no_grad():
        for lo in range(0, len(test_ids), 64):
            batch = test_ids[lo:lo + 64]
            source = _pad([s for s, _ in batch])
            encoder_outputs, encoder_hidden = encoder(source)
            out = decoder(encoder_outputs, encoder_hidden, source != PAD_ID, max_length=cfg["max_len"] + 1)
            for row in out.argmax(-1).tolist():
                hyps.append(row[:row.index(EOS_ID)] if EOS_ID in row else row)
    return {"hyps": hyps, "tokens_per_s": tokens / seconds, "train_s": seconds}


# ---- nbsage --------------------------------------------------------------------------------------
def run_nbsage(tmp: Path, channels: dict, cfg: dict, seed: int, **overrides) -> dict:
    hps = {"max_num_epochs": cfg["epochs"], "rnn_num_hidden": cfg["hidden"], "num_embed_source": cfg["hidden"],
           "num_embed_target": cfg["hidden"], "rnn_cell_type": "gru", "rnn_attention_type": "mlp",
           "batch_size": cfg["batch_size"], "learning_rate": cfg["learning_rate"], "embed_dropout_source": 0.1,
           "embed_dropout_target": 0.1, "checkpoint_frequency_num_batches": 10 ** 6, "clip_gradient": -1,
           "max_seq_len_source": cfg["max_len"], "max_seq_len_target": cfg["max_len"], "_seed": seed,
           **overrides}
    request = {"TrainingJobName": "bench-seq2seq",
               "AlgorithmSpecification": {"TrainingImage": "seq2seq", "TrainingInputMode": "File"},
               "HyperParameters": {k: str(v) for k, v in hps.items()},
               "InputDataConfig": [{"ChannelName": c, "ContentType": RECORDIO if c != "vocab" else "application/json"}
                                   for c in channels],
               "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1}}
    shutil.rmtree(tmp, ignore_errors=True)
    root = write_job_configs(JobRoot(tmp), request)
    for name, folder in channels.items():
        shutil.copytree(folder, root.channel_dir(name), dirs_exist_ok=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        SEQ2SEQ.train(TrainingEnvironment(root))
    speeds = re.findall(r"Speed: \S+ target tokens/second \((\d+) tokens in (\S+) s\)", log.getvalue())
    tokens, seconds = sum(int(t) for t, _ in speeds), sum(float(s) for _, s in speeds)
    return {"handler": SEQ2SEQ.load(str(root.model_dir)), "tokens_per_s": tokens / seconds, "train_s": seconds}


def _score(hyps, refs) -> dict:
    return {"bleu": bleu(hyps, refs), "exact": float(np.mean([h == r for h, r in zip(hyps, refs)]))}


def bench_task(name: str, pairs_train, pairs_val, pairs_test, cfg: dict, seed: int, tmp: Path, ablation: bool) -> dict:
    data = prepare(pairs_train, pairs_val, tmp / name / "data")
    src, trg = data.source_vocab, data.target_vocab
    refs = [t for _, t in pairs_test]
    sizes = (len(src), len(trg))
    rows = {}
    nb = run_nbsage(tmp / name / "job", data.channels(), cfg, seed)
    translator = nb["handler"].translator
    rows[NBSAGE_BEAM] = {**_score(translator.translate([s for s, _ in pairs_test], 5), refs),
                                                     "tokens_per_s": nb["tokens_per_s"], "train_s": nb["train_s"]}
    rows[NBSAGE_GREEDY] = _score(translator.translate([s for s, _ in pairs_test], 1), refs)
    train_ids = [(src.encode(s), trg.encode(t)) for s, t in pairs_train]
    test_ids = [(src.encode(s), trg.encode(t)) for s, t in pairs_test]
    ref = run_reference(train_ids, test_ids, sizes, cfg, seed)
    rows[REFERENCE] = {
        **_score([trg.decode(h) for h in ref["hyps"]], refs), "tokens_per_s": ref["tokens_per_s"], "train_s": ref["train_s"]}
    if ablation:
        fixed = run_nbsage(tmp / name / "fixed", data.channels(), cfg, seed, rnn_attention_type="fixed")
        rows["nbsage Seq2Seq, no attention (fixed), beam 5"] = {
            **_score(fixed["handler"].translator.translate([s for s, _ in pairs_test], 5), refs),
            "tokens_per_s": fixed["tokens_per_s"], "train_s": fixed["train_s"]}
    return rows


NBSAGE_BEAM, NBSAGE_GREEDY = "nbsage Seq2Seq, mlp attention, beam 5", "nbsage Seq2Seq, mlp attention, greedy"
REFERENCE = "PyTorch tutorial seq2seq (GRU + Bahdanau), greedy"


def _settings(cfg: dict, seeds: list[int]) -> str:
    seed = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))} (data and model)"
    return (f"GRU, hidden = embedding = {cfg['hidden']}, batch {cfg['batch_size']}, Adam at {cfg['learning_rate']}, "
            f"{cfg['epochs']} epochs, embedding dropout 0.1, 1 CPU thread each, {seed}.")


def report_task(task: str, cfg: dict, runs: dict) -> str:
    """One task's table; `runs` maps seed -> rows. Several seeds: the mean row, then each seed's BLEU."""
    seeds = list(runs)
    models = list(runs[seeds[0]])
    lines = [f"### {task}", "", cfg["what"], "", _settings(cfg, seeds), ""]
    mean = lambda m, k: float(np.mean([runs[s][m][k] for s in seeds]))  # noqa: E731
    if len(seeds) == 1:
        lines += ["| model | test BLEU | exact match | train tokens/s | time in training steps (s) |",
                  "|---|---:|---:|---:|---:|"]
    else:
        lines += ["| model | test BLEU, mean | " + " | ".join(f"BLEU seed {s}" for s in seeds)
                  + " | exact match, mean | train tokens/s, mean | time in training steps (s), mean |",
                  "|---|---:|" + "---:|" * len(seeds) + "---:|---:|---:|"]
    for m in models:
        r = runs[seeds[0]][m]
        tps = f"{mean(m, 'tokens_per_s'):,.0f}" if "tokens_per_s" in r else "(same model)"
        ts = f"{mean(m, 'train_s'):.1f}" if "train_s" in r else ""
        per_seed = "" if len(seeds) == 1 else " | ".join(f"{runs[s][m]['bleu']:.2f}" for s in seeds) + " | "
        lines.append(f"| {m} | {mean(m, 'bleu'):.2f} | {per_seed}{mean(m, 'exact'):.3f} | {tps} | {ts} |")
    ratios = [runs[s][NBSAGE_BEAM]["tokens_per_s"] / runs[s][REFERENCE]["tokens_per_s"] for s in seeds]
    diffs = [runs[s][NBSAGE_BEAM]["bleu"] - runs[s][REFERENCE]["bleu"] for s in seeds]
    each = "" if len(seeds) == 1 else (f" (per seed: {', '.join(f'{r:.2f}' for r in ratios)}; "
                                       f"{', '.join(f'{d:+.2f}' for d in diffs)})")
    lines += ["", f"tokens/s ratio nbsage / reference: **{np.mean(ratios):.2f}**; BLEU difference (beam 5): "
              f"{np.mean(diffs):+.2f}{each}", ""]
    return "\n".join(lines)


def _numbers(n_train: int, n_val: int, n_test: int, high: int, seed: int):
    pairs = number_pairs(n_train + n_val + n_test, high=high, seed=seed)
    return pairs[:n_train], pairs[n_train:n_train + n_val], pairs[n_train + n_val:]


TASKS = ("numbers", "harder", "reversal")


def main(quick: bool = False, seeds: str = "0,1,2", tasks: str = ",".join(TASKS), no_write: bool = False) -> dict:
    scale = 0.2 if quick else 1.0
    seed_list = [int(s) for s in seeds.split(",")]
    chosen = [t.strip() for t in tasks.split(",")]
    unknown = sorted(set(chosen) - set(TASKS))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; the tasks are {', '.join(TASKS)}")
    n = lambda k: max(50, int(k * scale))  # noqa: E731
    e = lambda k: max(1, round(k * scale))  # noqa: E731
    configs = {
        "numbers: English words -> French words, 0-9,999": dict(
            what=f"Numbers 0-9999 written by num2words; {n(2000):,} training pairs, {n(200)} validation pairs (nbsage's "
                 f"checkpoint choice), {n(500)} test pairs of numbers seen in neither; each seed draws its own numbers.",
            hidden=128, batch_size=64, learning_rate=0.003, epochs=e(8), max_len=20, high=10000),
        "numbers: English words -> French words, 0-999,999 (harder)": dict(
            what=f"Numbers 0-999,999 (French outputs of 1-19 words, 10.6 on average, against 6.6 below 10,000): "
                 f"{n(2000):,} training pairs, so about 1 in 500 of the numbers, {n(200)} validation, {n(500)} test "
                 f"pairs seen in neither; half the epochs, which leaves 2-8% of the test numbers wrong on either "
                 f"side where the task below 10,000 leaves 0-0.6%; each seed draws its own numbers.",
            hidden=128, batch_size=64, learning_rate=0.003, epochs=e(4), max_len=25, high=1000000),
        "reversal of 15-30 symbols": dict(
            what=f"Random sequences of 15-30 symbols from 10, and the same reversed; {n(2000):,} training, {n(100)} "
                 f"validation, {n(300)} test sequences.",
            hidden=64, batch_size=64, learning_rate=0.003, epochs=e(8), max_len=40),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-seq2seq-"))
    results: dict = {}
    try:
        for i, task in enumerate(list(configs)[:2]):
            if TASKS[i] not in chosen:
                continue
            cfg = configs[task]
            for seed in seed_list:
                data = _numbers(n(2000), n(200), n(500), cfg["high"], seed)
                results.setdefault(task, {})[seed] = bench_task(f"numbers{i}-{seed}", *data, cfg, seed, tmp, False)
                print(task, seed, {m: round(r["bleu"], 2) for m, r in results[task][seed].items()}, flush=True)
        task = list(configs)[2]
        if "reversal" in chosen:
            reversal = reversal_pairs(n(2000) + n(100) + n(300), min_length=15, max_length=30, vocab=10, seed=1)
            c, d = n(2000), n(2000) + n(100)
            results[task] = {0: bench_task("reversal", reversal[:c], reversal[c:d], reversal[d:], configs[task], 0,
                                           tmp, True)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = "\n".join(report_task(task, configs[task], runs) for task, runs in results.items())
    print(body)
    if not quick and not no_write:
        write_section("Seq2Seq: nbsage vs the PyTorch tutorial's seq2seq", HEADER + "\n\n" + body + "\n" + NOTES)
    return {task: {seed: {m: {k: round(v, 3) for k, v in r.items()} for m, r in rows.items()}
                   for seed, rows in runs.items()} for task, runs in results.items()}


HEADER = """nbsage's built-in Seq2Seq (its real training entry point, `train(env)` on a job root, in-process)
against the model of PyTorch's seq2seq translation tutorial (GRU encoder, GRU decoder with Bahdanau
attention stepped one word at a time with teacher forcing, Adam, greedy decoding), with the same
sizes, batch size, learning rate and epochs, trained in the same run. nbsage is set to what the
tutorial does: GRU cells, `mlp` (Bahdanau) attention, embedding size = hidden size, embedding dropout
0.1, no gradient clipping (`clip_gradient=-1`); its encoder is SageMaker's (a bidirectional first
layer, half the units each way). The reference pads each random batch to its longest sentence and,
unlike the tutorial, masks the padding in attention and the loss (a fairer reference). BLEU is
sacrebleu's corpus BLEU (13a tokenizer) on the test set; tokens/s counts non-padding target tokens
(with </s>) over the time spent in training steps only (data preparation, validation and decoding
excluded), both sides on 1 CPU thread."""

NOTES = """Both decoders feed attention back into the next word: nbsage's, as Sockeye's (SageMaker's
Seq2Seq), feeds each word's attentional hidden state tanh(W [h; c]) into the next word's RNN input
(Luong's input feeding), the tutorial's feeds the attention context. So both step through the
target a word at a time. Where nbsage's speed comes from: the words' share of the first layer's
input gates, the encoder's attention keys (the tutorial projects them again at every word) and the
output layer (the tutorial applies it at every word) are computed once per batch for all words;
the GRU/LSTM cell is a few tensor operations on those precomputed gates. nbsage picks the
checkpoint with the best validation perplexity (SageMaker's rule) where the reference keeps its last
epoch; with one checkpoint per job here (`checkpoint_frequency_num_batches` above the job's
batches) both end at the last epoch.

The ablation: `rnn_attention_type=fixed` gives the decoder no attention, only the encoder's final
state (the classic encoder-decoder of Cho et al. / Sutskever et al.), with everything else the same.
Reversing 15-30 symbols asks the decoder to recall the whole sequence from that one vector, which it
cannot at this size, while attention reads each source symbol where it is needed.

What it took: on the harder numbers task, over seeds 0-4, nbsage's BLEU was 0.30 below the
reference's (seeds 0-2: -0.18) while its decoder computed attention after the RNN without feeding
it back and its batches came from a grid of (source, target) length buckets, each bucket's last
batch left short. Sockeye (SageMaker's Seq2Seq) does neither: its RecurrentDecoder feeds the
attentional hidden state into the next word's input (input feeding), and its buckets are one
diagonal (the longer side in `bucket_width` steps, the shorter scaled by the mean length ratio)
whose last batches are filled up with pairs of the same bucket (`fill_up=replicate`). Input feeding
alone gave -0.10 (seeds 0-2: +0.21); with Sockeye's buckets too, +0.12 (seeds 0-2: +0.29), the
figures above. With input feeding and the grid, on seed 3 nbsage missed 8 of the 46 test numbers
of the form "... thousand and fifteen" (writing "mille cinq cent quinze") where the reference missed
one. Tried and not kept: no bucketing at all (+0.20, more padding to compute) and Sockeye's
orthogonal initialisation of the recurrent weights (-0.22 with input feeding and the grid; within
the seeds' spread). On the task below 10,000 the models are saturated (exact match 0.994 against
0.995): on seed 1 nbsage's exact match equals the reference's (0.996) and its BLEU is 0.66 lower
because of how it misses: in a rerun without fill-up (the same 99.14) its two misses were "zero" (not
in the training vocabulary) and "eleven" written as "onze" 21 times. Beam search is batched over
sentences and beams; the optimizers are a few tensor operations (torch.optim's first step imports
torch._dynamo, seconds on this machine); the padded token ids live on the device as int32 and each
batch is cut from them.
The learning rate (0.003) and sizes are the same on both sides and were not tuned for either."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a fifth of the data and epochs; RESULTS.md is not written")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds for the numbers tasks (data and model)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated tasks among {', '.join(TASKS)}")
    parser.add_argument("--no-write", action="store_true", help="print the tables; leave RESULTS.md as it is")
    print(json.dumps(main(**vars(parser.parse_args()))))
