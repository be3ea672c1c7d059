"""The PyTorch engine: Word2Vec and the classifier as batched SGD on a CUDA GPU (or the CPU).

Used on GPU instance types, and on the CPU when numba is not installed. The same updates as
the compiled kernels, done for thousands of examples at once: an example is a bag of input rows
(the center word and its subwords for skip-gram, the context words for CBOW, a sentence's
words and n-grams for the classifier) averaged with `embedding_bag`, scored against its target
and a batch of negative samples drawn from the unigram^0.75 table (or against every label with a
softmax), and the gradients are applied with `index_add_` — plain SGD without autograd, where
rows that occur several times in a batch receive the sum of their updates, as hogwild threads
would give them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nbsage.algorithms.blazingtext.declaration import MODE_CODES


MAX_REPEATS = 16


def _batch(device: torch.device, examples: int) -> int:
    return examples if device.type == "cuda" else max(1, examples // 8)


class _Stats:
    def __init__(self, seed: int):
        self.seeds = np.array([seed], dtype=np.uint64)
        self.words_done = np.zeros(1, dtype=np.int64)
        self.loss_sum = np.zeros(1, dtype=np.float64)
        self.loss_count = np.zeros(1, dtype=np.int64)

    def take_loss(self) -> float:
        count = int(self.loss_count.sum())
        value = float(self.loss_sum.sum()) / count if count else float("nan")
        self.loss_sum[:] = 0
        self.loss_count[:] = 0
        return value


def _add_capped(matrix: torch.Tensor, rows: torch.Tensor, updates: torch.Tensor) -> None:
    """matrix[r] += the sum of the updates for row r, scaled down to at most MAX_REPEATS times
    their mean. Summing them all (what hogwild threads do, one at a time on fresh weights)
    overshoots when hundreds of examples of a batch share a frequent word or character n-gram,
    and training diverges; averaging them all learns frequent words far too slowly."""
    _, inverse, counts = torch.unique(rows, return_inverse=True, return_counts=True)
    scale = MAX_REPEATS / counts.clamp(min=MAX_REPEATS).to(updates.dtype)
    matrix.index_add_(0, rows, updates * scale[inverse].unsqueeze(1))


def _expand(ptr: torch.Tensor, ids: torch.Tensor, items: torch.Tensor):
    """Rows ids[ptr[i]:ptr[i+1]] of each item i, and the item each row belongs to."""
    starts = ptr[items]
    counts = ptr[items + 1] - starts
    owner = torch.repeat_interleave(torch.arange(items.shape[0], device=items.device), counts)
    first = torch.cumsum(counts, 0) - counts
    offsets = torch.arange(owner.shape[0], device=items.device) - first[owner]
    return ids[starts[owner] + offsets], owner, counts


class TorchWord2Vec:
    """Skip-gram and CBOW with negative sampling, in batches of examples."""

    name = "torch"
    threads = 1

    def __init__(self, mode: int, words, sent_ptr, keep_prob, neg_table, w_in, w_out, sub_ptr,
                 sub_ids, window: int, negative: int, batch_size: int, threads: int, seed: int,
                 device: str = "cpu"):
        self.dev = torch.device(device)
        self.cbow = int(mode) == MODE_CODES["cbow"]
        self.window, self.negative = int(window), int(negative)
        self.sent_ptr = np.asarray(sent_ptr, dtype=np.int64)
        self.words = torch.from_numpy(np.asarray(words, dtype=np.int64)).to(self.dev)
        self.sent_of = torch.from_numpy(
            np.repeat(np.arange(self.sent_ptr.shape[0] - 1), np.diff(self.sent_ptr))).to(self.dev)
        self.keep = torch.from_numpy(np.asarray(keep_prob, dtype=np.float32)).to(self.dev)
        self.table = torch.from_numpy(np.asarray(neg_table, dtype=np.int64)).to(self.dev)
        self.w_in = torch.from_numpy(np.ascontiguousarray(w_in)).to(self.dev)
        self.w_out = torch.from_numpy(np.ascontiguousarray(w_out)).to(self.dev)
        v = w_out.shape[0]
        self.plain = sub_ids.shape[0] == v and np.array_equal(sub_ptr, np.arange(v + 1))
        self.sub_ptr = torch.from_numpy(np.asarray(sub_ptr, dtype=np.int64)).to(self.dev)
        self.sub_ids = torch.from_numpy(np.asarray(sub_ids, dtype=np.int64)).to(self.dev)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(int(seed))
        self.max_batch = 16384 if self.dev.type == "cuda" else 4096
        self.stats = _Stats(seed)

    def _pairs(self, w, s):
        """(center, context) positions within the kept words of one slice."""
        n = w.shape[0]
        reach = self.window - torch.randint(0, self.window, (n,), generator=self.gen, device=self.dev)
        centers, contexts = [], []
        for d in range(1, self.window + 1):
            if d >= n:
                break
            i = torch.arange(n - d, device=self.dev)
            j = i + d
            same = s[i] == s[j]
            m = same & (reach[i] >= d)
            centers.append(i[m])
            contexts.append(j[m])
            m = same & (reach[j] >= d)
            centers.append(j[m])
            contexts.append(i[m])
        if not centers:
            empty = torch.zeros(0, dtype=torch.long, device=self.dev)
            return empty, empty
        c = torch.cat(centers)
        x = torch.cat(contexts)
        c, order = torch.sort(c, stable=True)
        return c, x[order]

    def run(self, starts, stops, alpha_start: float, alpha_end: float) -> None:
        s0, s1 = int(starts[0]), int(stops[0])
        a, b = int(self.sent_ptr[s0]), int(self.sent_ptr[s1])
        total = b - a
        if total <= 0:
            return
        w = self.words[a:b]
        s = self.sent_of[a:b]
        keep = torch.rand(total, generator=self.gen, device=self.dev) < self.keep[w]
        position = torch.arange(total, device=self.dev)[keep]
        w, s = w[keep], s[keep]
        c, x = self._pairs(w, s)
        if c.shape[0]:
            if self.cbow:
                # one example per center word: its context words form the bag
                centers, counts = torch.unique_consecutive(c, return_counts=True)
                ex_ptr = torch.zeros(centers.shape[0] + 1, dtype=torch.long, device=self.dev)
                ex_ptr[1:] = torch.cumsum(counts, 0)
                bag_words, targets, where = w[x], w[centers], position[centers]
            else:
                ex_ptr = torch.arange(c.shape[0] + 1, device=self.dev)
                bag_words, targets, where = w[c], w[x], position[c]
            alphas = alpha_start + (alpha_end - alpha_start) * (where.float() / total)
            self._train(bag_words, ex_ptr, targets, alphas)
        self.stats.words_done[0] += total

    def _train(self, bag_words, ex_ptr, targets, alphas) -> None:
        n = targets.shape[0]
        dim = self.w_in.shape[1]
        k = self.negative
        # at least ~64 steps a slice: few large steps under-train small corpora
        batch = int(np.clip(n // 64, 128, self.max_batch))
        for e0 in range(0, n, batch):
            e1 = min(n, e0 + batch)
            m = e1 - e0
            p0, p1 = int(ex_ptr[e0]), int(ex_ptr[e1])
            words = bag_words[p0:p1]
            owner_word = torch.repeat_interleave(torch.arange(m, device=self.dev),
                                                 ex_ptr[e0 + 1:e1 + 1] - ex_ptr[e0:e1])
            if self.plain:
                rows, owner = words, owner_word
            else:
                rows, word_of_row, _ = _expand(self.sub_ptr, self.sub_ids, words)
                owner = owner_word[word_of_row]
            counts = torch.bincount(owner, minlength=m).clamp(min=1).float()
            hidden = torch.zeros(m, dim, device=self.dev).index_add_(0, owner, self.w_in[rows])
            hidden /= counts[:, None]
            tgt = targets[e0:e1]
            negs = self.table[torch.randint(0, self.table.shape[0], (m, k), generator=self.gen,
                                            device=self.dev)]
            out_rows = torch.cat([tgt[:, None], negs], 1)
            labels = torch.zeros(m, k + 1, device=self.dev)
            labels[:, 0] = 1.0
            valid = torch.ones(m, k + 1, device=self.dev)
            valid[:, 1:] = (negs != tgt[:, None]).float()
            w_t = self.w_out[out_rows]                               # (m, k+1, dim)
            scores = torch.einsum("mkd,md->mk", w_t, hidden)
            sig = torch.sigmoid(scores)
            g = (labels - sig) * valid * alphas[e0:e1, None]
            grad_hidden = torch.einsum("mk,mkd->md", g, w_t)
            flat = out_rows.reshape(-1)
            _add_capped(self.w_out, flat, (g[:, :, None] * hidden[:, None, :]).reshape(-1, dim))
            _add_capped(self.w_in, rows, grad_hidden[owner])
            loss = -(torch.log(sig[:, 0] + 1e-5) + (torch.log(1 - sig[:, 1:] + 1e-5) * valid[:, 1:]).sum(1))
            self.stats.loss_sum[0] += float(loss.sum())
            self.stats.loss_count[0] += m

    def weights(self):
        return self.w_in.cpu().numpy(), self.w_out.cpu().numpy()

    def set_weights(self, w_in, w_out) -> None:
        self.w_in.copy_(torch.from_numpy(np.asarray(w_in)))
        self.w_out.copy_(torch.from_numpy(np.asarray(w_out)))

    def close(self) -> None:
        pass


class TorchClassifier:
    """The fastText classifier: embedding_bag mean -> linear -> softmax, SGD in batches."""

    name = "torch"
    threads = 1

    def __init__(self, tok_ptr, tokens, lab_ptr, labels, w_in, w_out, threads: int, seed: int,
                 device: str = "cpu"):
        self.dev = torch.device(device)
        self.tok_ptr = torch.from_numpy(np.asarray(tok_ptr, dtype=np.int64)).to(self.dev)
        self.tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int64)).to(self.dev)
        self.lab_ptr = torch.from_numpy(np.asarray(lab_ptr, dtype=np.int64)).to(self.dev)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(self.dev)
        self.w_in = torch.from_numpy(np.ascontiguousarray(w_in)).to(self.dev)
        self.w_out = torch.from_numpy(np.ascontiguousarray(w_out)).to(self.dev)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(int(seed))
        self.batch = _batch(self.dev, 1024)
        self.stats = _Stats(seed)

    def run(self, order, starts, stops, alpha_start: float, alpha_end: float) -> None:
        chosen = torch.from_numpy(np.asarray(order[int(starts[0]):int(stops[0])], dtype=np.int64)).to(self.dev)
        n = chosen.shape[0]
        if n == 0:
            return
        lengths = self.tok_ptr[chosen + 1] - self.tok_ptr[chosen]
        nlab = self.lab_ptr[chosen + 1] - self.lab_ptr[chosen]
        done = torch.cumsum(lengths, 0).float()
        total = float(done[-1]) if n else 0.0
        alphas = alpha_start + (alpha_end - alpha_start) * done / max(total, 1.0)
        usable = (lengths > 0) & (nlab > 0)
        for e0 in range(0, n, self.batch):
            e1 = min(n, e0 + self.batch)
            ex = chosen[e0:e1][usable[e0:e1]]
            if ex.shape[0] == 0:
                continue
            a = alphas[e0:e1][usable[e0:e1]]
            rows, owner, counts = _expand(self.tok_ptr, self.tokens, ex)
            offsets = torch.cumsum(counts, 0) - counts
            hidden = F.embedding_bag(rows, self.w_in, offsets, mode="mean")
            pick = (torch.rand(ex.shape[0], generator=self.gen, device=self.dev)
                    * (self.lab_ptr[ex + 1] - self.lab_ptr[ex])).long()
            target = self.labels[self.lab_ptr[ex] + pick]
            probs = torch.softmax(hidden @ self.w_out.T, dim=1)
            onehot = torch.zeros_like(probs)
            onehot[torch.arange(ex.shape[0], device=self.dev), target] = 1.0
            g = (onehot - probs) * a[:, None]
            grad_hidden = (g @ self.w_out) / counts[:, None].float()
            self.w_out += g.T @ hidden
            self.w_in.index_add_(0, rows, grad_hidden[owner])
            self.stats.loss_sum[0] += float(-torch.log(probs[torch.arange(ex.shape[0], device=self.dev), target] + 1e-10).sum())
            self.stats.loss_count[0] += int(ex.shape[0])
        self.stats.words_done[0] += int(lengths.sum())

    def weights(self):
        return self.w_in.cpu().numpy(), self.w_out.cpu().numpy()

    def set_weights(self, w_in, w_out) -> None:
        self.w_in.copy_(torch.from_numpy(np.asarray(w_in)))
        self.w_out.copy_(torch.from_numpy(np.asarray(w_out)))

    def close(self) -> None:
        pass
