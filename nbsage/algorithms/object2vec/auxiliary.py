"""The auxiliary channel: vocabulary files and pretrained token embeddings.

`encX_vocab_file` is a JSON object {"token": id} (ids below encX_vocab_size);
`encX_pretrained_embedding_file` is GloVe's text format, one `token v1 v2 ... vd` line per token,
whitespace-separated, d = encX_token_embedding_dim. Each token of the vocabulary found in the
file gets its vector; the others keep their random start. With encX_freeze_pretrained_embedding
the table is not trained (SageMaker's default).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from nbsage.errors import DataError

CHANNEL = "auxiliary"


def _file(env, name: str, hyperparameter: str) -> Path:
    if CHANNEL not in env.channels:
        raise DataError(f"{hyperparameter}={name!r} names a file of the 'auxiliary' channel, and the job has no "
                        "auxiliary channel")
    files = {p.name: p for p in env.channel_files(CHANNEL)}
    if name not in files:
        raise DataError(f"{hyperparameter}={name!r}: no such file in the auxiliary channel (it holds "
                        f"{', '.join(sorted(files)) or 'no files'})")
    return files[name]


def read_vocab(path: Path, vocab_size: int, hyperparameter: str) -> dict[str, int]:
    """{token: id} from a JSON object; DataError naming the file and the first bad entry."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path.name} ({hyperparameter}) is not valid JSON: {e}; expected an object "
                        "{\"token\": id, ...}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path.name} ({hyperparameter}) must be a JSON object {{\"token\": id, ...}}, found "
                        f"{type(doc).__name__}")
    for token, i in doc.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab_size:
            raise DataError(f"{path.name} ({hyperparameter}): token {token!r} has id {i!r}; ids are integers "
                            f"from 0 to {vocab_size - 1} (the vocab_size)")
    return doc


def read_vectors(path: Path, dim: int, hyperparameter: str, wanted: dict[str, int]) -> dict[int, np.ndarray]:
    """{token id: vector} for the vocabulary's tokens found in a GloVe-format text file."""
    out: dict[int, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split()
            if not parts:
                continue
            if len(parts) != dim + 1:
                raise DataError(f"{path.name} line {lineno} ({hyperparameter}): {len(parts) - 1} numbers after "
                                f"the token {parts[0]!r}, expected token_embedding_dim={dim}; each line is "
                                "'token v1 v2 ... vd'")
            if parts[0] not in wanted:
                continue
            try:
                out[wanted[parts[0]]] = np.asarray([float(v) for v in parts[1:]], dtype=np.float32)
            except ValueError:
                raise DataError(f"{path.name} line {lineno} ({hyperparameter}): a value after {parts[0]!r} is "
                                "not a number") from None
    return out


def load_pretrained(env, network, log: Callable[[str], None]) -> None:
    """Copy each encoder's pretrained vectors into its token embedding table (and freeze it when asked)."""
    import torch
    config = network.config
    for i in (0, 1):
        enc = config.encoder(i)
        if i == 1 and config.tied_token_embedding_weight:
            continue
        # enc1_network=enc0 copies enc0's files: errors then name the hyperparameter the user set
        copied = i == 1 and (enc.vocab_file, enc.pretrained_embedding_file) == (
            config.encoder(0).vocab_file, config.encoder(0).pretrained_embedding_file)
        which = "enc0" if i == 0 or copied else f"enc{i}"
        vocab = {}
        if enc.vocab_file:
            vocab = read_vocab(_file(env, enc.vocab_file, f"{which}_vocab_file"), enc.vocab_size,
                               f"{which}_vocab_file")
            log(f"enc{i}: vocabulary {enc.vocab_file} with {len(vocab)} tokens")
        if not enc.pretrained_embedding_file:
            continue
        path = _file(env, enc.pretrained_embedding_file, f"{which}_pretrained_embedding_file")
        vectors = read_vectors(path, enc.token_embedding_dim, f"{which}_pretrained_embedding_file", vocab)
        embedding = network.encode_embedding(i)
        with torch.no_grad():
            for token_id, v in vectors.items():
                embedding.weight[token_id] = torch.from_numpy(v)
        if enc.freeze_pretrained_embedding:
            embedding.weight.requires_grad_(False)
        log(f"enc{i}: {len(vectors)} of {len(vocab)} vocabulary tokens have pretrained vectors from "
            f"{enc.pretrained_embedding_file}" + ("; frozen" if enc.freeze_pretrained_embedding else ""))
