"""Seq2Seq's validation metrics: perplexity and token accuracy (teacher forcing) and corpus BLEU.

* perplexity = exp(mean cross-entropy per target token, </s> included, <pad> excluded);
* accuracy = share of those tokens whose most likely word is the reference word;
* bleu = sacrebleu's corpus BLEU (`sacrebleu.corpus_bleu`, its default 13a tokenizer and
  exponential smoothing, one reference) of beam-search translations against the references, both
  written as words (<pad>, <s>, </s> left out, <unk> kept), on a 0-100 scale. SageMaker does not
  publish which BLEU its container reports; this is nbsage's choice, stated so it can be compared.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from nbsage.algorithms.seq2seq.vocab import PAD_ID


@torch.no_grad()
def teacher_forced(network, batches) -> dict:
    """{'perplexity', 'accuracy', 'tokens'} over batches of (source, lengths, target_in, target_out)."""
    was_training = network.training
    network.eval()
    loss, correct, tokens = 0.0, 0, 0
    for source, lengths, target_in, target_out in batches:
        logits = network(source, lengths, target_in)
        flat = target_out.reshape(-1)
        loss += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, ignore_index=PAD_ID,
                                      reduction="sum"))
        words = flat != PAD_ID
        correct += int((logits.argmax(-1).reshape(-1)[words] == flat[words]).sum())
        tokens += int(words.sum())
    network.train(was_training)
    tokens = max(tokens, 1)
    return {"perplexity": math.exp(min(loss / tokens, 700.0)), "accuracy": correct / tokens, "tokens": tokens}


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacrebleu corpus BLEU (13a tokenizer), 0-100."""
    import sacrebleu
    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)
