"""Local data of the same shape as the downloads of the ported SageMaker example notebooks.

Each function writes what the notebook downloaded, where it downloaded it, so the notebook's next
lines read it unchanged: abalone in libsvm (rings, then 8 features), MNIST as mnist.pkl.gz
(scikit-learn's 8x8 digits scaled up to 28x28, split train/valid/test), and a text8-like corpus
(one line of lower-case words with topical co-occurrence). Small sizes keep the tests fast.
"""
from __future__ import annotations

import gzip
import pickle

import numpy as np


def abalone_rows(n: int = 800, seed: int = 0):
    """(rings, features) shaped like UCI abalone: sex 1..3, length, diameter, height, four weights."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(1, 4, n)
    length = rng.uniform(0.1, 0.8, n)
    diameter = 0.8 * length + rng.normal(0, 0.02, n)
    height = 0.3 * length + rng.normal(0, 0.01, n)
    whole = 2.2 * length ** 3 * 4 + rng.normal(0, 0.05, n)
    shucked, viscera, shell = 0.45 * whole, 0.22 * whole, 0.3 * whole + rng.normal(0, 0.02, n)
    rings = np.clip(np.round(3 + 18 * shell + 4 * length + rng.normal(0, 1.2, n)), 1, 29)
    return rings, np.column_stack([sex, length, diameter, height, whole, shucked, viscera, shell])


def abalone_libsvm(path: str, n: int = 800, seed: int = 0) -> None:
    rings, features = abalone_rows(n, seed)
    with open(path, "w") as f:
        for y, row in zip(rings, features):
            f.write(f"{int(y)} " + " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(row)) + "\n")


def mnist_sets(seed: int = 0):
    """(train_set, valid_set, test_set), each (float32 rows of 784 pixels in [0, 1], int64 labels)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))                  # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))) / 16.0          # -> 28x28, like MNIST
    x = images.reshape(len(images), 784).astype("float32")
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), (x[1300:], y[1300:])


def mnist_pkl_gz(path: str) -> None:
    with gzip.open(path, "wb") as f:
        pickle.dump(mnist_sets(), f)


TOPICS = [
    "king queen prince princess throne crown royal palace kingdom castle".split(),
    "car truck engine wheel road driver fuel motor highway garage".split(),
    "apple banana orange fruit juice sweet mango peach cherry grape".split(),
    "computer software program code data network server memory disk awesome".split(),
    "fire flame blazing heat smoke burn hot ember ash spark".split(),
    "river lake water ocean sea boat fish shore wave island".split(),
]
FILLER = "the of and a in to is was for".split()


def text8(path: str, n_words: int = 15000, seed: int = 0) -> None:
    """One line of words: sentences of one topic each, with filler words between."""
    rng = np.random.default_rng(seed)
    words = []
    while len(words) < n_words:
        topic = TOPICS[rng.integers(len(TOPICS))]
        for _ in range(12):
            words.append(topic[rng.integers(len(topic))] if rng.random() < 0.75 else FILLER[rng.integers(len(FILLER))])
    with open(path, "w") as f:
        f.write(" " + " ".join(words[:n_words]))


EDUCATION = [" High school graduate", " Bachelors degree(BA AB BS)", " Masters degree(MA MS MEng MEd MSW MBA)",
             " Some college but no degree", " 10th grade", " Doctorate degree(PhD EdD)"]
INDUSTRY = [" Not in universe or children", " Retail trade", " Manufacturing-durable goods", " Education",
            " Finance insurance and real estate", " Construction"]
WORKER = [" Not in universe", " Private", " Self-employed-not incorporated", " Local government",
          " Federal government"]


def census_income(path: str, n: int = 1200, seed: int = 0) -> str:
    """A census-income.csv with the columns the processing example reads (and its income labels
    ' - 50000.' / ' 50000+.'), income depending on education, age and capital gains; returns path."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    education = rng.integers(len(EDUCATION), size=n)
    age = rng.integers(18, 80, size=n)
    gains = np.where(rng.random(n) < 0.15, rng.exponential(8000, n), 0).round()
    score = 0.9 * np.isin(education, [1, 2, 5]) + 0.03 * (age - 40) + gains / 8000 + rng.normal(0, 0.6, n)
    frame = pd.DataFrame({
        "age": age, "class of worker": [WORKER[i] for i in rng.integers(len(WORKER), size=n)],
        "education": [EDUCATION[i] for i in education],
        "major industry code": [INDUSTRY[i] for i in rng.integers(len(INDUSTRY), size=n)],
        "num persons worked for employer": rng.integers(0, 7, size=n), "capital gains": gains,
        "capital losses": np.where(rng.random(n) < 0.05, rng.exponential(1500, n), 0).round(),
        "dividends from stocks": np.where(rng.random(n) < 0.1, rng.exponential(2000, n), 0).round(),
        "income": np.where(score > 1.0, " 50000+.", " - 50000."),
    })
    frame.to_csv(path, index=False)
    return path
