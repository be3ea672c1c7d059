"""Seq2Seq's declaration: every hyperparameter, its channels and its metrics.

Names, defaults and valid values follow SageMaker's seq2seq-hyperparameters page (the container is
Sockeye 1.x on MXNet). Where nbsage reads a value differently it says so in the help text:
`decoder_type=cnn` is refused (nbsage's decoder is the RNN one), and `max_num_epochs` unset means
no epoch limit, as on SageMaker. Metric regexes scrape the `#quality_metric` lines `training.py`
prints: one per checkpoint (`epoch=E, batch=B validation bleu <score>=V`) and, last, the kept
(best) checkpoint's (`validation bleu <score>=V`), so a tuning job reads the best value.
"""
from __future__ import annotations

from nbsage.algorithms.base import (AUTO, Algorithm, Channel, Hyperparameter, Metric, at_least, closed,
                                    greater_than, imported_on_call)
from nbsage.errors import HyperparameterError

RECORDIO = "application/x-recordio-protobuf"
ATTENTION_TYPES = ("mlp", "dot", "bilinear", "fixed")
OPTIMIZED_METRICS = ("perplexity", "accuracy", "bleu")

HYPERPARAMETERS = (
    Hyperparameter("batch_size", "int", default=64, range=greater_than(0),
                   help="sentence pairs per mini-batch"),
    Hyperparameter("beam_size", "int", default=5, range=greater_than(0),
                   help="hypotheses kept by beam search, for validation BLEU and at the endpoint"),
    Hyperparameter("bleu_sample_size", "int", default=0, range=at_least(-1),
                   help="validation sentences decoded to compute validation:bleu at each checkpoint; "
                        "-1 the whole validation set; 0 computes BLEU only when optimized_metric=bleu "
                        "(then on the whole set)"),
    Hyperparameter("bucket_width", "int", default=10, range=greater_than(0),
                   help="length step, on the longer side, of the (source, target) buckets that batches are drawn from"),
    Hyperparameter("bucketing_enabled", "bool", default=True,
                   help="draw each batch from sentences of similar lengths (less padding)"),
    Hyperparameter("checkpoint_frequency_num_batches", "int", default=1000, range=greater_than(0),
                   help="validate and checkpoint every this many batches (and when training ends)"),
    Hyperparameter("checkpoint_threshold", "int", default=3, range=greater_than(0),
                   help="stop after this many checkpoints without improving optimized_metric"),
    Hyperparameter("clip_gradient", "float", default=1.0,
                   help="clip each gradient value to [-clip, clip]; a negative value disables clipping"),
    Hyperparameter("cnn_activation_type", "str", default="glu",
                   choices=("glu", "relu", "softrelu", "sigmoid", "tanh"),
                   help="activation of the cnn encoder's convolutions"),
    Hyperparameter("cnn_hidden_dropout", "float", default=0.0, range=closed(0, 1),
                   help="dropout between the cnn encoder's convolution layers"),
    Hyperparameter("cnn_kernel_width_decoder", "int", default=5, range=greater_than(0),
                   help="kernel width of a cnn decoder (accepted; nbsage's decoder is the rnn one)"),
    Hyperparameter("cnn_kernel_width_encoder", "int", default=3, range=greater_than(0),
                   help="kernel width of the cnn encoder's convolutions"),
    Hyperparameter("cnn_num_hidden", "int", default=512, range=greater_than(0),
                   help="channels of the cnn encoder"),
    Hyperparameter("decoder_type", "str", default="rnn", choices=("rnn", "cnn"),
                   help="rnn (nbsage trains the rnn decoder; cnn is refused with an error)"),
    Hyperparameter("embed_dropout_source", "float", default=0.0, range=closed(0, 1),
                   help="dropout on the source word embeddings"),
    Hyperparameter("embed_dropout_target", "float", default=0.0, range=closed(0, 1),
                   help="dropout on the target word embeddings"),
    Hyperparameter("encoder_type", "str", default="rnn", choices=("rnn", "cnn"),
                   help="rnn: a bidirectional first layer then unidirectional layers (Bahdanau et al.); "
                        "cnn: gated convolutions with position embeddings (Gehring et al.)"),
    Hyperparameter("fixed_rate_lr_half_life", "int", default=10, range=greater_than(0),
                   help="checkpoints after which the fixed_rate_* schedules have halved the learning rate"),
    Hyperparameter("learning_rate", "float", default=0.0003, range=greater_than(0),
                   help="initial learning rate"),
    Hyperparameter("loss_type", "str", default="cross-entropy", choices=("cross-entropy",),
                   help="training loss"),
    Hyperparameter("lr_scheduler_type", "str", default="plateau_reduce",
                   choices=("plateau_reduce", "fixed_rate_inv_t", "fixed_rate_inv_sqrt_t"),
                   help="plateau_reduce multiplies the rate by plateau_reduce_lr_factor after "
                        "plateau_reduce_lr_threshold checkpoints without improvement; fixed_rate_inv_t "
                        "and fixed_rate_inv_sqrt_t decay it with the checkpoint count"),
    Hyperparameter("max_num_batches", "int", default=-1, range=at_least(-1),
                   help="stop after this many batches (-1: no limit)"),
    Hyperparameter("max_num_epochs", "int", range=greater_than(0),
                   help="stop after this many passes over the training data (unset: no limit)"),
    Hyperparameter("max_seq_len_source", "int", default=100, range=greater_than(0),
                   help="source tokens kept per record; longer records are truncated (with a warning)"),
    Hyperparameter("max_seq_len_target", "int", default=100, range=greater_than(0),
                   help="target tokens kept per record; longer records are truncated (with a warning); "
                        "also the longest translation the model writes"),
    Hyperparameter("min_num_epochs", "int", default=0, range=at_least(0),
                   help="epochs trained before early stopping may stop the job"),
    Hyperparameter("momentum", "float", range=closed(0, 1),
                   help="momentum of the sgd optimizer (unset: none)"),
    Hyperparameter("num_embed_source", "int", default=512, range=greater_than(0),
                   help="size of the source word embeddings"),
    Hyperparameter("num_embed_target", "int", default=512, range=greater_than(0),
                   help="size of the target word embeddings"),
    Hyperparameter("num_layers_decoder", "int", default=1, range=greater_than(0),
                   help="layers of the decoder RNN"),
    Hyperparameter("num_layers_encoder", "int", default=1, range=greater_than(0),
                   help="layers of the encoder (the first rnn layer is bidirectional)"),
    Hyperparameter("optimized_metric", "str", default="perplexity", choices=OPTIMIZED_METRICS,
                   help="validation metric that picks the kept checkpoint and drives early stopping"),
    Hyperparameter("optimizer_type", "str", default="adam", choices=("adam", "sgd", "rmsprop"),
                   help="optimizer"),
    Hyperparameter("plateau_reduce_lr_factor", "float", default=0.5, range=greater_than(0),
                   help="factor the learning rate is multiplied by on a plateau"),
    Hyperparameter("plateau_reduce_lr_threshold", "int", default=3, range=greater_than(0),
                   help="checkpoints without improvement before the learning rate is reduced"),
    Hyperparameter("rnn_attention_in_upper_layers", "bool", default=True,
                   help="with num_layers_decoder > 1: attention reads the first decoder layer and every "
                        "upper layer gets the attention context as input (false: attention reads the top layer)"),
    Hyperparameter("rnn_attention_num_hidden", "int", default=AUTO, allow_auto=True, range=greater_than(0),
                   help="hidden size of the mlp attention (auto: rnn_num_hidden)"),
    Hyperparameter("rnn_attention_type", "str", default="mlp", choices=ATTENTION_TYPES,
                   help="mlp (Bahdanau, Luong 'concat'), dot and bilinear (Luong 'dot' and 'general'), "
                        "fixed (no attention: every step sees the encoder's last state)"),
    Hyperparameter("rnn_cell_type", "str", default="lstm", choices=("lstm", "gru"),
                   help="recurrent cell of the encoder and decoder"),
    Hyperparameter("rnn_decoder_state_init", "str", default="last", choices=("last", "avg", "zero"),
                   help="decoder's initial state from the encoder's last state, its average, or zeros"),
    Hyperparameter("rnn_first_residual_layer", "int", default=2, range=greater_than(0),
                   help="first layer with a residual connection when rnn_residual_connections is set"),
    Hyperparameter("rnn_num_hidden", "int", default=1024, range=greater_than(0),
                   help="hidden units of the RNNs; even (the bidirectional first layer has half each way)"),
    Hyperparameter("rnn_residual_connections", "bool", default=False,
                   help="residual connections between stacked RNN layers"),
    Hyperparameter("rnn_decoder_hidden_dropout", "float", default=0.0, range=closed(0, 1),
                   help="dropout on the decoder's [RNN output; context] before the attentional hidden state"),
    Hyperparameter("training_metric", "str", default="perplexity", choices=("perplexity", "accuracy"),
                   help="metric logged on the training batches"),
    Hyperparameter("weight_decay", "float", default=0.0, range=at_least(0),
                   help="L2 weight decay"),
    Hyperparameter("weight_init_scale", "float", default=2.34,
                   help="xavier: magnitude; uniform: the weights are drawn from [-scale, scale]"),
    Hyperparameter("weight_init_type", "str", default="xavier", choices=("xavier", "uniform"),
                   help="initial weights"),
    Hyperparameter("xavier_factor_type", "str", default="in", choices=("in", "out", "avg"),
                   help="fan the xavier magnitude is divided by"),
)

