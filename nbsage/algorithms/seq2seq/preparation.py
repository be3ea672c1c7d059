"""Raw sentence pairs to Seq2Seq's channels: what SageMaker's `create_vocab_proto.py` does.

`prepare(train_pairs, validation_pairs, output_dir)` builds `vocab.src.json` and `vocab.trg.json`
from the training sentences (reserved symbols first, then words by descending count; unknown
words map to <unk>) and writes `train.rec` and `val.rec`, RecordIO-protobuf records with int32
`source`/`target` ids, laid out as the three channels the job reads:

    output_dir/train/train.rec   output_dir/validation/val.rec   output_dir/vocab/vocab.{src,trg}.json

Sentences are split on whitespace (tokenise beforehand if the text needs it). Pairs where either
side is empty are skipped, as the example script skips them. `nbsage seq2seq-prepare` runs it on
two parallel text files per split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from nbsage.algorithms.seq2seq.records import write_pairs
from nbsage.algorithms.seq2seq.vocab import SOURCE_FILE, TARGET_FILE, Vocabulary, build_vocabulary, read_vocabulary


@dataclass
class Prepared:
    """Where `prepare` wrote the channels, and what it wrote."""

    train: Path
    validation: Path | None
    vocab: Path
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    counts: dict

    def channels(self) -> dict[str, str]:
        """{channel: folder} for Estimator.fit."""
        out = {"train": str(self.train), "vocab": str(self.vocab)}
        if self.validation is not None:
            out["validation"] = str(self.validation)
        return out


def _clean(pairs: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    kept, skipped = [], 0
    for source, target in pairs:
        if not source.strip() or not target.strip():
            skipped += 1
            continue
        kept.append((source, target))
    return kept, skipped


def prepare(train_pairs: Iterable[tuple[str, str]], validation_pairs: Iterable[tuple[str, str]] | None,
            output_dir: str | Path, *, num_words_source: int = 50000, num_words_target: int = 50000,
            min_count_source: int = 1, min_count_target: int = 1, source_vocab: str | Path | None = None,
            target_vocab: str | Path | None = None) -> Prepared:
    """Write the vocab files and the RecordIO-protobuf records of sentence pairs (see the module doc).

    Existing vocab files may be given (source_vocab/target_vocab) instead of building them.
    """
    out = Path(output_dir)
    train, skipped = _clean(train_pairs)
    src = read_vocabulary(Path(source_vocab)) if source_vocab else \
        build_vocabulary((s for s, _ in train), num_words_source, min_count_source)
    trg = read_vocabulary(Path(target_vocab)) if target_vocab else \
        build_vocabulary((t for _, t in train), num_words_target, min_count_target)
    for folder in ("train", "vocab"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    (out / "vocab" / SOURCE_FILE).write_text(src.to_json(), encoding="utf-8")
    (out / "vocab" / TARGET_FILE).write_text(trg.to_json(), encoding="utf-8")
    counts = {"train": write_pairs(out / "train" / "train.rec", ((src.encode(s), trg.encode(t)) for s, t in train)),
              "skipped": skipped}
    validation = None
    if validation_pairs is not None:
        val, skipped_val = _clean(validation_pairs)
        validation = out / "validation"
        validation.mkdir(parents=True, exist_ok=True)
        counts["validation"] = write_pairs(validation / "val.rec", ((src.encode(s), trg.encode(t)) for s, t in val))
        counts["skipped"] += skipped_val
    return Prepared(out / "train", validation, out / "vocab", src, trg, counts)


def read_parallel(source_file: str | Path, target_file: str | Path) -> list[tuple[str, str]]:
    """Line-aligned source and target files (a sentence per line) as pairs."""
    sources = Path(source_file).read_text(encoding="utf-8", errors="replace").splitlines()
    targets = Path(target_file).read_text(encoding="utf-8", errors="replace").splitlines()
    if len(sources) != len(targets):
        from nbsage.errors import DataError
        raise DataError(f"{source_file} has {len(sources)} lines and {target_file} has {len(targets)}; parallel "
                        "files hold one sentence per line, line for line")
    return list(zip(sources, targets))
