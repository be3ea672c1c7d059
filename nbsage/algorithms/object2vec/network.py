"""The network: two encoders, the comparator, an MLP and the output layer.

Encoders turn a padded batch of token ids and their lengths into one enc_dim vector each:

* `pooled_embedding`: the mean of the token embeddings (its token embeddings are enc_dim wide);
* `hcnn`: stacked 1-D convolutions (filter width cnn_filter_width, ReLU, `layers` deep, the first
  projecting token_embedding_dim to enc_dim, the others residual so each layer widens the window
  the features see), then max-pooling over the sequence (Kim 2014 style; SageMaker publishes no
  more detail);
* `bilstm`: a `layers`-deep bidirectional LSTM with enc_dim/2 units a direction, max-pooled over
  the sequence as InferSent's BiLSTM-max (a linear layer fixes an odd enc_dim).

Padding is read from the lengths, never from a token id, so id 0 is an ordinary token. The
comparator concatenates the comparator_list parts in order (hadamard e0*e1, concat [e0, e1],
abs_diff |e0-e1|), then `mlp_layers` x (Linear mlp_dim, activation, dropout), then a linear output
of num_classes logits (softmax) or one value (mean_squared_error).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


# token vectors start small, N(0, 0.1^2): the comparator's products then start near zero and the MLP
# unsaturated; measured on the benchmark's tasks, N(0, 1) (torch's default) ends 0.04-0.08 MSE
# further from the ratings' noise floor and 2-6 points lower on digit pairs
EMBEDDING_INIT_STD = 0.1


@dataclass
class EncoderConfig:
    network: str
    vocab_size: int
    max_seq_len: int
    token_embedding_dim: int
    layers: int
    cnn_filter_width: int = 3
    freeze_pretrained_embedding: bool = True
    pretrained_embedding_file: str = ""
    vocab_file: str = ""


@dataclass
class NetworkConfig:
    encoders: list
    enc_dim: int
    comparators: list
    mlp_layers: int
    mlp_dim: int
    mlp_activation: str
    dropout: float
    output_layer: str
    num_classes: int
    tied_token_embedding_weight: bool = False
    extra: dict = field(default_factory=dict)

    def encoder(self, i: int) -> EncoderConfig:
        e = self.encoders[i]
        return e if isinstance(e, EncoderConfig) else EncoderConfig(**e)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["encoders"] = [asdict(self.encoder(i)) for i in (0, 1)]
        return out

    @property
    def outputs(self) -> int:
        return self.num_classes if self.output_layer == "softmax" else 1


def _mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def _max_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[n, T, d] -> [n, d], the largest value of each feature over the unpadded steps."""
    return h.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)


class PooledEmbedding(nn.Module):
    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: nn.Embedding):
        super().__init__()
        self.embedding = embedding

    def forward(self, ids, lengths):
        mask = _mask(lengths, ids.shape[1]).to(torch.float32)
        e = self.embedding(ids) * mask[:, :, None]
        return e.sum(dim=1) / lengths.clamp(min=1).to(e.dtype)[:, None]


class HCNN(nn.Module):
    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: nn.Embedding, dropout: float):
        super().__init__()
        self.embedding = embedding
        w = config.cnn_filter_width
        dims = [config.token_embedding_dim] + [enc_dim] * config.layers
        # 'same' padding for odd and even widths: (w-1)//2 left, the rest right
        self.pad = ((w - 1) // 2, w - 1 - (w - 1) // 2)
        self.convs = nn.ModuleList(nn.Conv1d(a, b, w) for a, b in zip(dims[:-1], dims[1:]))
        for conv in self.convs:  # He initialisation keeps the signal's scale through the ReLU stack
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids, lengths):
        mask = _mask(lengths, ids.shape[1])
        h = self.embedding(ids).transpose(1, 2)  # [n, d, T]
        keep = mask[:, None, :].to(h.dtype)
        for k, conv in enumerate(self.convs):
            # layers after the first add to what they see (residual), so a deep stack still passes
            # each position's features through
            step = self.dropout(torch.relu(conv(nn.functional.pad(h * keep, self.pad))))
            h = step if k == 0 else h + step
        return _max_pool(h.transpose(1, 2), mask)


