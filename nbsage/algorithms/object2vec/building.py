"""The model's settings from the hyperparameters: encoders resolved, rules SageMaker applies logged.

`enc1_network=enc0` copies enc0's settings, vocab_size and max_seq_len included (SageMaker's logs
show it; a token id of in1 at or above enc0_vocab_size is then refused even if enc1_vocab_size is
larger), and any `enc1_*` also given is named in a warning as ignored. A pooled_embedding encoder's
token embeddings are enc_dim wide (SageMaker logs "Inconsistent enc_dim and token_embedding_dim
found ..." and does the same). enc*_layers=auto is 4 for hcnn and 1 for bilstm.
"""
from __future__ import annotations

from typing import Callable

from nbsage.algorithms.base import AUTO
from nbsage.algorithms.object2vec.declaration import ALGORITHM, DEFAULT_LAYERS, parse_comparators
from nbsage.algorithms.object2vec.network import EncoderConfig, NetworkConfig
from nbsage.algorithms.object2vec.records import Limits
from nbsage.errors import HyperparameterError

ENCODER_KEYS = ("network", "vocab_size", "max_seq_len", "cnn_filter_width", "layers", "token_embedding_dim",
                "pretrained_embedding_file", "vocab_file", "freeze_pretrained_embedding")


def _default(name: str):
    return ALGORITHM.hyperparameter(name).default


def encoder_settings(hps: dict, given: dict, log: Callable[[str], None]) -> list[EncoderConfig]:
    """[enc0, enc1] configs; `given` is what the user set (to warn about ignored enc1_* values)."""
    raw = [{k: hps.get(f"enc0_{k}", _default(f"enc0_{k}")) for k in ENCODER_KEYS}]
    if hps.get("enc1_network", "enc0") == "enc0":
        ignored = sorted(f"enc1_{k}" for k in ENCODER_KEYS if k != "network" and f"enc1_{k}" in given)
        if ignored:
            log(f"WARNING: enc1_network=enc0 copies enc0's settings: {', '.join(ignored)} ignored")
        raw.append({**raw[0], "network": "enc0"})
    else:
        raw.append({k: hps[f"enc1_{k}"] if hps.get(f"enc1_{k}") is not None else _default(f"enc0_{k}")
                    for k in ENCODER_KEYS})
    configs = []
    enc_dim = hps["enc_dim"]
    for i, r in enumerate(raw):
        network = raw[0]["network"] if r["network"] == "enc0" else r["network"]
        layers = DEFAULT_LAYERS[network] if r["layers"] == AUTO else int(r["layers"])
        dim = int(r["token_embedding_dim"])
        if network == "pooled_embedding" and dim != enc_dim:
            log(f"Inconsistent enc_dim and token_embedding_dim found for token-embedding-encoder: {enc_dim} vs "
                f"{dim}. Setting token embedding dim to be {enc_dim}")
            dim = enc_dim
        configs.append(EncoderConfig(network=network, vocab_size=int(r["vocab_size"]),
                                     max_seq_len=int(r["max_seq_len"]), token_embedding_dim=dim, layers=layers,
                                     cnn_filter_width=int(r["cnn_filter_width"]),
                                     freeze_pretrained_embedding=bool(r["freeze_pretrained_embedding"]),
                                     pretrained_embedding_file=r["pretrained_embedding_file"] or "",
                                     vocab_file=r["vocab_file"] or ""))
    log("Parameters of encoders: " + str([{**c.__dict__, "network": raw[i]["network"]}
                                          for i, c in enumerate(configs)]))
    return configs


def network_config(hps: dict, given: dict, log: Callable[[str], None]) -> NetworkConfig:
    """The network's settings; HyperparameterError for a combination that cannot be built."""
    encoders = encoder_settings(hps, given, log)
    tied = bool(hps.get("tied_token_embedding_weight", False))
    if tied:
        a, b = encoders
        if (a.vocab_size, a.token_embedding_dim) != (b.vocab_size, b.token_embedding_dim):
            raise HyperparameterError(
                "tied_token_embedding_weight=true needs one token embedding table for both encoders: enc0 has "
                f"vocab_size={a.vocab_size}, token_embedding_dim={a.token_embedding_dim} and enc1 "
                f"vocab_size={b.vocab_size}, token_embedding_dim={b.token_embedding_dim}",
                name="tied_token_embedding_weight")
    if hps.get("token_embedding_storage_type") == "row_sparse":
        log("token_embedding_storage_type=row_sparse: nbsage stores token embeddings densely (the same model)")
    return NetworkConfig(encoders=encoders, enc_dim=hps["enc_dim"],
                         comparators=parse_comparators(hps["comparator_list"]),
                         mlp_layers=hps["mlp_layers"], mlp_dim=hps["mlp_dim"], mlp_activation=hps["mlp_activation"],
                         dropout=hps["dropout"], output_layer=hps["output_layer"], num_classes=hps["num_classes"],
                         tied_token_embedding_weight=tied)


def limits(config: NetworkConfig) -> tuple[Limits, Limits]:
    return tuple(Limits(config.encoder(i).vocab_size, config.encoder(i).max_seq_len) for i in (0, 1))
