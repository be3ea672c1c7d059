"""The hashes that map character n-grams and word n-grams to bucket rows, as fastText defines them.

A word's character n-grams are taken from "<word>" (fastText's boundary markers), lengths
min_char..max_char counted in UTF-8 characters, each hashed with 32-bit FNV-1a (fastText XORs each
byte as a sign-extended int8, which matters only for non-ASCII bytes; done the same here) into
`buckets` rows that follow the vocabulary rows. A sentence's word n-grams (n = 2..word_ngrams) chain
the FNV-1a hashes of the words with fastText's multiplier 116049371, modulo `buckets`. Training and
inference both call these, so a model scores a request exactly as it saw its training data.

The functions are plain Python that numba compiles when it is installed; without numba they run
as Python (slowly, but the same numbers).
"""
from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps inference working without it
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
NGRAM_MULTIPLIER = 116049371
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


@njit(cache=True)
def _fnv1a(buf, a, b):
    h = np.uint32(FNV_OFFSET)
    for i in range(a, b):
        byte = np.int64(buf[i])
        if byte >= 128:
            byte -= 256  # fastText's int8_t cast
        h = np.uint32(h ^ np.uint32(byte & 0xFFFFFFFF))
        h = np.uint32(h * np.uint32(FNV_PRIME))
    return h


@njit(cache=True)
def hash_strings(buf, offsets):
    """FNV-1a of each string buf[offsets[i]:offsets[i+1]] (UTF-8 bytes) -> uint32 array."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint32)
    for i in range(n):
        out[i] = _fnv1a(buf, offsets[i], offsets[i + 1])
    return out


@njit(cache=True)
def _char_ngrams(buf, a, b, min_char, max_char, buckets, first_row, rows, k0, write):
    """Count (and with write, store at rows[k0:]) the n-gram rows of the word buf[a:b]."""
    k = 0
    for i in range(a, b):
        if (buf[i] & 0xC0) == 0x80:
            continue
        j = i
        length = 1
        while j < b and length <= max_char:
            j += 1
            while j < b and (buf[j] & 0xC0) == 0x80:
                j += 1
            if length >= min_char and not (length == 1 and (i == a or j == b)):
                if write:
                    rows[k0 + k] = first_row + np.int64(_fnv1a(buf, i, j) % np.uint32(buckets))
                k += 1
            length += 1
    return k


@njit(cache=True)
def char_ngram_rows(buf, offsets, min_char, max_char, buckets, first_row):
    """Character n-gram rows of each word; returns CSR (ptr, rows).

    buf/offsets hold the words already wrapped as "<word>". Row = first_row + hash % buckets.
    """
    n = offsets.shape[0] - 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    for w in range(n):
        ptr[w + 1] = ptr[w] + _char_ngrams(buf, offsets[w], offsets[w + 1], min_char, max_char,
                                           buckets, first_row, empty, 0, False)
    rows = np.empty(ptr[n], dtype=np.int64)
    for w in range(n):
        _char_ngrams(buf, offsets[w], offsets[w + 1], min_char, max_char, buckets, first_row,
                     rows, ptr[w], True)
    return ptr, rows


@njit(cache=True)
def sentence_rows(word_ids, word_hashes, sent_ptr, word_ngrams, buckets, first_row):
    """Input rows of each sentence for the classifier: its in-vocabulary word ids, then its hashed
    word n-grams (n = 2..word_ngrams, over all words, known or not). word_ids[i] < 0 marks an
    unknown word. Returns CSR (ptr, rows)."""
    n = sent_ptr.shape[0] - 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    for s in range(n):
        a, b = sent_ptr[s], sent_ptr[s + 1]
        count = 0
        for i in range(a, b):
            if word_ids[i] >= 0:
                count += 1
        if buckets > 0:
            for i in range(a, b):
                for j in range(i + 1, min(b, i + word_ngrams)):
                    count += 1
        ptr[s + 1] = ptr[s] + count
    rows = np.empty(ptr[n], dtype=np.int64)
    for s in range(n):
        a, b = sent_ptr[s], sent_ptr[s + 1]
        k = ptr[s]
        for i in range(a, b):
            if word_ids[i] >= 0:
                rows[k] = word_ids[i]
                k += 1
        if buckets > 0:
            for i in range(a, b):
                h = np.uint64(np.int64(word_hashes[i]))
                for j in range(i + 1, min(b, i + word_ngrams)):
                    h = h * np.uint64(NGRAM_MULTIPLIER) + np.uint64(np.int64(word_hashes[j]))
                    rows[k] = first_row + np.int64(h % np.uint64(buckets))
                    k += 1
    return ptr, rows


def pack_strings(strings, wrap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of the strings end to end (wrapped in "<", ">" when wrap) and their offsets."""
    encoded = [("<" + s + ">" if wrap else s).encode("utf-8") for s in strings]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    return buf, offsets


def word_hashes(strings) -> np.ndarray:
    """fastText's FNV-1a hash of each string."""
    buf, offsets = pack_strings(strings)
    return hash_strings(buf, offsets)


def subword_rows(words, min_char: int, max_char: int, buckets: int, first_row: int):
    """CSR (ptr, rows) of each word's character n-gram rows (not the word's own row)."""
    buf, offsets = pack_strings(words, wrap=True)
    return char_ngram_rows(buf, offsets, min_char, max_char, buckets, first_row)
