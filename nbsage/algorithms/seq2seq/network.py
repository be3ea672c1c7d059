"""The Seq2Seq network: an encoder (rnn or cnn), an attentional RNN decoder, and beam search.

* rnn encoder (Bahdanau et al. 2015, Sockeye's default): a bidirectional first layer with
  rnn_num_hidden / 2 units each way, then unidirectional layers; padded positions are packed away
  so the backward direction starts at each sentence's last word.
* cnn encoder (Gehring et al. 2017): word plus learned position embeddings, then gated
  convolutions (GLU by default) with residual connections.
* decoder: stacked LSTM/GRU layers run over the whole target at once (teacher forcing), then
  Luong-style attention of the top layer's output over the encoder states — `dot` (q·k),
  `bilinear` (q W k, Luong's "general"), `mlp` (v tanh(W q + U k), Bahdanau's / Luong's "concat"),
  or `fixed` (no attention: every step reads the encoder's last state) — and an attentional
  hidden state tanh(W [h; c]) that predicts the next word. Computing attention after the RNN
  (rather than feeding the previous context into it) lets training run the recurrent layers as
  one fused call over the sentence instead of a Python loop over words.

Beam search keeps `beam_size` hypotheses per sentence, batched over sentences, and picks the one
with the best log-probability per word (Sockeye's default length penalty); it also returns each
hypothesis's attention weights, for the endpoint's `attention_matrix`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nbsage.algorithms.seq2seq.vocab import BOS_ID, EOS_ID, PAD_ID

MLP_CHUNK_ELEMENTS = 1 << 24  # the mlp attention's [B, T, S, A] tensor is built in slices of T this big


@dataclass
class NetworkConfig:
    source_vocab_size: int
    target_vocab_size: int
    encoder_type: str = "rnn"
    cell_type: str = "lstm"
    num_layers_encoder: int = 1
    num_layers_decoder: int = 1
    rnn_num_hidden: int = 1024
    num_embed_source: int = 512
    num_embed_target: int = 512
    attention_type: str = "mlp"
    attention_num_hidden: int = 1024
    decoder_state_init: str = "last"
    residual: bool = False
    first_residual_layer: int = 2
    cnn_num_hidden: int = 512
    cnn_kernel_width: int = 3
    cnn_activation: str = "glu"
    cnn_dropout: float = 0.0
    embed_dropout_source: float = 0.0
    embed_dropout_target: float = 0.0
    decoder_hidden_dropout: float = 0.0
    max_seq_len_source: int = 100

    @classmethod
    def from_hyperparameters(cls, hps: dict, source_vocab_size: int, target_vocab_size: int) -> "NetworkConfig":
        return cls(source_vocab_size, target_vocab_size, hps["encoder_type"], hps["rnn_cell_type"],
                   hps["num_layers_encoder"], hps["num_layers_decoder"], hps["rnn_num_hidden"],
                   hps["num_embed_source"], hps["num_embed_target"], hps["rnn_attention_type"],
                   int(hps["rnn_attention_num_hidden"]), hps["rnn_decoder_state_init"],
                   hps["rnn_residual_connections"], hps["rnn_first_residual_layer"], hps["cnn_num_hidden"],
                   hps["cnn_kernel_width_encoder"], hps["cnn_activation_type"], hps["cnn_hidden_dropout"],
                   hps["embed_dropout_source"], hps["embed_dropout_target"], hps["rnn_decoder_hidden_dropout"],
                   hps["max_seq_len_source"])

    def to_dict(self) -> dict:
        return asdict(self)


def _rnn(cell: str, size_in: int, size_out: int, bidirectional: bool = False) -> nn.RNNBase:
    kind = nn.LSTM if cell == "lstm" else nn.GRU
    return kind(size_in, size_out // 2 if bidirectional else size_out, batch_first=True, bidirectional=bidirectional)


@dataclass
class Memory:
    """What the decoder reads from an encoded batch."""

    states: torch.Tensor      # [B, S, E]
    mask: torch.Tensor        # [B, S], True at words
    last: torch.Tensor        # [B, E], the state at each sentence's last word
    keys: torch.Tensor | None  # [B, S, A], the mlp attention's projected states

    def select(self, index: torch.Tensor) -> "Memory":
        return Memory(self.states[index], self.mask[index], self.last[index],
                      None if self.keys is None else self.keys[index])


class RNNEncoder(nn.Module):
    def __init__(self, c: NetworkConfig):
        super().__init__()
        self.c = c
        self.layers = nn.ModuleList([_rnn(c.cell_type, c.num_embed_source, c.rnn_num_hidden, bidirectional=True)] +
                                    [_rnn(c.cell_type, c.rnn_num_hidden, c.rnn_num_hidden)
                                     for _ in range(c.num_layers_encoder - 1)])
        self.size = c.rnn_num_hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cpu_lengths = lengths.cpu()
        for i, layer in enumerate(self.layers):
            packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(layer(packed)[0], batch_first=True, total_length=x.shape[1])
            x = out + x if self.c.residual and i >= 1 and i + 1 >= self.c.first_residual_layer else out
        return x


class CNNEncoder(nn.Module):
    def __init__(self, c: NetworkConfig):
        super().__init__()
        self.c = c
        h, k = c.cnn_num_hidden, c.cnn_kernel_width
        self.positions = nn.Embedding(c.max_seq_len_source, c.num_embed_source)
        self.project = nn.Linear(c.num_embed_source, h)
        width = 2 * h if c.cnn_activation == "glu" else h
        self.convs = nn.ModuleList([nn.Conv1d(h, width, k, padding=k // 2) for _ in range(c.num_layers_encoder)])
        self.size = h

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c.cnn_activation
        if a == "glu":
            return F.glu(x, dim=1)
        return {"relu": F.relu, "softrelu": F.softplus, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[a](x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        S = x.shape[1]
        positions = torch.arange(S, device=x.device).clamp(max=self.c.max_seq_len_source - 1)
        mask = (torch.arange(S, device=x.device)[None, :] < lengths[:, None]).unsqueeze(1)  # [B, 1, S]
        h = self.project(x + self.positions(positions)[None]).transpose(1, 2)  # [B, H, S]
        for conv in self.convs:
            y = F.dropout(h, self.c.cnn_dropout, self.training) * mask
            y = self._activate(conv(y)[:, :, :S])
            h = (y + h) * math.sqrt(0.5)
        return (h * mask).transpose(1, 2)


class Attention(nn.Module):
    """Scores of decoder outputs [B, T, H] against encoder states [B, S, E]."""

    def __init__(self, kind: str, query_size: int, key_size: int, hidden: int):
        super().__init__()
        self.kind = kind
        if kind == "dot":
            self.query = nn.Linear(query_size, key_size, bias=False) if query_size != key_size else nn.Identity()
        elif kind == "bilinear":
            self.query = nn.Linear(query_size, key_size, bias=False)
        elif kind == "mlp":
            self.query = nn.Linear(query_size, hidden, bias=False)
            self.key = nn.Linear(key_size, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor | None:
        return self.key(states) if self.kind == "mlp" else None

    def forward(self, h: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """(context [B, T, E], weights [B, T, S])."""
        B, T, _ = h.shape
        S = memory.states.shape[1]
        if self.kind == "fixed":
            lengths = memory.mask.sum(1)
            weights = F.one_hot(lengths - 1, S).to(h.dtype)[:, None, :].expand(B, T, S)
            return memory.last[:, None, :].expand(B, T, memory.last.shape[-1]), weights
        if self.kind == "mlp":
            q = self.query(h)  # [B, T, A]
            step = max(1, MLP_CHUNK_ELEMENTS // max(1, B * S * q.shape[-1]))
            scores = torch.cat([self.v(torch.tanh(q[:, t:t + step, None, :] + memory.keys[:, None, :, :])).squeeze(-1)
                                for t in range(0, T, step)], dim=1)
        else:
            scores = torch.bmm(self.query(h), memory.states.transpose(1, 2))
        scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, memory.states), weights


class Seq2SeqNetwork(nn.Module):
    def __init__(self, c: NetworkConfig):
        super().__init__()
        self.config = c
        self.source_embed = nn.Embedding(c.source_vocab_size, c.num_embed_source, padding_idx=PAD_ID)
        self.target_embed = nn.Embedding(c.target_vocab_size, c.num_embed_target, padding_idx=PAD_ID)
        self.encoder = RNNEncoder(c) if c.encoder_type == "rnn" else CNNEncoder(c)
        E, H = self.encoder.size, c.rnn_num_hidden
        self.decoder = nn.ModuleList([_rnn(c.cell_type, c.num_embed_target if i == 0 else H, H)
                                      for i in range(c.num_layers_decoder)])
        n_init = c.num_layers_decoder * (2 if c.cell_type == "lstm" else 1)
        self.init_state = nn.ModuleList([nn.Linear(E, H) for _ in range(n_init)]) \
            if c.decoder_state_init != "zero" else None
        self.attention = Attention(c.attention_type, H, E, c.attention_num_hidden)
        self.combine = nn.Linear(H + E, H)
        self.output = nn.Linear(H, c.target_vocab_size)

    # ---- pieces -------------------------------------------------------------------------------
    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> Memory:
        c = self.config
        x = F.dropout(self.source_embed(source), c.embed_dropout_source, self.training)
        states = self.encoder(x, lengths)
        mask = torch.arange(source.shape[1], device=source.device)[None, :] < lengths[:, None]
        rows = torch.arange(len(lengths), device=source.device)
        last = states[rows, lengths - 1]
        if c.encoder_type == "rnn" and c.num_layers_encoder == 1:
            # the bidirectional layer's backward half ends at the first word
            half = states.shape[-1] // 2
            last = torch.cat([last[:, :half], states[rows, 0, half:]], dim=-1)
        return Memory(states, mask, last, self.attention.project_keys(states))

    def initial_state(self, memory: Memory) -> list:
        """Per decoder layer: (h, c) for an LSTM, h for a GRU, each [1, B, H]."""
        c = self.config
        B, H = memory.states.shape[0], c.rnn_num_hidden
        if self.init_state is None:
            zeros = memory.states.new_zeros(1, B, H)
            return [(zeros, zeros) if c.cell_type == "lstm" else zeros for _ in self.decoder]
        if c.decoder_state_init == "last":
            summary = memory.last
        else:
            m = memory.mask.to(memory.states.dtype)
            summary = (memory.states * m[..., None]).sum(1) / m.sum(1, keepdim=True)
        states = [torch.tanh(layer(summary))[None] for layer in self.init_state]
        if c.cell_type == "lstm":
            return [(states[2 * i], states[2 * i + 1]) for i in range(len(self.decoder))]
        return states

    def decode(self, target_in: torch.Tensor, memory: Memory, state: list):
        """(logits [B, T, V], attention weights [B, T, S], new state) for input words [B, T]."""
        c = self.config
        x = F.dropout(self.target_embed(target_in), c.embed_dropout_target, self.training)
        new_state = []
        for i, (layer, s) in enumerate(zip(self.decoder, state)):
            out, s = layer(x, s)
            x = out + x if c.residual and i >= 1 and i + 1 >= c.first_residual_layer else out
            new_state.append(s)
        context, weights = self.attention(x, memory)
        hidden = torch.tanh(self.combine(torch.cat([x, context], dim=-1)))
        hidden = F.dropout(hidden, c.decoder_hidden_dropout, self.training)
        return self.output(hidden), weights, new_state

    def forward(self, source: torch.Tensor, lengths: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory = self.encode(source, lengths)
        return self.decode(target_in, memory, self.initial_state(memory))[0]

    # ---- beam search ------------------------------------------------------------------------------
    @torch.no_grad()
    def beam_search(self, source: torch.Tensor, lengths: torch.Tensor, beam_size: int, max_length: int):
        """Per sentence: (target ids without </s>, attention [len(ids), source length] as a tensor)."""
        B, K = source.shape[0], beam_size
        memory = self.encode(source, lengths)
        state = self.initial_state(memory)
        expand = torch.arange(B, device=source.device).repeat_interleave(K)
        memory = memory.select(expand)
        state = [_select_state(s, expand) for s in state]
        scores = source.new_full((B, K), float("-inf"), dtype=torch.float32)
        scores[:, 0] = 0.0
        tokens = source.new_full((B * K, 1), BOS_ID)
        history = source.new_zeros((B * K, 0))
        attention = memory.states.new_zeros((B * K, 0, source.shape[1]))
        finished = torch.zeros(B * K, dtype=torch.bool, device=source.device)
        lengths_out = torch.zeros(B * K, dtype=torch.long, device=source.device)
        base = (torch.arange(B, device=source.device) * K)[:, None]
        for _ in range(max_length):
            logits, weights, state = self.decode(tokens, memory, state)
            logp = torch.log_softmax(logits[:, -1].float(), dim=-1)  # [B*K, V]
            V = logp.shape[-1]
            # a finished hypothesis only extends with <pad> at no cost: its score stays as it was
            logp = torch.where(finished[:, None], torch.full_like(logp, float("-inf")), logp)
            logp[:, PAD_ID] = torch.where(finished, 0.0, float("-inf"))
            logp[:, BOS_ID] = float("-inf")  # every word written is a word of the translation
            candidates = (scores.view(B * K, 1) + logp).view(B, K * V)
            scores, flat = candidates.topk(K, dim=1)
            origin = (base + flat // V).view(-1)
            word = (flat % V).view(-1)
            state = [_select_state(s, origin) for s in state]
            history = torch.cat([history[origin], word[:, None]], dim=1)
            attention = torch.cat([attention[origin], weights[origin, -1:, :]], dim=1)
            was_finished = finished[origin]
            lengths_out = lengths_out[origin] + (~was_finished).long()
            finished = was_finished | (word == EOS_ID)
            tokens = word[:, None]
            if bool(finished.all()):
                break
        normalised = (scores.view(-1) / lengths_out.clamp(min=1).float()).view(B, K)
        # prefer hypotheses that ended with </s> over ones cut at max_length
        normalised = torch.where(finished.view(B, K), normalised, normalised - 1e9)
        best = (base[:, 0] + normalised.argmax(dim=1))
        out = []
        for b, row in enumerate(best.tolist()):
            ids = history[row].tolist()
            n = next((i for i, t in enumerate(ids) if t in (EOS_ID, PAD_ID)), len(ids))  # </s> and after
            out.append((ids[:n], attention[row, :n, :int(lengths[b])]))
        return out


def _select_state(state, index: torch.Tensor):
    if isinstance(state, tuple):
        return tuple(s[:, index] for s in state)
    return state[:, index]


@torch.no_grad()
def initialise(network: nn.Module, kind: str, scale: float, factor_type: str) -> None:
    """MXNet's initialisers, as Sockeye uses them: xavier (uniform, magnitude `scale`, fan `factor_type`)
    or uniform in [-scale, scale] for every weight matrix; biases zero."""
    for name, p in network.named_parameters():
        if p.dim() < 2:
            p.zero_()
            continue
        if kind == "uniform":
            p.uniform_(-scale, scale)
            continue
        receptive = p[0][0].numel()
        fan_in, fan_out = p.shape[1] * receptive, p.shape[0] * receptive
        factor = {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[factor_type]
        bound = math.sqrt(scale / factor)
        p.uniform_(-bound, bound)
    for embed in (network.source_embed, network.target_embed):
        embed.weight[PAD_ID].zero_()
