"""Reading BlazingText's channels into integer arrays, and the vocabulary.

Inputs (SageMaker's BlazingText input formats):
* text: one space-tokenised sentence per line; for `supervised` each line carries one or more
  `__label__<name>` tokens anywhere in it (the rest is the text);
* an augmented manifest: JSON Lines `{"source": "text ...", "label": 1}` or `"label": [1, 3]`
  (labels become `__label__1`, `__label__3`), plain or RecordIO-wrapped as Pipe mode delivers it.

Reading is one pass: every distinct token gets a provisional id in order of first appearance
and the corpus is kept as int32 ids; the vocabulary (tokens seen at least min_count times,
most frequent first) is then a renumbering of those ids with numpy, so no token is looked up
twice and no per-token Python object outlives its line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from nbsage.errors import DataError

LABEL_PREFIX = "__label__"
MAX_SENTENCE = 1000  # longer lines are cut into pieces of this many words (word2vec windows)
TEXT, MANIFEST, RECORDIO_MANIFEST = "text", "manifest", "recordio-manifest"
MANIFEST_CONTENT_TYPES = ("application/jsonlines", "application/x-recordio")
_MANIFEST_KINDS = {"application/jsonlines": MANIFEST, "application/x-recordio": RECORDIO_MANIFEST}


def file_kind(path: Path, content_type: str) -> str:
    """text, manifest (JSON Lines) or recordio-manifest, from the content type or the bytes."""
    from nbsage.formats import normalize_content_type
    kind = _MANIFEST_KINDS.get(normalize_content_type(content_type))
    if kind:
        return kind
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"\x0a\x23\xd7\xce":
        return RECORDIO_MANIFEST
    first = head.lstrip().split(b"\n", 1)[0].strip()
    if first.startswith(b"{") and path.suffix in (".manifest", ".jsonl", ".json", ".jsonlines"):
        return MANIFEST
    return TEXT


def _manifest_line(record, where: str) -> str:
    """`__label__x ... source text` from an augmented-manifest record."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: an augmented-manifest record must be a JSON object with "
                        f"\"source\" and \"label\", got {type(record).__name__}")
    if "source" not in record:
        raise DataError(f"{where}: augmented-manifest record has no \"source\" attribute "
                        f"(BlazingText reads {{\"source\": \"text ...\", \"label\": 1}}); "
                        f"it has {', '.join(map(repr, record)) or 'no keys'}")
    source = record["source"]
    if not isinstance(source, str):
        raise DataError(f"{where}: \"source\" must be a string of space-separated tokens, "
                        f"got {type(source).__name__}")
    label = record.get("label")
    labels = label if isinstance(label, list) else [] if label is None else [label]
    for value in labels:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise DataError(f"{where}: \"label\" must be a number, a string or a list of them, "
                            f"got {value!r}")
    tags = " ".join(LABEL_PREFIX + str(int(v) if isinstance(v, float) else v) for v in labels)
    return f"{tags} {source}" if tags else source


CHUNK_CHARS = 8 << 20  # text is tokenised this many characters at a time


def _manifest_records(path: Path, kind: str) -> Iterator[tuple[int, object, str]]:
    """(line or record number, parsed JSON, where) of an augmented manifest."""
    if kind == MANIFEST:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path.name} line {lineno}"
                try:
                    yield lineno, json.loads(line), where
                except ValueError as e:
                    raise DataError(f"{where}: not valid JSON ({e}); an augmented manifest "
                                    f"holds one JSON object per line") from None
    else:
        from nbsage.formats.recordio_protobuf import iter_payloads
        with open(path, "rb") as f:
            for index, payload in enumerate(iter_payloads(f, path.name), start=1):
                where = f"{path.name} record {index}"
                try:
                    yield index, json.loads(payload), where
                except ValueError as e:
                    raise DataError(f"{where}: not a JSON object ({e}); RecordIO-wrapped "
                                    f"augmented manifests hold one JSON object per record") from None