class BiLSTM(nn.Module):
    def __init__(self, config: EncoderConfig, enc_dim: int, embedding: nn.Embedding, dropout: float):
        super().__init__()
        self.embedding = embedding
        hidden = (enc_dim + 1) // 2
        self.lstm = nn.LSTM(config.token_embedding_dim, hidden, num_layers=config.layers, batch_first=True,
                            bidirectional=True, dropout=dropout if config.layers > 1 else 0.0)
        self.project = nn.Linear(2 * hidden, enc_dim) if 2 * hidden != enc_dim else None

    def forward(self, ids, lengths):
        mask = _mask(lengths, ids.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths.clamp(min=1).cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        pooled = _max_pool(h, mask)
        return self.project(pooled) if self.project is not None else pooled


ENCODERS = {"pooled_embedding": PooledEmbedding, "hcnn": HCNN, "bilstm": BiLSTM}


def make_encoder(config: EncoderConfig, enc_dim: int, embedding: nn.Embedding, dropout: float) -> nn.Module:
    if config.network == "pooled_embedding":
        return PooledEmbedding(config, enc_dim, embedding)
    return ENCODERS[config.network](config, enc_dim, embedding, dropout)


def compare(parts: list[str], e0: torch.Tensor, e1: torch.Tensor) -> torch.Tensor:
    """The comparator's vector: the listed sub-vectors concatenated in order."""
    pieces = []
    for name in parts:
        if name == "hadamard":
            pieces.append(e0 * e1)
        elif name == "concat":
            pieces += [e0, e1]
        else:
            pieces.append((e0 - e1).abs())
    return torch.cat(pieces, dim=-1)


def comparator_width(parts: list[str], enc_dim: int) -> int:
    return sum(2 * enc_dim if p == "concat" else enc_dim for p in parts)


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


class Object2VecNetwork(nn.Module):
    """enc0(in0), enc1(in1) -> comparator -> MLP -> logits or a score."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        c0, c1 = config.encoder(0), config.encoder(1)
        # a pooled_embedding encoder's token vectors are its output: enc_dim wide whatever was asked
        dims = [config.enc_dim if c.network == "pooled_embedding" else c.token_embedding_dim for c in (c0, c1)]
        emb0 = nn.Embedding(c0.vocab_size, dims[0])
        emb1 = emb0 if config.tied_token_embedding_weight else nn.Embedding(c1.vocab_size, dims[1])
        for emb in {id(emb0): emb0, id(emb1): emb1}.values():
            nn.init.normal_(emb.weight, std=EMBEDDING_INIT_STD)
        self.enc0 = make_encoder(c0, config.enc_dim, emb0, config.dropout)
        self.enc1 = make_encoder(c1, config.enc_dim, emb1, config.dropout)
        layers: list[nn.Module] = []
        width = comparator_width(config.comparators, config.enc_dim)
        for _ in range(config.mlp_layers):
            layers += [nn.Linear(width, config.mlp_dim), ACTIVATIONS[config.mlp_activation](),
                       nn.Dropout(config.dropout)]
            width = config.mlp_dim
        layers.append(nn.Linear(width, config.outputs))
        self.mlp = nn.Sequential(*layers)

    def encode_embedding(self, which: int) -> nn.Embedding:
        """Encoder `which`'s token embedding table."""
        return (self.enc0 if which == 0 else self.enc1).embedding

    def encode(self, which: int, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return (self.enc0 if which == 0 else self.enc1)(ids, lengths)

    def forward(self, ids0, len0, ids1, len1) -> torch.Tensor:
        e0 = self.enc0(ids0, len0)
        e1 = self.enc1(ids1, len1)
        out = self.mlp(compare(self.config.comparators, e0, e1))
        return out if self.config.output_layer == "softmax" else out.squeeze(-1)
