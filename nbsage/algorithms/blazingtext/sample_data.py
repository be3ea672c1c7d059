"""Text to try BlazingText on without a download: a generated corpus with known structure, and
real English sentences taken from the docstrings of installed Python packages.

`topic_corpus` writes sentences drawn from a two-level topic model (super-topics holding topics
holding words) whose words are built from one stem per topic plus English suffixes, so the true
similarity of any two words is known (same topic > same super-topic > unrelated) and words share
character n-grams the way inflected forms do. It serves the tests, the benchmarks (Spearman
correlation against the known similarity) and the supervised examples (a sentence's label is its
topic or super-topic).

`docstring_corpus` reads the docstrings of packages that are installed anyway (numpy, scipy,
scikit-learn, matplotlib, pandas, torch, ...), splits them into sentences and labels each sentence
with the package it came from: real prose, real vocabulary, and a labelled classification task
whose confusions mean something (scipy reads like numpy; pandas like neither).
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FUNCTION_WORDS = (
    "the of and to a in is that for it as with was on be by at this from or an are not have which "
    "but one has all were when there can more if no out so what up its into than them only some "
    "could time these two may then do any like other about over such our between after").split()
SUFFIXES = ("", "s", "er", "ers", "ing", "ed", "ly", "ness", "al", "ation", "ist", "ic")
_CONSONANTS = "bcdfghklmnprstvz"
_VOWELS = "aeiou"


@dataclass
class TopicCorpus:
    """A generated corpus and the truth about its words.

    `sentences` are space-separated lines; `topics[i]`/`supers[i]` label sentence i;
    `word_topic` maps each content word to (super-topic, topic); `stems[t]` is topic t's stem.
    """

    sentences: list[str]
    topics: np.ndarray
    supers: np.ndarray
    word_topic: dict[str, tuple[int, int]]
    stems: list[str]
    suffixes: tuple[str, ...] = SUFFIXES
    _rng_seed: int = 0
    pairs: list[tuple[str, str, float]] = field(default_factory=list)

    def similarity(self, a: str, b: str) -> float:
        """Known similarity: 2 same topic, 1 same super-topic, 0 otherwise."""
        sa, ta = self.word_topic[a]
        sb, tb = self.word_topic[b]
        return 2.0 if ta == tb else 1.0 if sa == sb else 0.0

    def write(self, path: str | os.PathLike, labels: str | None = None) -> Path:
        """Write one sentence per line; labels="topic" or "super" prefixes `__label__<n>`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            for i, s in enumerate(self.sentences):
                if labels == "topic":
                    f.write(f"__label__topic{self.topics[i]} {s}\n")
                elif labels == "super":
                    f.write(f"__label__super{self.supers[i]} {s}\n")
                else:
                    f.write(s + "\n")
        return path


def _stem(rng: np.random.Generator, used: set) -> str:
    while True:
        syllables = int(rng.integers(2, 4))
        s = "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                    for _ in range(syllables)) + _CONSONANTS[rng.integers(len(_CONSONANTS))]
        if s not in used:
            used.add(s)
            return s


