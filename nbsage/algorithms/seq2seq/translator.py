"""The trained Seq2Seq model: its network, both vocabularies, and batched beam-search translation.

Saved in the model directory as SageMaker's open point suggests (shared/spec next-wave §F.4):
`params.best` (the kept checkpoint's torch weights, loaded with `weights_only=True`),
`config.json` (the network's sizes and the settings inference needs) and the two vocab files, so
the endpoint maps words to ids itself. Training (validation BLEU) and the endpoint both translate
through `Translator.translate_ids`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms.seq2seq.network import NetworkConfig, Seq2SeqNetwork
from nbsage.algorithms.seq2seq.vocab import PAD_ID, SOURCE_FILE, TARGET_FILE, Vocabulary, read_vocabulary
from nbsage.errors import DataError

WEIGHTS = "params.best"
CONFIG = "config.json"
FORMAT_VERSION = 2  # 2: the decoder feeds its attentional hidden state back (input feeding); 1: it did not
MAX_SENTENCES_PER_BATCH = 64


def pad(sequences: list, device) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, longest] ids padded with <pad>, [N] lengths) on `device`."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    out = np.full((len(sequences), max(1, int(lengths.max()))), PAD_ID, dtype=np.int64)
    for i, s in enumerate(sequences):
        out[i, :len(s)] = s
    return torch.from_numpy(out).to(device), torch.from_numpy(lengths).to(device)


class Translator:
    def __init__(self, network: Seq2SeqNetwork, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 settings: dict, device: str = "cpu"):
        self.network = network.to(device).eval()
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.settings = settings  # beam_size, max_seq_len_source, max_seq_len_target, hyperparameters
        self.device = torch.device(device)

    # ---- persistence -------------------------------------------------------------------------
    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, model_dir / WEIGHTS)
        (model_dir / CONFIG).write_text(json.dumps({"format_version": FORMAT_VERSION,
                                                    "network": self.network.config.to_dict(),
                                                    **self.settings}, indent=2))
        (model_dir / SOURCE_FILE).write_text(self.source_vocab.to_json(), encoding="utf-8")
        (model_dir / TARGET_FILE).write_text(self.target_vocab.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "cpu") -> "Translator":
        model_dir = Path(model_dir)
        if not (model_dir / CONFIG).exists():
            raise FileNotFoundError(f"{model_dir} holds no Seq2Seq model ({CONFIG} is missing)")
        config = json.loads((model_dir / CONFIG).read_text())
        version = config.pop("format_version", 1)
        if version > FORMAT_VERSION:
            raise DataError(f"{model_dir / CONFIG} has format_version {version}, newer than this nbsage "
                             f"reads ({FORMAT_VERSION}); upgrade nbsage to load this model")
        settings = config.pop("network")
        if version < 2:  # saved before input feeding: the decoder it was trained with
            settings = {"input_feeding": False, "attention_in_upper_layers": False, **settings}
        network = Seq2SeqNetwork(NetworkConfig(**settings))
        weights = torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True)
        try:
            network.load_state_dict(weights)
        except RuntimeError as e:
            raise DataError(f"{model_dir / WEIGHTS} does not match the network {model_dir / CONFIG} describes "
                             f"(format_version {version}): {e}") from None
        return cls(network, read_vocabulary(model_dir / SOURCE_FILE), read_vocabulary(model_dir / TARGET_FILE),
                   config, device)

    # ---- translation -------------------------------------------------------------------------------
    def translate_ids(self, sources: list, beam_size: int | None = None) -> list[tuple[list[int], np.ndarray]]:
        """Per source id sequence: (target ids, attention [len(target), len(source)])."""
        beam = beam_size or self.settings["beam_size"]
        limit = self.settings["max_seq_len_source"]
        sources = [list(s)[:limit] for s in sources]
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))  # similar lengths together
        out: list = [None] * len(sources)
        self.network.eval()
        for lo in range(0, len(order), MAX_SENTENCES_PER_BATCH):
            chunk = order[lo:lo + MAX_SENTENCES_PER_BATCH]
            empty = [i for i in chunk if not sources[i]]
            for i in empty:
                out[i] = ([], np.zeros((0, 0), dtype=np.float32))
            chunk = [i for i in chunk if sources[i]]
            if not chunk:
                continue
            ids, lengths = pad([sources[i] for i in chunk], self.device)
            results = self.network.beam_search(ids, lengths, beam, self.settings["max_seq_len_target"] + 1)
            for i, (target, weights) in zip(chunk, results):
                out[i] = (target, weights.float().cpu().numpy())
        return out

    def translate(self, sentences: list[str], beam_size: int | None = None) -> list[str]:
        """Whitespace-tokenised sentences to translated sentences."""
        results = self.translate_ids([self.source_vocab.encode(s) for s in sentences], beam_size)
        return [self.target_vocab.decode(ids) for ids, _ in results]
