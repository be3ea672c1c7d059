"""Vocabularies: `vocab.src.json` / `vocab.trg.json`, JSON objects token -> id.

The layout is the one SageMaker's `create_vocab_proto.py` writes and its container reads: the
reserved symbols `<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3, then the words by descending count.
A file that is not such an object is refused naming the file and the rule, before any training.
Sentences are split on whitespace, as the example script and the endpoint do.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from nbsage.errors import DataError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
RESERVED = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SOURCE_FILE, TARGET_FILE = "vocab.src.json", "vocab.trg.json"


@dataclass
class Vocabulary:
    """token -> id and back."""

    ids: dict[str, int]

    def __post_init__(self):
        self.tokens = [""] * (max(self.ids.values()) + 1)
        for token, i in self.ids.items():
            self.tokens[i] = token

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, sentence: str) -> list[int]:
        """Whitespace tokens to ids; unknown tokens are <unk>."""
        return [self.ids.get(token, UNK_ID) for token in sentence.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to a sentence, without <pad>, <s> and </s> (<unk> is kept, as Sockeye writes it)."""
        return " ".join(self.tokens[i] for i in ids if (i == UNK_ID or EOS_ID < i < len(self.tokens)) and self.tokens[i])

    def to_json(self) -> str:
        return json.dumps(self.ids, indent=4, ensure_ascii=False)


def check_vocabulary(doc, where: str) -> Vocabulary:
    """A parsed vocab file as a Vocabulary; DataError naming `where` and the rule it breaks."""
    rule = ("a vocab file is a JSON object of token -> integer id with <pad>=0, <unk>=1, <s>=2, </s>=3 "
            "and distinct ids, as create_vocab_proto.py writes")
    if not isinstance(doc, dict) or not doc:
        found = "an empty object" if isinstance(doc, dict) else f"a JSON {type(doc).__name__}"
        raise DataError(f"{where}: found {found}; {rule}")
    seen: dict[int, str] = {}
    for token, i in doc.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise DataError(f"{where}: token {token!r} has id {json.dumps(i)}, not a non-negative integer; {rule}")
        if i in seen:
            raise DataError(f"{where}: tokens {seen[i]!r} and {token!r} share id {i}; {rule}")
        seen[i] = token
    for want, symbol in enumerate(RESERVED):
        if doc.get(symbol) != want:
            raise DataError(f"{where}: {symbol!r} has id {json.dumps(doc.get(symbol))}, expected {want}; {rule}")
    return Vocabulary(dict(doc))


def read_vocabulary(path: Path) -> Vocabulary:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); a vocab file is a JSON object of token -> id") from None
    return check_vocabulary(doc, str(path))


def find_vocabularies(folder: Path) -> tuple[Vocabulary, Vocabulary]:
    """(source, target) vocabularies of the vocab channel's folder (searched recursively)."""
    found = {}
    for name in (SOURCE_FILE, TARGET_FILE):
        paths = sorted(Path(folder).rglob(name))
        if not paths:
            raise DataError(f"channel 'vocab' has no {name} under {folder}; it must hold {SOURCE_FILE} and "
                            f"{TARGET_FILE}")
        found[name] = read_vocabulary(paths[0])
    return found[SOURCE_FILE], found[TARGET_FILE]


def build_vocabulary(sentences: Iterable[str], num_words: int = 50000, min_count: int = 1) -> Vocabulary:
    """The reserved symbols, then the `num_words` most frequent tokens seen at least `min_count` times.

    Ties are broken as create_vocab_proto.py breaks them (reverse order of the token), so the same
    sentences give the same ids.
    """
    counts = Counter(t for s in sentences for t in s.split() if t not in RESERVED)
    ranked = sorted(((c, w) for w, c in counts.items() if c >= min_count), reverse=True)[:num_words]
    return Vocabulary({token: i for i, token in enumerate(list(RESERVED) + [w for _, w in ranked])})