def topic_corpus(num_words: int = 200_000, supers: int = 6, topics_per_super: int = 5,
                 words_per_topic: int = 10, topic_share: float = 0.7, function_share: float = 0.35,
                 sentence_length: tuple[int, int] = (8, 20), seed: int = 0,
                 num_pairs: int = 300) -> TopicCorpus:
    """Generate about `num_words` words of sentences from a two-level topic model.

    Each sentence has one topic; a token is a function word (Zipf-distributed, so frequent-word
    subsampling matters) with probability `function_share`, else a word of the sentence's topic
    with probability `topic_share`, else a word of a sibling topic in the same super-topic.
    Words of a topic are its stem plus the first `words_per_topic` of SUFFIXES. `pairs` holds
    `num_pairs` content-word pairs with their known similarity, balanced across the three levels.
    """
    rng = np.random.default_rng(seed)
    if words_per_topic > len(SUFFIXES):
        raise ValueError(f"words_per_topic must be at most {len(SUFFIXES)}")
    used: set = set(FUNCTION_WORDS)
    n_topics = supers * topics_per_super
    stems = [_stem(rng, used) for _ in range(n_topics)]
    words = list(FUNCTION_WORDS)
    word_topic: dict[str, tuple[int, int]] = {}
    topic_words = np.zeros((n_topics, words_per_topic), dtype=np.int64)
    for t in range(n_topics):
        for j in range(words_per_topic):
            w = stems[t] + SUFFIXES[j]
            topic_words[t, j] = len(words)
            word_topic[w] = (t // topics_per_super, t)
            words.append(w)
    vocab = np.array(words, dtype=object)
    nf = len(FUNCTION_WORDS)
    f_p = 1.0 / np.arange(1, nf + 1)
    f_p /= f_p.sum()
    w_p = 1.0 / np.arange(1, words_per_topic + 1) ** 0.7
    w_p /= w_p.sum()
    s_p = 1.0 / np.arange(1, n_topics + 1) ** 0.5  # some topics are more common than others
    s_p = rng.permutation(s_p / s_p.sum())

    lo, hi = sentence_length
    n_sent = max(1, int(num_words / ((lo + hi) / 2)))
    lengths = rng.integers(lo, hi + 1, size=n_sent)
    topic_of_sentence = rng.choice(n_topics, size=n_sent, p=s_p)
    total = int(lengths.sum())
    sent_index = np.repeat(np.arange(n_sent), lengths)
    tok_topic = topic_of_sentence[sent_index]
    kind = rng.random(total)
    is_function = kind < function_share
    is_sibling = (~is_function) & (rng.random(total) > topic_share)
    # a sibling topic: another topic of the same super-topic
    offset = rng.integers(1, max(2, topics_per_super), size=total)
    sib = (tok_topic // topics_per_super) * topics_per_super + \
          ((tok_topic % topics_per_super + offset) % topics_per_super)
    chosen_topic = np.where(is_sibling, sib, tok_topic)
    word_slot = rng.choice(words_per_topic, size=total, p=w_p)
    ids = topic_words[chosen_topic, word_slot]
    ids = np.where(is_function, rng.choice(nf, size=total, p=f_p), ids)
    tokens = vocab[ids]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    sentences = [" ".join(tokens[bounds[i]:bounds[i + 1]]) for i in range(n_sent)]

    corpus = TopicCorpus(sentences, topic_of_sentence, topic_of_sentence // topics_per_super,
                         word_topic, stems, _rng_seed=seed)
    content = list(word_topic)
    by_level: dict[float, list] = {0.0: [], 1.0: [], 2.0: []}
    want = num_pairs // 3 + 1
    tries = 0
    while min(len(v) for v in by_level.values()) < want and tries < 200 * num_pairs:
        tries += 1
        a, b = rng.choice(len(content), size=2, replace=False)
        wa, wb = content[a], content[b]
        level = corpus.similarity(wa, wb)
        if len(by_level[level]) < want:
            by_level[level].append((wa, wb, level))
    corpus.pairs = [p for level in (2.0, 1.0, 0.0) for p in by_level[level]][:num_pairs]
    return corpus


# ---- real text from installed packages -----------------------------------------------------------

DOCSTRING_PACKAGES = ("numpy", "scipy", "sklearn", "matplotlib", "pandas", "torch")
_DOCSTRING = re.compile(r'(?:"""|\'\'\')(.*?)(?:"""|\'\'\')', re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_TOKEN = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|[-=~^*]{3,}|[A-Za-z_][\w.]*\s*:\s*\S|\w+\s*=|\[|\{|\()")
_SECTION = re.compile(r"^\s*(Parameters|Returns|Yields|Raises|Examples?|See Also|Notes|References|"
                      r"Attributes|Methods|Other Parameters|Warns|Args|Arguments|Keyword Arguments)\s*:?\s*$")


@dataclass
class LabelledSentences:
    """Tokenised sentences and the package each came from."""

    sentences: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.sentences)

    def write(self, path: str | os.PathLike, indices=None, labelled: bool = True) -> Path:
        """Write `__label__<package> tokens ...` lines (or bare sentences with labelled=False)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = range(len(self.sentences)) if indices is None else indices
        with open(path, "w") as f:
            for i in rows:
                f.write((f"__label__{self.labels[i]} " if labelled else "") + self.sentences[i] + "\n")
        return path


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _prose(docstring: str) -> list[str]:
    """The prose lines of a docstring: no doctest, code, parameter lines or section headings."""
    out, skip_section = [], False
    for line in docstring.splitlines():
        if _SECTION.match(line):
            skip_section = line.strip().rstrip(":") in ("Examples", "Example", "References", "See Also")
            continue
        if skip_section or _CODE_LINE.match(line):
            continue
        out.append(line.strip())
    return out


def docstring_corpus(packages=DOCSTRING_PACKAGES, max_sentences_per_package: int | None = None,
                     min_tokens: int = 5, max_files_per_package: int | None = None,
                     seed: int = 0) -> LabelledSentences:
    """Sentences from the docstrings of installed packages, labelled with the package name.

    Reads the .py files (it never imports the packages), keeps prose lines (no doctests,
    parameter tables or code), splits them into sentences, lower-cases and tokenises them.
    Packages that are not installed are skipped; with max_sentences_per_package the sentences
    of each package are sampled down, so that the classes are balanced.
    """
    rng = np.random.default_rng(seed)
    sentences: list[str] = []
    labels: list[str] = []
    for name in packages:
        root = package_dir(name)
        if root is None:
            continue
        files = sorted(p for p in root.rglob("*.py") if "tests" not in p.parts and "test" not in p.parts)
        if max_files_per_package is not None and len(files) > max_files_per_package:
            files = [files[i] for i in sorted(rng.choice(len(files), max_files_per_package, replace=False))]
        found: list[str] = []
        seen: set = set()
        for path in files:
            try:
                text = path.read_text(encoding="utf-8", errors="ignore")
            except OSError:
                continue
            for m in _DOCSTRING.finditer(text):
                paragraph = " ".join(_prose(m.group(1)))
                for sentence in _SENTENCE_END.split(paragraph):
                    tokens = _TOKEN.findall(sentence.lower())
                    if len(tokens) >= min_tokens:
                        line = " ".join(tokens)
                        if line not in seen:
                            seen.add(line)
                            found.append(line)
        if max_sentences_per_package is not None and len(found) > max_sentences_per_package:
            keep = sorted(rng.choice(len(found), max_sentences_per_package, replace=False))
            found = [found[i] for i in keep]
        sentences += found
        labels += [name] * len(found)
    return LabelledSentences(sentences, labels)