def iter_chunks(files: Iterable[Path], content_type: str = "") -> Iterator[tuple[str, np.ndarray, str]]:
    """(file name, line number of each line, text) for the channel, many lines at a time.

    The text holds whole lines, each ending with a newline; augmented-manifest records are
    turned into `__label__x ... source` lines first.
    """
    for path in files:
        path = Path(path)
        kind = file_kind(path, content_type)
        if kind == TEXT:
            first_line = 1
            with open(path, encoding="utf-8", errors="replace") as f:
                rest = ""
                while True:
                    block = f.read(CHUNK_CHARS)
                    if not block:
                        break
                    block = rest + block
                    cut = block.rfind("\n") + 1
                    if cut == 0:
                        rest = block
                        continue
                    text, rest = block[:cut], block[cut:]
                    n = text.count("\n")
                    yield path.name, np.arange(first_line, first_line + n), text
                    first_line += n
                if rest:
                    yield path.name, np.arange(first_line, first_line + 1), rest + "\n"
        else:
            lines, numbers = [], []
            for number, record, where in _manifest_records(path, kind):
                lines.append(_manifest_line(record, where).replace("\n", " "))
                numbers.append(number)
                if len(lines) == 100_000:
                    yield path.name, np.asarray(numbers), "\n".join(lines) + "\n"
                    lines, numbers = [], []
            if lines:
                yield path.name, np.asarray(numbers), "\n".join(lines) + "\n"


_END = "\x00"  # stands for a line end while a chunk is tokenised


@dataclass
class Tokens:
    """Every token of a channel as interned ids, cut into lines, with where each line came from."""

    ids: np.ndarray            # int32
    line_lengths: np.ndarray   # int64 tokens per line (blank lines: 0)
    line_numbers: np.ndarray   # int64 line (or record) number in its file
    line_files: np.ndarray     # int32 index into names
    names: list[str]

    def where(self, line: int) -> str:
        return f"{self.names[self.line_files[line]]} line {self.line_numbers[line]}"


def read_tokens(files: Iterable[Path], content_type: str, interner: "Interner") -> Tokens:
    """Split every line on whitespace and intern the tokens; one pass, whole chunks at a time."""
    ids_parts, length_parts, number_parts, file_parts = [], [], [], []
    names: list[str] = []
    end_id = interner.ids.setdefault(_END, len(interner.ids))
    for name, numbers, text in iter_chunks(files, content_type):
        if not names or names[-1] != name:
            names.append(name)
        if _END in text:
            text = text.replace(_END, "")
        ids = np.asarray(interner.encode(text.replace("\n", " " + _END + " ").split()), dtype=np.int32)
        ends = np.flatnonzero(ids == end_id)
        length_parts.append(np.diff(ends, prepend=-1) - 1)
        ids_parts.append(ids[ids != end_id])
        number_parts.append(numbers[:ends.shape[0]])
        file_parts.append(np.full(ends.shape[0], len(names) - 1, dtype=np.int32))

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return Tokens(cat(ids_parts, np.int32), cat(length_parts, np.int64), cat(number_parts, np.int64),
                  cat(file_parts, np.int32), names)


class Interner:
    """Provisional ids for tokens in order of first appearance."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def encode(self, tokens: list[str]) -> list[int]:
        ids = self.ids
        return [ids.setdefault(t, len(ids)) for t in tokens]

    def strings(self) -> list[str]:
        """Tokens by id (the line-end marker, if interned, stays at its id and is never counted)."""
        return list(self.ids)


@dataclass
class Vocabulary:
    """Words kept (count >= min_count), most frequent first; labels for the classifier."""

    words: list[str]
    counts: np.ndarray
    labels: list[str]
    label_counts: np.ndarray
    total_tokens: int

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}
        self.label_index = {lab: i for i, lab in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.words)

    def keep_probabilities(self, sampling_threshold: float) -> np.ndarray:
        """Probability of keeping each word under frequent-word subsampling (word2vec's formula)."""
        if sampling_threshold <= 0 or len(self.words) == 0:
            return np.ones(len(self.words), dtype=np.float32)
        f = self.counts / max(1, self.counts.sum())
        t = sampling_threshold
        p = (np.sqrt(f / t) + 1.0) * t / np.maximum(f, 1e-30)
        return np.minimum(p, 1.0).astype(np.float32)

    def negative_table(self, size: int | None = None, power: float = 0.75) -> np.ndarray:
        """Word ids laid out in proportion to count**0.75 (the noise distribution)."""
        if size is None:
            size = int(min(10_000_000, max(1_000_000, 100 * len(self.words))))
        weights = self.counts.astype(np.float64) ** power
        cum = np.cumsum(weights / weights.sum())
        positions = (np.arange(size) + 0.5) / size
        return np.searchsorted(cum, positions).astype(np.int32).clip(0, len(self.words) - 1)


@dataclass
class Corpus:
    """A word2vec training corpus: word ids of every kept token, cut into sentences."""

    words: np.ndarray      # int32 vocabulary ids
    sent_ptr: np.ndarray   # int64, sentence i is words[sent_ptr[i]:sent_ptr[i+1]]
    vocab: Vocabulary

    @property
    def num_words(self) -> int:
        return int(self.words.shape[0])

    @property
    def num_sentences(self) -> int:
        return int(self.sent_ptr.shape[0] - 1)

    def share(self, rank: int, size: int) -> "Corpus":
        """Sentences rank, rank + size, ... (one host's share of a corpus every host read)."""
        if size <= 1:
            return self
        lengths = np.diff(self.sent_ptr)[rank::size]
        starts = self.sent_ptr[:-1][rank::size]
        # the word positions of the chosen sentences, in order, without a Python loop
        offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        words = self.words[np.repeat(starts, lengths) + offsets]
        sent_ptr = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=sent_ptr[1:])
        return Corpus(words, sent_ptr, self.vocab)


