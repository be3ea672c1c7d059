"""Compiled CPU kernels: hogwild SGD for Word2Vec (skip-gram, CBOW, batch skip-gram) and the
fastText-style classifier, written for numba.

Why compiled: negative sampling does a handful of 100-float dot products per (word, context)
pair, tens of millions of times an epoch; per-batch PyTorch autograd spends far longer
dispatching than computing. The kernels here are plain loops that numba turns into vectorised
machine code (float32 throughout, so that the loops use SIMD; sigmoid and log from tables, as
word2vec and fastText do). They release the GIL, and one Python thread per core runs them, each
on its own part of the corpus, all writing the shared matrices without locks (hogwild: Recht et
al. 2011, as word2vec, fastText and gensim do). Each call handles one slice of an epoch so that
the Python driver can log progress, decay the learning rate and stop between slices.

Every kernel takes the row ranges of the input matrix for a word as CSR arrays (`sub_ptr`,
`sub_ids`): a word's own row, followed by the rows of its hashed character n-grams when
subwords are on, or of a sentence's hashed word n-grams for the classifier.

numba compiles these on first use (a few seconds) and caches the machine code next to this file
(or under NUMBA_CACHE_DIR), so later jobs start at once.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from nbsage.algorithms.blazingtext.declaration import MODE_CODES

SKIPGRAM, CBOW, BATCH_SKIPGRAM = (MODE_CODES[m] for m in ("skipgram", "cbow", "batch_skipgram"))
_LCG_A = np.uint64(25214903917)
_LCG_C = np.uint64(11)
_MAX_EXP = 8.0


@njit(inline="always")
def _next(state):
    return state * _LCG_A + _LCG_C


@njit(inline="always")
def _uniform(state):
    # 24 high bits of the LCG as a float in [0, 1)
    return ((state >> np.uint64(16)) & np.uint64(0xFFFFFF)) / 16777216.0


# sigmoid and log as lookup tables, as word2vec and fastText do: the exact functions cost more
# than the 100-float dot product they follow
_TABLE = 1024
SIGMOID_TABLE = (1.0 / (1.0 + np.exp(-((np.arange(_TABLE + 1) / _TABLE * 2 - 1) * _MAX_EXP)))).astype(np.float32)
LOG_TABLE = np.log((np.arange(_TABLE + 1) + 1e-5) / _TABLE).astype(np.float32)


@njit(inline="always")
def _sigmoid(x):
    if x >= _MAX_EXP:
        return np.float32(1.0)
    if x <= -_MAX_EXP:
        return np.float32(0.0)
    return SIGMOID_TABLE[np.int64((x + _MAX_EXP) * (_TABLE / (2 * _MAX_EXP)))]


@njit(inline="always")
def _log(p):
    # log of a probability in [0, 1], floored at log(1e-5 / _TABLE) like fastText's table
    if p >= 1.0:
        return np.float32(0.0)
    return LOG_TABLE[np.int64(p * _TABLE)]


@njit(inline="always")
def _sgns_update(hidden, grad, w_out, target, label, alpha, dim):
    """One logistic unit of negative sampling: updates w_out[target], accumulates grad; -> loss."""
    f = np.float32(0.0)
    for k in range(dim):
        f += hidden[k] * w_out[target, k]
    p = _sigmoid(f)
    g = (label - p) * alpha
    for k in range(dim):
        grad[k] += g * w_out[target, k]
        w_out[target, k] += g * hidden[k]
    return -_log(p if label > 0 else np.float32(1.0) - p)


@njit(fastmath=True, nogil=True, cache=True)
def word2vec_range(t, mode, words, sent_ptr, starts, stops, keep_prob, neg_table,
                   w_in, w_out, sub_ptr, sub_ids, window, negative, batch_size,
                   alpha_start, alpha_end, seeds, words_done, loss_sum, loss_count):
    """Train on sentences starts[t]:stops[t] in thread t; alpha decays linearly across the slice.

    words: int32 word ids of the whole corpus; sent_ptr: sentence t occupies
    words[sent_ptr[t]:sent_ptr[t+1]]. keep_prob[w]: probability of keeping word w
    (subsampling). seeds/words_done/loss_sum/loss_count are per-thread and updated in place.
    """
    dim = w_in.shape[1]
    table_size = neg_table.shape[0]
    plain = sub_ids.shape[0] == sub_ptr.shape[0] - 1  # one row per word: no subwords
    state = seeds[t]
    s0, s1 = starts[t], stops[t]
    total_words = sent_ptr[s1] - sent_ptr[s0]
    if total_words <= 0:
        return
    done = 0
    hidden = np.zeros(dim, dtype=np.float32)
    grad = np.zeros(dim, dtype=np.float32)
    kept = np.empty(1024, dtype=np.int32)
    # batch_skipgram: the window's context rows against shared [target + negatives]
    ctx = np.empty(2 * window + 1, dtype=np.int32)
    targets = np.empty(negative + 1, dtype=np.int32)
    labels = np.zeros(negative + 1, dtype=np.float32)
    labels[0] = 1.0
    gbuf = np.zeros((2 * window + 1, negative + 1), dtype=np.float32)
    loss = 0.0
    nloss = 0
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for s in range(s0, s1):
        a, b = sent_ptr[s], sent_ptr[s + 1]
        alpha = np.float32(max(alpha_end, alpha_start + (alpha_end - alpha_start) * (done / total_words)))
        # frequent-word subsampling into a local buffer
        n = 0
        for i in range(a, b):
            w = words[i]
            state = _next(state)
            if keep_prob[w] < 1.0 and keep_prob[w] < _uniform(state):
                continue
            if n >= kept.shape[0]:
                bigger = np.empty(kept.shape[0] * 2, dtype=np.int32)
                bigger[:n] = kept[:n]
                kept = bigger
            kept[n] = w
            n += 1
        done += b - a
        for pos in range(n):
            w = kept[pos]
            state = _next(state)
            reduced = np.int64((state >> np.uint64(16)) % np.uint64(window))  # window of 1..window words
            lo = max(0, pos - window + reduced)
            hi = min(n, pos + window - reduced + 1)
            if mode == SKIPGRAM:
                # with subwords (fastText) the center word and its n-grams predict each context
                # word; without, each context word predicts the center (word2vec, gensim)
                p0, p1 = sub_ptr[w], sub_ptr[w + 1]
                scale = np.float32(1.0 / (p1 - p0))
                in_row = 0
                for c in range(lo, hi):
                    if c == pos:
                        continue
                    for k in range(dim):
                        grad[k] = 0.0
                    if plain:
                        in_row = kept[c]
                        h = w_in[in_row]
                        target = w
                    else:
                        for k in range(dim):
                            hidden[k] = 0.0
                        for j in range(p0, p1):
                            row = sub_ids[j]
                            for k in range(dim):
                                hidden[k] += w_in[row, k]
                        for k in range(dim):
                            hidden[k] *= scale
                        h = hidden
                        target = kept[c]
                    loss += _sgns_update(h, grad, w_out, target, one, alpha, dim)
                    for _ in range(negative):
                        state = _next(state)
                        neg = neg_table[np.int64((state >> np.uint64(16)) % np.uint64(table_size))]
                        if neg == target:
                            continue
                        loss += _sgns_update(h, grad, w_out, neg, zero, alpha, dim)
                    nloss += 1
                    if plain:
                        for k in range(dim):
                            w_in[in_row, k] += grad[k]
                    else:
                        for j in range(p0, p1):
                            row = sub_ids[j]
                            for k in range(dim):
                                w_in[row, k] += grad[k]
            elif mode == CBOW:
                for k in range(dim):
                    hidden[k] = 0.0
                    grad[k] = 0.0
                count = 0
                for c in range(lo, hi):
                    if c == pos:
                        continue
                    cw = kept[c]
                    for j in range(sub_ptr[cw], sub_ptr[cw + 1]):
                        row = sub_ids[j]
                        for k in range(dim):
                            hidden[k] += w_in[row, k]
                        count += 1
                if count == 0:
                    continue
                inv = np.float32(1.0 / count)
                for k in range(dim):
                    hidden[k] *= inv
                loss += _sgns_update(hidden, grad, w_out, w, one, alpha, dim)
                for _ in range(negative):
                    state = _next(state)
                    neg = neg_table[np.int64((state >> np.uint64(16)) % np.uint64(table_size))]
                    if neg == w:
                        continue
                    loss += _sgns_update(hidden, grad, w_out, neg, zero, alpha, dim)
                nloss += 1
                for c in range(lo, hi):
                    if c == pos:
                        continue
                    cw = kept[c]
                    for j in range(sub_ptr[cw], sub_ptr[cw + 1]):
                        row = sub_ids[j]
                        for k in range(dim):
                            w_in[row, k] += grad[k]
            else:
                # batch skip-gram (Ji et al. 2016): the context words of one center word form a
                # mini-batch of inputs that share one set of negative samples, so the dot
                # products are a small matrix product and each output row is updated once.
                nc = 0
                for c in range(lo, hi):
                    if c != pos and nc < batch_size:
                        ctx[nc] = kept[c]
                        nc += 1
                if nc == 0:
                    continue
                targets[0] = w
                nt = 1
                for _ in range(negative):
                    state = _next(state)
                    neg = neg_table[np.int64((state >> np.uint64(16)) % np.uint64(table_size))]
                    if neg != w:
                        targets[nt] = neg
                        labels[nt] = 0.0
                        nt += 1
                for i in range(nc):
                    row = ctx[i]
                    for j in range(nt):
                        tg = targets[j]
                        f = np.float32(0.0)
                        for k in range(dim):
                            f += w_in[row, k] * w_out[tg, k]
                        p = _sigmoid(f)
                        gbuf[i, j] = (labels[j] - p) * alpha
                        loss -= _log(p if j == 0 else one - p)
                    nloss += 1
                for i in range(nc):
                    row = ctx[i]
                    for k in range(dim):
                        grad[k] = 0.0
                    for j in range(nt):
                        g = gbuf[i, j]
                        tg = targets[j]
                        for k in range(dim):
                            grad[k] += g * w_out[tg, k]
                    # output rows: sum of the batch's gradients, from the inputs before update
                    for j in range(nt):
                        g = gbuf[i, j]
                        tg = targets[j]
                        for k in range(dim):
                            w_out[tg, k] += g * w_in[row, k]
                    for k in range(dim):
                        w_in[row, k] += grad[k]
    seeds[t] = state
    words_done[t] += done
    loss_sum[t] += loss
    loss_count[t] += nloss


@njit(fastmath=True, nogil=True, cache=True)
def classifier_range(t, order, starts, stops, tok_ptr, tokens, lab_ptr, labels, w_in, w_out,
                     alpha_start, alpha_end, seeds, words_done, loss_sum, loss_count):
    """fastText's supervised update on examples order[starts[t]:stops[t]], as thread t.

    An example's hidden vector is the mean of its input rows (words and hashed word n-grams);
    a softmax over the labels is trained toward one of its labels (picked at random when there
    are several, as fastText does), and the gradient is spread evenly over the input rows.
    """
    dim = w_in.shape[1]
    n_labels = w_out.shape[0]
    state = seeds[t]
    e0, e1 = starts[t], stops[t]
    total_words = 0
    for e in range(e0, e1):
        ex = order[e]
        total_words += tok_ptr[ex + 1] - tok_ptr[ex]
    if total_words == 0:
        return
    hidden = np.zeros(dim, dtype=np.float32)
    grad = np.zeros(dim, dtype=np.float32)
    scores = np.zeros(n_labels, dtype=np.float32)
    done = 0
    loss = 0.0
    nloss = 0
    for e in range(e0, e1):
        ex = order[e]
        a, b = tok_ptr[ex], tok_ptr[ex + 1]
        la, lb = lab_ptr[ex], lab_ptr[ex + 1]
        done += b - a
        if b == a or lb == la:
            continue
        alpha = np.float32(alpha_start + (alpha_end - alpha_start) * (done / total_words))
        state = _next(state)
        target = labels[la + np.int64((state >> np.uint64(16)) % np.uint64(lb - la))]
        for k in range(dim):
            hidden[k] = 0.0
            grad[k] = 0.0
        for i in range(a, b):
            row = tokens[i]
            for k in range(dim):
                hidden[k] += w_in[row, k]
        inv = np.float32(1.0 / (b - a))
        for k in range(dim):
            hidden[k] *= inv
        top = np.float32(-1e30)
        for j in range(n_labels):
            f = np.float32(0.0)
            for k in range(dim):
                f += w_out[j, k] * hidden[k]
            scores[j] = f
            if f > top:
                top = f
        z = np.float32(0.0)
        for j in range(n_labels):
            scores[j] = np.float32(math.exp(scores[j] - top))
            z += scores[j]
        for j in range(n_labels):
            g = alpha * ((np.float32(1.0) if j == target else np.float32(0.0)) - scores[j] / z)
            for k in range(dim):
                grad[k] += g * w_out[j, k]
                w_out[j, k] += g * hidden[k]
        loss -= math.log(scores[target] / z + 1e-10)
        nloss += 1
        for k in range(dim):
            grad[k] *= inv
        for i in range(a, b):
            row = tokens[i]
            for k in range(dim):
                w_in[row, k] += grad[k]
    seeds[t] = state
    words_done[t] += done
    loss_sum[t] += loss
    loss_count[t] += nloss


@njit(fastmath=True, nogil=True, cache=True)
def mean_rows(tok_ptr, tokens, w_in, out):
    """out[i] = mean of w_in rows tokens[tok_ptr[i]:tok_ptr[i+1]] (zeros for an empty range)."""
    n = tok_ptr.shape[0] - 1
    dim = w_in.shape[1]
    for i in range(n):
        a, b = tok_ptr[i], tok_ptr[i + 1]
        for k in range(dim):
            out[i, k] = 0.0
        if b == a:
            continue
        for j in range(a, b):
            row = tokens[j]
            for k in range(dim):
                out[i, k] += w_in[row, k]
        inv = 1.0 / (b - a)
        for k in range(dim):
            out[i, k] *= inv


class _Threads:
    """Runs a nogil kernel once per thread index, on threads kept for the whole job."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self._pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="blazingtext")

    def run(self, kernel, *args) -> None:
        if self._pool is None:
            kernel(0, *args)
            return
        futures = [self._pool.submit(kernel, t, *args) for t in range(self.threads)]
        for f in futures:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class _Stats:
    """Per-thread counters the kernels update in place."""

    def __init__(self, threads: int, seed: int):
        self.seeds = (np.arange(1, threads + 1, dtype=np.uint64) * np.uint64(0x9E3779B1)
                      + np.uint64(seed))
        self.words_done = np.zeros(threads, dtype=np.int64)
        self.loss_sum = np.zeros(threads, dtype=np.float64)
        self.loss_count = np.zeros(threads, dtype=np.int64)

    def take_loss(self) -> float:
        """Mean loss since the last call."""
        count = int(self.loss_count.sum())
        value = float(self.loss_sum.sum()) / count if count else float("nan")
        self.loss_sum[:] = 0
        self.loss_count[:] = 0
        return value


