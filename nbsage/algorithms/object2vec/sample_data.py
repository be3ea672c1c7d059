"""Pairs to try Object2Vec on without downloading anything: tests, the notebook and the benchmark use them.

* `digit_pairs`: scikit-learn's bundled 8x8 digits, each image a sentence of 8 tokens, one per
  pixel row, the token being the row's 8 pixels thresholded to on/off (ids 0..255: a "word" is a
  stroke pattern, the order of the words is the shape); pairs labelled 1 when both images show
  the same digit, 0 otherwise, half of each. Train and test pairs are made
  from disjoint images, so a test pair is never a memorised image.
* `rating_pairs`: user-item ratings from low-rank latent factors plus Gaussian noise of a known
  standard deviation: in0 = [user id], in1 = [item id], label = rating. The noise variance is the
  lowest mean squared error any model can reach (the noise floor).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROWS = 8
VOCAB = 256  # 2 ** 8 on/off patterns of a row
THRESHOLD = 6  # of 16: a pixel darker than this is ink


@dataclass
class DigitData:
    """Digit pairs split by image, and every image's tokens and digit (for nearest neighbours)."""

    train: list[dict]
    test: list[dict]
    images: list[list[int]]
    digits: np.ndarray
    train_images: np.ndarray
    test_images: np.ndarray
    vocab_size: int


def digit_tokens(pixels: np.ndarray) -> list[int]:
    """One 8x8 image (values 0..16) as 8 row tokens: each row's ink pattern read as an 8-bit number."""
    ink = (np.asarray(pixels).reshape(ROWS, ROWS) > THRESHOLD).astype(np.int64)
    return (ink @ (1 << np.arange(ROWS)[::-1])).tolist()


def _pairs(images: np.ndarray, digits: np.ndarray, tokens: list, n: int, rng) -> list[dict]:
    by_digit = {d: images[digits[images] == d] for d in np.unique(digits[images])}
    out = []
    for k in range(n):
        a = int(rng.choice(images))
        if k % 2 == 0:
            b = int(rng.choice(by_digit[digits[a]]))
        else:
            b = int(rng.choice(images[digits[images] != digits[a]]))
        out.append({"label": int(digits[a] == digits[b]), "in0": tokens[a], "in1": tokens[b]})
    return out


def digit_pairs(n_train: int = 4000, n_test: int = 1000, test_share: float = 0.3, seed: int = 0) -> DigitData:
    """Same-digit-or-not pairs from scikit-learn's digits (1797 images bundled with it)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(seed)
    tokens = [digit_tokens(img) for img in digits.data]
    order = rng.permutation(len(tokens))
    cut = int(len(order) * (1 - test_share))
    train_images, test_images = np.sort(order[:cut]), np.sort(order[cut:])
    target = digits.target.astype(np.int64)
    return DigitData(train=_pairs(train_images, target, tokens, n_train, rng),
                     test=_pairs(test_images, target, tokens, n_test, rng),
                     images=tokens, digits=target, train_images=train_images, test_images=test_images,
                     vocab_size=VOCAB)


@dataclass
class RatingData:
    train: list[dict]
    test: list[dict]
    num_users: int
    num_items: int
    noise_floor: float  # the noise variance: the lowest reachable test MSE


def rating_pairs(num_users: int = 200, num_items: int = 100, rank: int = 3, n_train: int = 8000,
                 n_test: int = 2000, noise: float = 0.3, seed: int = 0) -> RatingData:
    """Ratings 3 + u.v + N(0, noise^2) of random user-item pairs (user and item factors ~ N(0, 1/rank))."""
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 1 / np.sqrt(rank), (num_users, rank))
    items = rng.normal(0, 1 / np.sqrt(rank), (num_items, rank))

    def draw(n):
        u, i = rng.integers(0, num_users, n), rng.integers(0, num_items, n)
        r = 3.0 + (users[u] * items[i]).sum(axis=1) + rng.normal(0, noise, n)
        return [{"label": round(float(y), 5), "in0": [int(a)], "in1": [int(b)]} for a, b, y in zip(u, i, r)]

    return RatingData(draw(n_train), draw(n_test), num_users, num_items, noise ** 2)
