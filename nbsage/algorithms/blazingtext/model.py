"""BlazingText's trained models and the files they are saved in.

Files in the model directory (model.tar.gz):

* `vectors.txt` (Word2Vec): word2vec text format, a `<words> <dim>` header then one
  `word v1 v2 ...` line per word, most frequent first (gensim's
  `KeyedVectors.load_word2vec_format(path)` reads it);
* `vectors.bin` (Word2Vec): word2vec binary format, the same header then `word` + space +
  dim little-endian float32 per word (`load_word2vec_format(path, binary=True)`). SageMaker writes
  a fastText binary under this name; this implementation writes the word2vec one, which more
  tools read;
* `model.bin` (both modes): this implementation's own format, not fastText's — a NumPy .npz
  archive holding `meta` (JSON: mode, vector_dim, subword and n-gram settings), `words` and
  `labels` (UTF-8, newline-separated), `input` (word rows, then the rows of the hash buckets
  that training used), `bucket_ids` (which bucket each of those rows is) and, for `supervised`,
  `output` (one row per label). Only buckets that some training word or sentence hashed to are
  stored: the others never changed from their random start, and are read as zero vectors.

A model directory holding only vectors.txt or vectors.bin (say, from gensim) can be served too.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbsage.algorithms.blazingtext import hashing
from nbsage.errors import DataError

MODEL_FILE = "model.bin"
VECTORS_TXT = "vectors.txt"
VECTORS_BIN = "vectors.bin"
FORMAT = "nbsage-blazingtext/1"


# ---- averaging rows ------------------------------------------------------------------------------

def mean_rows(ptr: np.ndarray, rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out[i] = mean of matrix rows rows[ptr[i]:ptr[i+1]] (zeros for an empty range)."""
    n = ptr.shape[0] - 1
    out = np.zeros((n, matrix.shape[1]), dtype=np.float32)
    if n == 0:
        return out
    try:
        from nbsage.algorithms.blazingtext.kernels import mean_rows as kernel
    except ImportError:
        kernel = None
    if kernel is not None:
        kernel(ptr.astype(np.int64), rows.astype(np.int64), matrix, out)
        return out
    counts = np.diff(ptr)
    nonempty = counts > 0
    if rows.shape[0]:
        sums = np.add.reduceat(matrix[rows], ptr[:-1][nonempty], axis=0)
        out[nonempty] = sums / counts[nonempty, None]
    return out


def bucket_rows(buckets: np.ndarray, bucket_ids: np.ndarray, first_row: int, missing_row: int) -> np.ndarray:
    """Rows of the stored buckets (first_row + position in bucket_ids); missing_row for others."""
    if bucket_ids.shape[0] == 0:
        return np.full(buckets.shape[0], missing_row, dtype=np.int64)
    pos = np.searchsorted(bucket_ids, buckets)
    pos_c = np.minimum(pos, bucket_ids.shape[0] - 1)
    found = bucket_ids[pos_c] == buckets
    return np.where(found, first_row + pos_c, missing_row).astype(np.int64)


# ---- word vectors --------------------------------------------------------------------------------