class NumbaWord2Vec:
    """Word2Vec on the CPU: hogwild threads running `word2vec_range` on parts of the corpus."""

    name = "numba"

    def __init__(self, mode: int, words, sent_ptr, keep_prob, neg_table, w_in, w_out, sub_ptr, sub_ids,
                 window: int, negative: int, batch_size: int, threads: int, seed: int):
        self.mode, self.words, self.sent_ptr = int(mode), words, sent_ptr
        self.keep_prob, self.neg_table = keep_prob, neg_table
        self.w_in, self.w_out = w_in, w_out
        self.sub_ptr, self.sub_ids = sub_ptr, sub_ids
        self.window, self.negative, self.batch_size = int(window), int(negative), int(batch_size)
        self.parallel = _Threads(threads)
        self.threads = self.parallel.threads
        self.stats = _Stats(self.threads, seed)

    def run(self, starts: np.ndarray, stops: np.ndarray, alpha_start: float, alpha_end: float) -> None:
        """Train on sentences starts[t]:stops[t] in thread t."""
        self.parallel.run(word2vec_range, self.mode, self.words, self.sent_ptr, starts, stops,
                          self.keep_prob, self.neg_table, self.w_in, self.w_out, self.sub_ptr,
                          self.sub_ids, self.window, self.negative, self.batch_size,
                          float(alpha_start), float(alpha_end), self.stats.seeds,
                          self.stats.words_done, self.stats.loss_sum, self.stats.loss_count)

    def weights(self):
        return self.w_in, self.w_out

    def set_weights(self, w_in, w_out) -> None:
        self.w_in[...] = w_in
        self.w_out[...] = w_out

    def close(self) -> None:
        self.parallel.close()


