"""The classifier's data: labelled channels read, the vocabulary built, sentences encoded as rows.

A sentence becomes the input rows the classifier averages: its words seen at least min_count
times, then its word n-grams up to word_ngrams hashed into `buckets`. Only the buckets some
training sentence uses get a row (renumbered after the words), so the input matrix is as large
as the training data needs, not `buckets` rows; a validation n-gram in no training sentence
falls on the one row training never updates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nbsage.algorithms.blazingtext.corpus import Interner, Vocabulary, classifier_vocabulary, read_labelled
from nbsage.algorithms.blazingtext.hashing import word_hashes
from nbsage.algorithms.blazingtext.model import classifier_rows
from nbsage.errors import HyperparameterError


class Encoded:
    """A channel as the classifier reads it: input rows and label ids per example (CSR)."""

    def __init__(self, ptr, rows, label_ptr, label_ids, num_words: int):
        self.ptr, self.rows = ptr, rows
        self.label_ptr, self.label_ids = label_ptr, label_ids
        self.num_words = num_words

    def __len__(self) -> int:
        return int(self.ptr.shape[0] - 1)


@dataclass
class ClassifierData:
    """What training needs of the channels: the vocabulary and both channels encoded."""
    vocab: Vocabulary           # words and labels
    train: Encoded
    validation: Encoded | None
    bucket_ids: np.ndarray      # bucket_ids[i]: the n-gram bucket of input row len(words) + i

    @property
    def num_words(self) -> int:
        return len(self.vocab)

    @property
    def num_labels(self) -> int:
        return len(self.vocab.labels)


def encode(examples, word_map, label_map, hashes, hps, v, bucket_ids) -> Encoded:
    ids = word_map[examples.token_ids]
    ptr, rows = classifier_rows(ids, hashes[examples.token_ids], examples.sent_ptr,
                                hps["word_ngrams"], hps["buckets"], v, bucket_ids)
    labels = label_map[examples.label_ids].astype(np.int32)
    return Encoded(ptr, rows, examples.label_ptr, labels, int(examples.num_tokens))


def load(env, hps: dict, log) -> ClassifierData:
    """Read train (and validation), build the vocabulary from train and encode both."""
    read_started = time.perf_counter()
    tokens = Interner()
    train_set, val_set = _read_channels(env, hps, tokens)
    vocab, word_map, label_map = classifier_vocabulary(train_set, hps["min_count"], tokens)
    v, n_labels = len(vocab), len(vocab.labels)
    log(f"Read {train_set.num_tokens / 1e6:.2f}M words in {time.perf_counter() - read_started:.2f} s")
    log(f"Number of words: {v}")
    log(f"Number of labels: {n_labels}")
    if n_labels < 2:
        log(f"Only one label ({vocab.labels[0]}) in the train channel: every prediction will be it")

    hashes = word_hashes(tokens.strings())
    train_enc, bucket_ids = _encode_train(train_set, word_map, label_map, hashes, hps, v)
    if hps["word_ngrams"] > 1:
        log(f"Word n-grams up to {hps['word_ngrams']}: {bucket_ids.shape[0]} buckets in use "
            f"(of {hps['buckets']})")
    val_enc = None
    if val_set is not None:
        val_enc = encode(val_set, word_map, label_map, hashes, hps, v, bucket_ids)
        unseen = int((val_enc.label_ids < 0).sum())
        if unseen:
            log(f"{unseen} validation labels never occur in the train channel; "
                f"those lines can only count as errors")
    return ClassifierData(vocab, train_enc, val_enc, bucket_ids)


def _read_channels(env, hps: dict, tokens: Interner):
    """(train, validation or None) as labelled token ids; early stopping needs validation."""
    train_set = read_labelled(env.channel_files("train"), env.channels["train"].content_type,
                              "train", tokens)
    val_set = None
    if "validation" in env.channels:
        val_set = read_labelled(env.channel_files("validation"), env.channels["validation"].content_type,
                                "validation", tokens)
    if hps["early_stopping"] and val_set is None:
        raise HyperparameterError(
            "hyperparameter 'early_stopping' = true needs a validation channel: early stopping "
            "watches validation accuracy; add a 'validation' channel or set early_stopping=false",
            name="early_stopping")
    return train_set, val_set


def _encode_train(train_set, word_map, label_map, hashes, hps, v: int) -> tuple[Encoded, np.ndarray]:
    """The train channel encoded, keeping only the buckets some training sentence uses,
    renumbered after the words: (encoded, bucket_ids)."""
    train_enc = encode(train_set, word_map, label_map, hashes, hps, v, None)
    is_bucket = train_enc.rows >= v
    bucket_ids = np.unique(train_enc.rows[is_bucket] - v).astype(np.int64)
    train_enc.rows[is_bucket] = v + np.searchsorted(bucket_ids, train_enc.rows[is_bucket] - v)
    return train_enc, bucket_ids