@dataclass
class WordVectors:
    """Word2Vec output: a vector per vocabulary word; with subwords, vectors for any word."""

    words: list[str]
    vectors: np.ndarray                       # (words, dim) float32
    subwords: bool = False
    min_char: int = 3
    max_char: int = 6
    buckets: int = 2_000_000
    bucket_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bucket_vectors: np.ndarray | None = None  # (len(bucket_ids), dim)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def subword_vector(self, word: str) -> np.ndarray:
        """Mean of the word's character n-gram vectors (unseen n-grams count as zero)."""
        ptr, buckets = hashing.subword_rows([word], self.min_char, self.max_char, self.buckets, 0)
        if buckets.shape[0] == 0 or self.bucket_vectors is None:
            return np.zeros(self.dim, dtype=np.float32)
        missing = self.bucket_ids.shape[0]
        rows = bucket_rows(buckets, self.bucket_ids, 0, missing)
        padded = np.vstack([self.bucket_vectors, np.zeros((1, self.dim), np.float32)])
        return padded[rows].mean(axis=0).astype(np.float32)

    def vector(self, word: str) -> np.ndarray:
        """The word's vector; for an unknown word its subword vector, or zeros without subwords."""
        i = self.index.get(word)
        if i is not None:
            return self.vectors[i]
        if self.subwords:
            return self.subword_vector(word)
        return np.zeros(self.dim, dtype=np.float32)

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """Nearest vocabulary words by cosine similarity."""
        v = self.vector(word)
        norms = np.linalg.norm(self.vectors, axis=1) * (np.linalg.norm(v) or 1.0)
        sims = self.vectors @ v / np.maximum(norms, 1e-12)
        order = np.argsort(-sims)
        out = []
        for i in order:
            if self.words[i] == word:
                continue
            out.append((self.words[i], float(sims[i])))
            if len(out) == topn:
                break
        return out

    def save(self, model_dir: str | os.PathLike) -> None:
        """vectors.txt, vectors.bin and model.bin."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        write_vectors_txt(model_dir / VECTORS_TXT, self.words, self.vectors)
        write_vectors_bin(model_dir / VECTORS_BIN, self.words, self.vectors)
        meta = {**self.meta, "subwords": self.subwords, "min_char": self.min_char,
                "max_char": self.max_char, "buckets": self.buckets, "vector_dim": self.dim}
        arrays = {"input": self.vectors, "bucket_ids": self.bucket_ids}
        if self.bucket_vectors is not None:
            arrays["bucket_input"] = self.bucket_vectors
        _write_model(model_dir / MODEL_FILE, meta, self.words, [], arrays)


# ---- classifier ----------------------------------------------------------------------------------

@dataclass
class ClassifierModel:
    """The fastText-style classifier: mean of word and word n-gram rows -> softmax over labels.

    w_in rows: words (0..V-1), then the stored buckets (V..V+U-1), then one zero row for the
    buckets training never saw.
    """

    words: list[str]
    labels: list[str]
    w_in: np.ndarray
    w_out: np.ndarray
    bucket_ids: np.ndarray
    word_ngrams: int
    buckets: int
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.w_in.shape[1])

    def rows(self, texts: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """CSR (ptr, rows) of tokenised texts, as the training data was encoded."""
        ids, hashes, ptr = encode_tokens(texts, self.index)
        return classifier_rows(ids, hashes, ptr, self.word_ngrams, self.buckets, len(self.words),
                               self.bucket_ids)

    def probabilities(self, ptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
        hidden = mean_rows(ptr, rows, self.w_in)
        return softmax(hidden @ self.w_out.T)

    def predict(self, texts: list[str], k: int = 1) -> list[tuple[list[str], list[float]]]:
        """Top-k (labels, probabilities) for each text (space-tokenised string)."""
        ptr, rows = self.rows([t.split() for t in texts])
        probs = self.probabilities(ptr, rows)
        k = max(1, min(int(k), len(self.labels)))
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [([self.labels[j] for j in row], [float(probs[i, j]) for j in row])
                for i, row in enumerate(top)]

    def save(self, model_dir: str | os.PathLike) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "mode": "supervised", "word_ngrams": self.word_ngrams,
                "buckets": self.buckets, "vector_dim": self.dim}
        # the trailing zero row is implied, not stored
        _write_model(model_dir / MODEL_FILE, meta, self.words, self.labels,
                     {"input": self.w_in[:-1], "bucket_ids": self.bucket_ids, "output": self.w_out})


def softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(axis=1, keepdims=True)


def encode_tokens(texts: list[list[str]], index: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary id or -1, FNV-1a hash, per token) and the text pointer, for tokenised texts."""
    flat = [t for tokens in texts for t in tokens]
    ids = np.fromiter((index.get(t, -1) for t in flat), dtype=np.int64, count=len(flat))
    hashes = hashing.word_hashes(flat) if flat else np.zeros(0, np.uint32)
    ptr = np.zeros(len(texts) + 1, dtype=np.int64)
    if texts:
        np.cumsum([len(t) for t in texts], out=ptr[1:])
    return ids, hashes, ptr


