"""Translation tasks to try Seq2Seq on without a download.

* `number_pairs`: numbers written as English words -> the same numbers in French words, generated
  with the num2words package ("three hundred and forty-two" -> "trois cent quarante-deux"): real
  multi-word translation with small vocabularies and unlimited fresh pairs. French hyphenated
  compounds are split into words ("quarante - deux"), so each word is a token.
* `reversal_pairs`: random sequences of symbols and the same sequence reversed — a task where each
  output word depends on one input word far away, which attention solves and a fixed-size summary of
  the source does not once sequences get long.
"""
from __future__ import annotations

import numpy as np


def _words(text: str) -> str:
    return " ".join(text.replace("-", " - ").replace(",", " ,").split())


def number_pairs(n: int, low: int = 0, high: int = 10000, seed: int = 0, target_lang: str = "fr",
                 exclude: set | None = None) -> list[tuple[str, str]]:
    """`n` distinct (English words, `target_lang` words) pairs of numbers in [low, high)."""
    from num2words import num2words
    rng = np.random.default_rng(seed)
    exclude = exclude or set()
    pool = np.setdiff1d(np.arange(low, high), np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
    numbers = rng.choice(pool, size=min(n, len(pool)), replace=False)
    return [(_words(num2words(int(k), lang="en")), _words(num2words(int(k), lang=target_lang))) for k in numbers]


def numbers_of(pairs, low: int = 0, high: int = 10000) -> set:
    """The numbers behind pairs made by number_pairs (to keep a test set apart)."""
    from num2words import num2words
    table = {_words(num2words(k, lang="en")): k for k in range(low, high)}
    return {table[s] for s, _ in pairs if s in table}


def reversal_pairs(n: int, min_length: int = 5, max_length: int = 20, vocab: int = 20, seed: int = 0,
                   ) -> list[tuple[str, str]]:
    """`n` pairs (a sequence of `vocab` symbols, the sequence reversed)."""
    rng = np.random.default_rng(seed)
    symbols = [f"w{i}" for i in range(vocab)]
    out = []
    for _ in range(n):
        seq = [symbols[i] for i in rng.integers(0, vocab, size=int(rng.integers(min_length, max_length + 1)))]
        out.append((" ".join(seq), " ".join(reversed(seq))))
    return out