def _renumber(counts: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """(order of kept provisional ids, most frequent first; map provisional id -> new id or -1)."""
    kept = np.flatnonzero(counts >= max(min_count, 1))
    order = kept[np.argsort(-counts[kept], kind="stable")]
    mapping = np.full(counts.shape[0], -1, dtype=np.int64)
    mapping[order] = np.arange(order.shape[0])
    return order, mapping


CountsOverHosts = Callable[[list[str], np.ndarray], tuple[list[str], np.ndarray]]


def read_word2vec(files: list[Path], content_type: str, min_count: int, channel: str = "train",
                  counts_over_hosts: CountsOverHosts | None = None) -> Corpus:
    """The corpus of a word2vec channel: one sentence per line, tokens split on whitespace.

    `counts_over_hosts`, for a channel split over several hosts (ShardedByS3Key), takes this
    host's (tokens, counts) to the tokens and summed counts of all hosts, in the same order on
    every host: the vocabulary and min_count then follow the whole corpus, and every host numbers
    the words alike. A host whose share is empty then trains nothing and is no error.
    """
    interner = Interner()
    tokens = read_tokens(files, content_type, interner)
    raw = tokens.ids
    if raw.shape[0] == 0 and counts_over_hosts is None:
        raise DataError(_empty_message(files, channel, "word2vec needs at least one line of "
                                                       "space-separated words"))
    counts = np.bincount(raw, minlength=len(interner.ids))
    strings = interner.strings()
    if counts_over_hosts is not None:
        seen = np.flatnonzero(counts > 0)
        strings, counts = counts_over_hosts([strings[i] for i in seen], counts[seen])
        counts = np.asarray(counts, dtype=np.int64)
        if counts.sum() == 0:
            raise DataError(_empty_message(files, channel, "word2vec needs at least one line of "
                                                           "space-separated words on some host"))
    order, mapping = _renumber(counts, min_count)
    if order.shape[0] == 0:
        raise DataError(f"channel {channel!r}: no word occurs at least min_count={min_count} times "
                        f"({int((counts > 0).sum())} distinct words, the most frequent "
                        f"{int(counts.max())} times); lower min_count or give more text")
    vocab = Vocabulary([strings[i] for i in order], counts[order].astype(np.int64), [],
                       np.zeros(0, np.int64), int(counts.sum()))
    if counts_over_hosts is not None:  # this host's provisional ids -> the shared vocabulary
        index = vocab.index
        mapping = np.fromiter((index.get(t, -1) for t in interner.strings()), dtype=np.int64,
                              count=len(interner.ids))
    new_ids = mapping[raw]
    keep = new_ids >= 0
    n_lines = tokens.line_lengths.shape[0]
    sentence_of = np.repeat(np.arange(n_lines), tokens.line_lengths)
    kept_per_sentence = np.bincount(sentence_of[keep], minlength=n_lines)
    words = new_ids[keep].astype(np.int32)
    # sentences without kept words vanish; long ones are cut into MAX_SENTENCE-word pieces
    nonempty = kept_per_sentence[kept_per_sentence > 0].astype(np.int64)
    pieces = (nonempty + MAX_SENTENCE - 1) // MAX_SENTENCE
    piece_lengths = np.full(int(pieces.sum()), MAX_SENTENCE, dtype=np.int64)
    piece_lengths[np.cumsum(pieces) - 1] = nonempty - MAX_SENTENCE * (pieces - 1)
    sent_ptr = np.zeros(len(piece_lengths) + 1, dtype=np.int64)
    np.cumsum(piece_lengths, out=sent_ptr[1:])
    return Corpus(words, sent_ptr, vocab)


def _empty_message(files: list[Path], channel: str, rule: str) -> str:
    if not files:
        return f"channel {channel!r} has no files: {rule}"
    names = ", ".join(Path(f).name for f in files[:5]) + (" ..." if len(files) > 5 else "")
    return f"channel {channel!r} is empty (no words in {names}): {rule}"


@dataclass
class LabelledSet:
    """Classifier examples. Words and labels share one interner: ids are its provisional ids."""

    token_ids: np.ndarray       # int32 word tokens of every example
    sent_ptr: np.ndarray        # int64, example i's words are token_ids[sent_ptr[i]:sent_ptr[i+1]]
    label_ids: np.ndarray       # int32 label tokens of every example
    label_ptr: np.ndarray       # int64
    num_tokens: int

    def __len__(self) -> int:
        return int(self.sent_ptr.shape[0] - 1)


def read_labelled(files: list[Path], content_type: str, channel: str, interner: Interner,
                  require_labels: bool = True) -> LabelledSet:
    """Examples of a supervised channel; every line must carry at least one __label__ token.

    Which tokens are labels is decided once per distinct token, and the split of each line
    into words and labels is done with numpy.
    """
    tokens = read_tokens(files, content_type, interner)
    nonblank = np.flatnonzero(tokens.line_lengths > 0)
    if nonblank.shape[0] == 0:
        raise DataError(_empty_message(files, channel, "supervised mode needs lines of "
                                                       "'__label__<name> text ...'"))
    strings = interner.strings()
    raw = tokens.ids
    lengths = tokens.line_lengths[nonblank]
    n_lines = lengths.shape[0]
    line_of = np.repeat(np.arange(n_lines), lengths)
    is_label = np.fromiter((t.startswith(LABEL_PREFIX) for t in strings), dtype=bool, count=len(strings))
    empty_label = interner.ids.get(LABEL_PREFIX)
    if empty_label is not None and (raw == empty_label).any():
        line = nonblank[int(line_of[raw == empty_label][0])]
        raise DataError(f"{tokens.where(line)}: empty label '__label__'; write the label name right "
                        f"after the prefix, e.g. '__label__sports'")
    mask = is_label[raw]
    labels_per_line = np.bincount(line_of[mask], minlength=n_lines)
    if require_labels and (labels_per_line == 0).any():
        first = int(np.flatnonzero(labels_per_line == 0)[0])
        start = int(lengths[:first].sum())
        text = " ".join(strings[t] for t in raw[start:start + lengths[first]])
        raise DataError(
            f"{tokens.where(nonblank[first])}: no label; in supervised mode every line needs at "
            f"least one '__label__<name>' token (e.g. '__label__positive this movie was great'), "
            f"found: {text[:80]!r}")
    words = raw[~mask]
    sent_ptr = np.zeros(n_lines + 1, dtype=np.int64)
    np.cumsum(lengths - labels_per_line, out=sent_ptr[1:])
    label_ptr = np.zeros(n_lines + 1, dtype=np.int64)
    np.cumsum(labels_per_line, out=label_ptr[1:])
    return LabelledSet(words.copy(), sent_ptr, raw[mask].copy(), label_ptr, int(words.shape[0]))


def classifier_vocabulary(train: LabelledSet, min_count: int, interner: Interner):
    """(vocabulary, word map, label map): words of the training set seen at least min_count
    times and every training label, most frequent first. The maps take the interner's ids
    (which may include tokens read from other channels) to word or label numbers: -1 for words
    dropped by min_count and for labels never seen in training."""
    strings = interner.strings()
    counts = np.bincount(train.token_ids, minlength=len(strings))
    order, word_map = _renumber(counts, min_count)
    lcounts = np.bincount(train.label_ids, minlength=len(strings))
    lorder, label_map = _renumber(lcounts, 1)
    vocab = Vocabulary([strings[i] for i in order], counts[order].astype(np.int64),
                       [strings[i] for i in lorder], lcounts[lorder].astype(np.int64),
                       int(train.num_tokens))
    return vocab, word_map, label_map