CHANNELS = (
    Channel("train", (RECORDIO,), required=True,
            help="RecordIO-protobuf records with int32 'source' and 'target' token ids (train.rec)"),
    Channel("validation", (RECORDIO,), required=True,
            help="RecordIO-protobuf records like train's, scored at each checkpoint (val.rec)"),
    Channel("vocab", ("application/json",), required=True,
            help="vocab.src.json and vocab.trg.json: JSON objects token -> id with <pad>=0, <unk>=1, "
                 "<s>=2, </s>=3"),
)


def _validation(name: str, kind: str) -> str:
    return rf"#quality_metric: host=\S+, (?:epoch=\S+, batch=\S+ )?validation {name} <{kind}>=(\S+)"


METRICS = (
    Metric("validation:bleu", "Maximize", _validation("bleu", "score"),
           "sacrebleu corpus BLEU (13a tokenizer, exponential smoothing) of beam-search translations"),
    Metric("validation:perplexity", "Minimize", _validation("perplexity", "loss"),
           "exp of the mean cross-entropy per target token (teacher forcing)"),
    Metric("validation:accuracy", "Maximize", _validation("accuracy", "score"),
           "share of target tokens predicted right (teacher forcing)"),
    Metric("train:perplexity", "Minimize", r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train perplexity <loss>=(\S+)",
           "perplexity of the training batches since the last checkpoint"),
)
# SageMaker's "Tune a Sequence-to-Sequence model" page
TUNABLE = ("num_layers_encoder", "num_layers_decoder", "batch_size", "optimizer_type", "weight_init_type",
           "weight_init_scale", "learning_rate", "weight_decay", "momentum", "clip_gradient", "rnn_num_hidden",
           "cnn_num_hidden", "num_embed_source", "num_embed_target", "embed_dropout_source",
           "embed_dropout_target", "rnn_decoder_hidden_dropout", "cnn_hidden_dropout", "lr_scheduler_type",
           "plateau_reduce_lr_factor", "plateau_reduce_lr_threshold", "fixed_rate_lr_half_life")
