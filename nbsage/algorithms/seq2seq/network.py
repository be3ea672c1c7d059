"""The Seq2Seq network: an encoder (rnn or cnn), an attentional RNN decoder, and beam search.

* rnn encoder (Bahdanau et al. 2015, Sockeye's default): a bidirectional first layer with
  rnn_num_hidden / 2 units each way, then unidirectional layers; padded positions are packed away
  so the backward direction starts at each sentence's last word.
* cnn encoder (Gehring et al. 2017): word plus learned position embeddings, then gated
  convolutions (GLU by default) with residual connections.
* decoder (Sockeye 1.x's RecurrentDecoder, after Luong et al. 2015): stacked LSTM/GRU layers, then
  attention of the RNN's output over the encoder states — `dot` (q·k), `bilinear` (q W k, Luong's
  "general"), `mlp` (v tanh(W q + U k), Bahdanau's / Luong's "concat"), or `fixed` (no attention:
  every step reads the encoder's last state) — and an attentional hidden state tanh(W [h; c]) that
  predicts the next word and is fed back into the first layer's input at the next word (Luong's
  "input feeding", so the decoder knows what it attended to before). With
  rnn_attention_in_upper_layers (the default) and more than one layer, attention reads the first
  layer's output and every upper layer also gets the context as input, as Sockeye does; otherwise
  attention reads the top layer. Input feeding makes each word depend on the previous one's
  attention, so training steps through the target a word at a time: the words' share of the first
  layer's input gates, the encoder-side attention projections and the output layer are computed
  for the whole sentence at once, outside that loop.
  Models saved before input feeding (config format 1) keep their decoder: the RNN over the whole
  target at once with attention after it (`input_feeding=False`, also the hidden `_input_feeding`).

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
    attention_in_upper_layers: bool = True
    input_feeding: bool = True

    @classmethod
    def from_hyperparameters(cls, hps: dict, source_vocab_size: int, target_vocab_size: int) -> "NetworkConfig":
        return cls(source_vocab_size, target_vocab_size, hps["encoder_type"], hps["rnn_cell_type"],
                   hps["num_layers_encoder"], hps["num_layers_decoder"], hps["rnn_num_hidden"],
                   hps["num_embed_source"], hps["num_embed_target"], hps["rnn_attention_type"],
                   int(hps["rnn_attention_num_hidden"]), hps["rnn_decoder_state_init"],
                   hps["rnn_residual_connections"], hps["rnn_first_residual_layer"], hps["cnn_num_hidden"],
                   hps["cnn_kernel_width_encoder"], hps["cnn_activation_type"], hps["cnn_hidden_dropout"],
                   hps["embed_dropout_source"], hps["embed_dropout_target"], hps["rnn_decoder_hidden_dropout"],
                   hps["max_seq_len_source"], hps["rnn_attention_in_upper_layers"],
                   _flag(hps.get("_input_feeding", True)))

    def to_dict(self) -> dict:
        return asdict(self)


def _flag(value) -> bool:
    """A hidden key's value (a string when it came from the job's hyperparameters) as a bool."""
    return value if isinstance(value, bool) else str(value).strip('"').lower() in ("true", "1", "yes")


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
    bias: torch.Tensor        # [B, S], 0 at words and -inf at padding, added to attention scores

    def select(self, index: torch.Tensor) -> "Memory":
        return Memory(self.states[index], self.mask[index], self.last[index],
                      None if self.keys is None else self.keys[index], self.bias[index])


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

    def step(self, h: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """One word: (context [B, E], weights [B, S]) for the query h [B, H]."""
        if self.kind == "fixed":
            lengths = memory.mask.sum(1)
            return memory.last, F.one_hot(lengths - 1, memory.states.shape[1]).to(h.dtype)
        if self.kind == "mlp":
            scores = torch.matmul(torch.tanh(memory.keys + self.query(h)[:, None, :]), self.v.weight[0])
        else:
            scores = torch.bmm(memory.states, self.query(h)[:, :, None]).squeeze(2)
        weights = torch.softmax(scores + memory.bias, dim=-1)
        return torch.bmm(weights[:, None, :], memory.states).squeeze(1), weights


class Seq2SeqNetwork(nn.Module):
    def __init__(self, c: NetworkConfig):
        super().__init__()
        self.config = c
        self.source_embed = nn.Embedding(c.source_vocab_size, c.num_embed_source, padding_idx=PAD_ID)
        self.target_embed = nn.Embedding(c.target_vocab_size, c.num_embed_target, padding_idx=PAD_ID)
        self.encoder = RNNEncoder(c) if c.encoder_type == "rnn" else CNNEncoder(c)
        E, H = self.encoder.size, c.rnn_num_hidden
        if c.input_feeding:
            # cells stepped a word at a time; the first reads [word; previous attentional hidden state],
            # the upper ones [output below; context] when attention is in the upper layers
            cell = nn.LSTMCell if c.cell_type == "lstm" else nn.GRUCell
            self.decoder = nn.ModuleList([cell(c.num_embed_target + H if i == 0 else
                                               H + (E if self._context_in_upper_layers else 0), H)
                                          for i in range(c.num_layers_decoder)])
        else:
            self.decoder = nn.ModuleList([_rnn(c.cell_type, c.num_embed_target if i == 0 else H, H)
                                          for i in range(c.num_layers_decoder)])
        n_init = c.num_layers_decoder * (2 if c.cell_type == "lstm" else 1)
        self.init_state = nn.ModuleList([nn.Linear(E, H) for _ in range(n_init)]) \
            if c.decoder_state_init != "zero" else None
        self.attention = Attention(c.attention_type, H, E, c.attention_num_hidden)
        self.combine = nn.Linear(H + E, H)
        self.output = nn.Linear(H, c.target_vocab_size)

    @property
    def _context_in_upper_layers(self) -> bool:
        c = self.config
        return c.input_feeding and c.attention_in_upper_layers and c.num_layers_decoder > 1

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
        bias = torch.zeros(mask.shape, dtype=states.dtype, device=source.device).masked_fill(~mask, float("-inf"))
        return Memory(states, mask, last, self.attention.project_keys(states), bias)

    def initial_state(self, memory: Memory) -> list[torch.Tensor]:
        """The decoder's state, a list of [B, H] tensors: per layer h (LSTM: h then c), then, with input
        feeding, the attentional hidden state fed to the first word (zeros, as Sockeye)."""
        c = self.config
        B, H = memory.states.shape[0], c.rnn_num_hidden
        n = c.num_layers_decoder * (2 if c.cell_type == "lstm" else 1)
        if self.init_state is None:
            states = [memory.states.new_zeros(B, H) for _ in range(n)]
        else:
            if c.decoder_state_init == "last":
                summary = memory.last
            else:
                m = memory.mask.to(memory.states.dtype)
                summary = (memory.states * m[..., None]).sum(1) / m.sum(1, keepdim=True)
            states = [torch.tanh(layer(summary)) for layer in self.init_state]
        return states + [memory.states.new_zeros(B, H)] if c.input_feeding else states

    def decode(self, target_in: torch.Tensor, memory: Memory, state: list):
        """(logits [B, T, V], attention weights [B, T, S], new state) for input words [B, T]."""
        x = F.dropout(self.target_embed(target_in), self.config.embed_dropout_target, self.training)
        hidden, weights, state = (self._decode_fed if self.config.input_feeding else self._decode_parallel)(
            x, memory, state)
        return self.output(hidden), weights, state

    def _decode_fed(self, x: torch.Tensor, memory: Memory, state: list):
        """Input feeding: a loop over the T words; (attentional hidden states [B, T, H], weights, state)."""
        c = self.config
        lstm = c.cell_type == "lstm"
        per_layer = 2 if lstm else 1
        layers = list(self.decoder)
        split = 1 if self._context_in_upper_layers else len(layers)
        first, E_t = layers[0], x.shape[-1]
        # the words' share of the first layer's input gates, for all T at once (with both biases where
        # the cell adds them)
        bias = first.bias_ih + first.bias_hh if lstm else first.bias_ih
        words = F.linear(x, first.weight_ih[:, :E_t], bias)
        w_feed = first.weight_ih[:, E_t:].t()
        w_ih = [None] + [layer.weight_ih.t() for layer in layers[1:]]
        w_hh = [layer.weight_hh.t() for layer in layers]
        b_ih = [None] + [(layer.bias_ih + layer.bias_hh) if lstm else layer.bias_ih for layer in layers[1:]]
        states, feed = list(state[:-1]), state[-1]
        hiddens, weights = [], []

        def cell(i: int, gates_in: torch.Tensor) -> torch.Tensor:
            h = states[per_layer * i]
            if lstm:
                gates = torch.addmm(gates_in, h, w_hh[i])
                in_gate, forget, g, out_gate = gates.chunk(4, 1)
                cell_state = torch.sigmoid(forget) * states[2 * i + 1] + torch.sigmoid(in_gate) * torch.tanh(g)
                h = torch.sigmoid(out_gate) * torch.tanh(cell_state)
                states[2 * i], states[2 * i + 1] = h, cell_state
                return h
            hidden_gates = torch.addmm(layers[i].bias_hh, h, w_hh[i])
            H = h.shape[1]
            reset, update = torch.sigmoid(gates_in[:, :2 * H] + hidden_gates[:, :2 * H]).chunk(2, 1)
            new = torch.tanh(gates_in[:, 2 * H:] + reset * hidden_gates[:, 2 * H:])
            h = new + update * (h - new)
            states[i] = h
            return h

        def upper(i: int, below: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
            inputs = below if context is None else torch.cat([below, context], dim=1)
            out = cell(i, torch.addmm(b_ih[i], inputs, w_ih[i]))
            return out + below if c.residual and i + 1 >= c.first_residual_layer else out

        for t in range(x.shape[1]):
            out = cell(0, torch.addmm(words[:, t], feed, w_feed))
            for i in range(1, split):
                out = upper(i, out, None)
            context, w = self.attention.step(out, memory)
            for i in range(split, len(layers)):
                out = upper(i, out, context)
            concat = F.dropout(torch.cat([out, context], dim=1), c.decoder_hidden_dropout, self.training)
            feed = torch.tanh(self.combine(concat))
            hiddens.append(feed)
            weights.append(w)
        return torch.stack(hiddens, dim=1), torch.stack(weights, dim=1), states + [feed]

    def _decode_parallel(self, x: torch.Tensor, memory: Memory, state: list):
        """No input feeding (models of config format 1): each RNN layer runs over the whole target at
        once, then attention for all words; (attentional hidden states [B, T, H], weights, state)."""
        c = self.config
        new_state = []
        for i, layer in enumerate(self.decoder):
            if c.cell_type == "lstm":
                out, (h, cell) = layer(x, (state[2 * i][None].contiguous(), state[2 * i + 1][None].contiguous()))
                new_state += [h[0], cell[0]]
            else:
                out, h = layer(x, state[i][None].contiguous())
                new_state.append(h[0])
            x = out + x if c.residual and i >= 1 and i + 1 >= c.first_residual_layer else out
        context, weights = self.attention(x, memory)
        hidden = torch.tanh(self.combine(torch.cat([x, context], dim=-1)))
        return F.dropout(hidden, c.decoder_hidden_dropout, self.training), weights, new_state

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
        state = _select_state(state, expand)
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
            state = _select_state(state, origin)
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


def _select_state(state: list, index: torch.Tensor) -> list:
    return [s[index] for s in state]


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
