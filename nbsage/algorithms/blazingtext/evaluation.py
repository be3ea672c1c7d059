"""Scoring word vectors and classifiers.

SageMaker scores Word2Vec vectors on WordSimilarity-353 (metric `train:mean_rho`). That file is
not shipped here; `WORD_PAIRS` is a built-in list of the same kind written for this package:
pairs of common English words, with a relatedness from 0 (unrelated) to 10 (same meaning),
half of them everyday words and half the vocabulary of technical and scientific prose
(arrays, files, plots, statistics), so that both general text and software documentation have
pairs in their vocabulary. The score is Spearman's rho between these judgements and the cosine
similarity of the two words' vectors, over the pairs whose two words are in the vocabulary.
"""
from __future__ import annotations

import numpy as np

MIN_PAIRS = 5  # fewer pairs in the vocabulary than this: no meaningful rank correlation

WORD_PAIRS = (
    # everyday words
    ("car", "automobile", 9.4), ("money", "cash", 9.1), ("coast", "shore", 9.0),
    ("big", "large", 9.2), ("small", "little", 9.0), ("begin", "start", 9.1),
    ("end", "finish", 8.8), ("king", "queen", 8.2), ("man", "woman", 8.0),
    ("boy", "girl", 8.1), ("father", "mother", 8.3), ("son", "daughter", 8.2),
    ("cat", "dog", 7.4), ("tiger", "lion", 8.0), ("horse", "cow", 6.9),
    ("apple", "orange", 7.2), ("bread", "butter", 6.9), ("tea", "coffee", 7.8),
    ("water", "river", 7.0), ("sea", "ocean", 9.0), ("sun", "moon", 7.0),
    ("day", "night", 7.3), ("morning", "evening", 7.0), ("week", "month", 7.2),
    ("year", "month", 7.1), ("house", "home", 8.6), ("city", "town", 8.5),
    ("country", "nation", 8.8), ("doctor", "nurse", 7.7), ("teacher", "student", 7.4),
    ("school", "university", 7.6), ("book", "paper", 6.5), ("music", "song", 8.1),
    ("war", "army", 7.8), ("government", "president", 7.2), ("computer", "software", 8.2),
    ("computer", "keyboard", 7.6), ("phone", "telephone", 9.2), ("train", "car", 6.3),
    ("plane", "airport", 7.6), ("food", "fruit", 7.5), ("happy", "glad", 8.6),
    ("sad", "unhappy", 8.8), ("fast", "quick", 9.0), ("slow", "fast", 6.0),
    ("cat", "car", 1.2), ("king", "cabbage", 0.5), ("money", "river", 1.5),
    ("doctor", "ocean", 0.8), ("music", "potato", 0.7), ("coffee", "war", 0.5),
    ("tiger", "keyboard", 0.4), ("happy", "airport", 0.8), ("queen", "month", 0.6),
    ("book", "cow", 0.9), ("sun", "software", 0.6), ("house", "lion", 1.1),
    # technical and scientific prose
    ("array", "matrix", 7.8), ("array", "list", 6.8), ("matrix", "vector", 7.3),
    ("vector", "array", 7.4), ("tensor", "array", 8.0), ("row", "column", 7.4),
    ("rows", "columns", 7.4), ("integer", "float", 7.2), ("int", "float", 7.2),
    ("integer", "number", 8.1), ("string", "text", 7.9), ("string", "character", 7.0),
    ("file", "directory", 7.3), ("file", "path", 7.2), ("folder", "directory", 9.2),
    ("plot", "figure", 7.6), ("plot", "axes", 7.0), ("plot", "chart", 8.6),
    ("axis", "dimension", 7.6), ("axis", "axes", 8.5), ("mean", "average", 9.2),
    ("mean", "median", 7.6), ("variance", "deviation", 8.0), ("variance", "covariance", 8.0),
    ("minimum", "maximum", 7.0), ("min", "max", 7.0), ("error", "exception", 8.2),
    ("warning", "error", 6.7), ("input", "output", 6.8), ("function", "method", 8.0),
    ("class", "object", 7.0), ("parameter", "argument", 8.5), ("parameters", "arguments", 8.5),
    ("shape", "size", 7.1), ("index", "position", 6.9), ("sparse", "dense", 6.7),
    ("random", "sample", 5.9), ("distribution", "probability", 7.6),
    ("color", "colour", 9.8), ("color", "colormap", 7.4), ("image", "pixel", 7.6),
    ("width", "height", 7.6), ("sort", "order", 7.0), ("key", "dictionary", 6.3),
    ("memory", "cpu", 6.0), ("gpu", "cpu", 7.5), ("gpu", "device", 6.6),
    ("thread", "process", 6.6), ("estimator", "model", 7.2), ("fit", "train", 7.1),
    ("training", "fitting", 7.0), ("label", "title", 5.6), ("line", "marker", 5.2),
    ("data", "dataset", 8.8), ("sum", "product", 5.0), ("true", "false", 6.8),
    ("first", "last", 6.4), ("read", "write", 6.9), ("load", "save", 6.7),
    ("matrix", "color", 1.3), ("integer", "figure", 1.2), ("exception", "pixel", 0.6),
    ("tensor", "directory", 0.7), ("variance", "thread", 0.6), ("colormap", "exception", 0.6),
    ("median", "keyboard", 0.7), ("sparse", "title", 0.9), ("gpu", "median", 1.0),
    ("string", "covariance", 0.8), ("pixel", "argument", 0.9), ("marker", "probability", 0.9),
)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(a @ b) / (na * nb)


def spearman(x, y) -> float:
    """Spearman's rank correlation with average ranks for ties (no scipy needed)."""
    def ranks(v):
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v), dtype=np.float64)
        sorted_v = v[order]
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and sorted_v[j + 1] == sorted_v[i]:
                j += 1
            r[order[i:j + 1]] = (i + j) / 2.0
            i = j + 1
        return r
    rx, ry = ranks(x), ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = float(np.sqrt((rx @ rx) * (ry @ ry)))
    return float(rx @ ry / denom) if denom else 0.0


def word_similarity(vectors, pairs=WORD_PAIRS) -> dict:
    """Spearman's rho of cosine similarities against the pairs' judgements.

    vectors: anything with `index` (word -> row) and `vector(word)`. Returns
    {"spearmans_rho": rho or None, "pairs_found": n, "not_found": m}.
    """
    found, judged, sims = 0, [], []
    for a, b, score in pairs:
        if a in vectors.index and b in vectors.index:
            found += 1
            judged.append(score)
            sims.append(cosine(vectors.vector(a), vectors.vector(b)))
    rho = spearman(sims, judged) if found >= MIN_PAIRS else None
    return {"spearmans_rho": rho, "pairs_found": found, "not_found": len(pairs) - found}


def accuracy(probabilities: np.ndarray, label_ptr: np.ndarray, label_ids: np.ndarray) -> float:
    """Fraction of examples whose top label is one of theirs (precision at 1)."""
    n = probabilities.shape[0]
    if n == 0:
        return float("nan")
    top = probabilities.argmax(axis=1)
    counts = np.diff(label_ptr)
    match = np.repeat(top, counts) == label_ids
    owner = np.repeat(np.arange(n), counts)
    hits = np.zeros(n, dtype=bool)
    hits[owner[match]] = True
    return float(hits.mean())