OBJECTIVE_METRICS = ("validation:accuracy", "validation:bleu", "validation:perplexity")


def check(hps: dict) -> None:
    """Rules that span values, or that a single declaration cannot state."""
    if hps.get("encoder_type", "rnn") == "rnn" and hps.get("rnn_num_hidden", 1024) % 2:
        raise HyperparameterError(
            f"hyperparameter 'rnn_num_hidden' = {hps['rnn_num_hidden']!r} is not valid: the rnn encoder's first "
            "layer is bidirectional, half the units each way; expected an even number", name="rnn_num_hidden")
    if hps.get("decoder_type") == "cnn":
        raise HyperparameterError(
            "hyperparameter 'decoder_type' = 'cnn' is not supported by nbsage's Seq2Seq, which trains the rnn "
            "decoder with attention; use decoder_type=rnn (encoder_type=cnn is supported)", name="decoder_type")
    if hps.get("rnn_attention_num_hidden") == AUTO:
        hps["rnn_attention_num_hidden"] = hps.get("rnn_num_hidden", 1024)


ALGORITHM = Algorithm(
    name="seq2seq",
    title="Seq2Seq",
    description=("sequence-to-sequence translation of token sequences: an RNN or CNN encoder and an "
                 "attentional RNN decoder, with beam search"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.seq2seq.training", "train"),
    load=imported_on_call("nbsage.algorithms.seq2seq.inference", "load"),
    check=check,
    aliases=("sequence-to-sequence",),
    request_content_type="application/json",
    model_files=("params.best",),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