def classifier_rows(ids, hashes, ptr, word_ngrams: int, buckets: int, num_words: int,
                    bucket_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """CSR input rows: words, then word n-gram buckets mapped to stored rows (bucket_ids), or
    left as num_words + bucket when bucket_ids is None (training, before buckets are compacted)."""
    use = buckets if word_ngrams > 1 else 0
    out_ptr, rows = hashing.sentence_rows(ids.astype(np.int64), hashes.astype(np.uint32), ptr,
                                          int(word_ngrams), int(use), int(num_words))
    if bucket_ids is not None:
        is_bucket = rows >= num_words
        if is_bucket.any():
            missing = num_words + bucket_ids.shape[0]
            rows[is_bucket] = bucket_rows(rows[is_bucket] - num_words, bucket_ids, num_words, missing)
    return out_ptr, rows


# ---- files ---------------------------------------------------------------------------------------

def write_vectors_txt(path: Path, words: list[str], vectors: np.ndarray) -> None:
    """word2vec text format."""
    dim = vectors.shape[1]
    fmt = " ".join(["%.6g"] * dim)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {dim}\n")
        for w, row in zip(words, vectors.astype(np.float64)):
            f.write(w + " " + fmt % tuple(row) + "\n")


def write_vectors_bin(path: Path, words: list[str], vectors: np.ndarray) -> None:
    """word2vec binary format (little-endian float32)."""
    rows = vectors.astype("<f4")
    with open(path, "wb") as f:
        f.write(f"{len(words)} {rows.shape[1]}\n".encode())
        for w, row in zip(words, rows):
            f.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")


def read_vectors(path: Path) -> WordVectors:
    """vectors.txt or vectors.bin in word2vec format (text or binary, told apart by content)."""
    data = Path(path).read_bytes()
    head, _, rest = data.partition(b"\n")
    try:
        count, dim = (int(x) for x in head.split())
    except ValueError:
        raise DataError(f"{path}: not a word2vec vectors file: the first line must be "
                        f"'<number of words> <dimension>', found {head[:60]!r}") from None
    words: list[str] = []
    binary = Path(path).suffix == ".bin" or _looks_binary(rest, dim)
    if binary:
        vectors = np.zeros((count, dim), dtype=np.float32)
        pos = 0
        for i in range(count):
            while rest[pos:pos + 1] in (b"\n", b" "):
                pos += 1
            end = rest.index(b" ", pos)
            words.append(rest[pos:end].decode("utf-8", errors="replace"))
            vectors[i] = np.frombuffer(rest, dtype="<f4", count=dim, offset=end + 1)
            pos = end + 1 + 4 * dim
        return WordVectors(words, vectors)
    lines = rest.decode("utf-8", errors="replace").splitlines()
    vectors = np.zeros((count, dim), dtype=np.float32)
    for i, line in enumerate(lines[:count]):
        parts = line.rstrip().split(" ")
        if len(parts) != dim + 1:
            raise DataError(f"{path} line {i + 2}: expected a word and {dim} numbers, found "
                            f"{len(parts)} fields")
        words.append(parts[0])
        vectors[i] = np.asarray(parts[1:], dtype=np.float32)
    return WordVectors(words, vectors)


def _looks_binary(rest: bytes, dim: int) -> bool:
    first = rest.split(b"\n", 1)[0]
    try:
        first.decode("ascii")
    except UnicodeDecodeError:
        return True
    return len(first.split()) != dim + 1


def _join(strings: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _split(array: np.ndarray) -> list[str]:
    text = array.tobytes().decode("utf-8")
    return text.split("\n") if text else []


def _write_model(path: Path, meta: dict, words: list[str], labels: list[str], arrays: dict) -> None:
    meta = {"format": FORMAT, **meta}
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             words=_join(words), labels=_join(labels), **arrays)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def load_model(model_dir: str | os.PathLike) -> WordVectors | ClassifierModel:
    """The model of a BlazingText model directory: model.bin, else vectors.bin or vectors.txt."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.exists():
        for name in (VECTORS_BIN, VECTORS_TXT):
            if (model_dir / name).exists():
                return read_vectors(model_dir / name)
        raise DataError(f"{model_dir} holds no BlazingText model: expected {MODEL_FILE}, "
                        f"{VECTORS_BIN} or {VECTORS_TXT}")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            words, labels = _split(z["words"]), _split(z["labels"])
            arrays = {k: z[k] for k in z.files if k not in ("meta", "words", "labels")}
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path} is not a BlazingText model.bin written by nbsage ({e}); "
                        f"fastText .bin files are not read") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: unknown model format {meta.get('format')!r} (expected {FORMAT})")
    if meta.get("mode") == "supervised":
        dim = arrays["input"].shape[1]
        w_in = np.vstack([arrays["input"], np.zeros((1, dim), np.float32)]).astype(np.float32)
        return ClassifierModel(words, labels, w_in, arrays["output"].astype(np.float32),
                               arrays["bucket_ids"].astype(np.int64), int(meta["word_ngrams"]),
                               int(meta["buckets"]), meta)
    return WordVectors(words, arrays["input"].astype(np.float32), bool(meta.get("subwords")),
                       int(meta.get("min_char", 3)), int(meta.get("max_char", 6)),
                       int(meta.get("buckets", 2_000_000)), arrays["bucket_ids"].astype(np.int64),
                       arrays.get("bucket_input"), meta)