class NumbaClassifier:
    """The fastText classifier on the CPU: hogwild threads running `classifier_range`."""

    name = "numba"

    def __init__(self, tok_ptr, tokens, lab_ptr, labels, w_in, w_out, threads: int, seed: int):
        self.tok_ptr, self.tokens, self.lab_ptr, self.labels = tok_ptr, tokens, lab_ptr, labels
        self.w_in, self.w_out = w_in, w_out
        self.parallel = _Threads(threads)
        self.threads = self.parallel.threads
        self.stats = _Stats(self.threads, seed)

    def run(self, order: np.ndarray, starts: np.ndarray, stops: np.ndarray,
            alpha_start: float, alpha_end: float) -> None:
        """Train on examples order[starts[t]:stops[t]] in thread t."""
        self.parallel.run(classifier_range, order, starts, stops, self.tok_ptr, self.tokens,
                          self.lab_ptr, self.labels, self.w_in, self.w_out, float(alpha_start),
                          float(alpha_end), self.stats.seeds, self.stats.words_done,
                          self.stats.loss_sum, self.stats.loss_count)

    def weights(self):
        return self.w_in, self.w_out

    def set_weights(self, w_in, w_out) -> None:
        self.w_in[...] = w_in
        self.w_out[...] = w_out

    def close(self) -> None:
        self.parallel.close()
