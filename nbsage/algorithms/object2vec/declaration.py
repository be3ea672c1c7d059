"""Object2Vec's declaration: every hyperparameter, its channels and its metrics.

Names, defaults and valid ranges follow SageMaker's object2vec-hyperparameters page and the SDK's
`sagemaker.amazon.object2vec` validators. The `enc1_*` settings have no default of their own: with
`enc1_network=enc0` (the default) enc1 copies every enc0 setting, vocab_size included, as
SageMaker's container does (its logs show enc1 with enc0's vocab_size); otherwise an unset `enc1_*`
takes the enc0 declaration's default, and enc1_vocab_size / enc1_max_seq_len are required.
Metric regexes scrape the `#quality_metric` lines that `training.py` prints for the kept model.
"""
from __future__ import annotations

from nbsage.algorithms.base import (AUTO, Algorithm, Channel, Hyperparameter, Metric, closed,
                                    imported_on_call)
from nbsage.errors import HyperparameterError

NETWORKS = ("hcnn", "bilstm", "pooled_embedding")
COMPARATORS = ("hadamard", "concat", "abs_diff")
OUTPUT_LAYERS = ("softmax", "mean_squared_error")
OPTIMIZERS = ("adadelta", "adagrad", "adam", "sgd", "rmsprop")
ACTIVATIONS = ("tanh", "relu", "linear")
DEFAULT_LAYERS = {"hcnn": 4, "bilstm": 1, "pooled_embedding": 1}  # what enc*_layers=auto means
DATA_TYPES = ("application/jsonlines",)
AUXILIARY_TYPES = ("application/json", "text/plain")  # a vocabulary JSON, an embedding text file
# a file name in the auxiliary channel, as SageMaker's validator allows it
FILE_NAME = r"[A-Za-z0-9._]+"


def _encoder(i: int) -> tuple[Hyperparameter, ...]:
    """The hyperparameters of encoder `i`; enc1's default to None (resolved in `encoder_settings`)."""
    first = i == 0
    d = (lambda value: value) if first else (lambda value: None)
    which = f"enc{i}"
    return (
        Hyperparameter(f"{which}_network", "str", default="hcnn" if first else "enc0",
                       choices=NETWORKS if first else ("enc0",) + NETWORKS,
                       help=("encoder of in0: hcnn (stacked 1-D convolutions, max-pooled), bilstm "
                             "(bidirectional LSTM, max-pooled) or pooled_embedding (mean of the token "
                             "embeddings)") if first else
                            ("encoder of in1: enc0 (the same architecture and settings as enc0, "
                             "vocab_size included; weights not shared) or one of enc0's networks")),
        Hyperparameter(f"{which}_max_seq_len", "int", required=first, range=closed(1, 5000),
                       help=f"longest in{i} sequence; longer ones are truncated to it"
                            + ("" if first else " (required unless enc1_network=enc0)")),
        Hyperparameter(f"{which}_vocab_size", "int", required=first, range=closed(2, 3_000_000),
                       help=f"number of in{i} token ids: every id must be below it"
                            + ("" if first else " (required unless enc1_network=enc0)")),
        Hyperparameter(f"{which}_cnn_filter_width", "int", default=d(3), range=closed(1, 9),
                       help="width of the hcnn convolution filters (hcnn only)"),
        Hyperparameter(f"{which}_layers", "int", default=d(AUTO), allow_auto=True, range=closed(1, 4),
                       help="stacked layers: auto is 4 for hcnn and 1 for bilstm (pooled_embedding has none)"),
        Hyperparameter(f"{which}_token_embedding_dim", "int", default=d(300), range=closed(2, 1000),
                       help="size of the token embeddings (pooled_embedding uses enc_dim instead)"),
        Hyperparameter(f"{which}_pretrained_embedding_file", "str", default=d(""),
                       help=f"file in the auxiliary channel with pretrained token vectors, one 'token v1 "
                            f"v2 ...' line per token (GloVe's text format); needs {which}_vocab_file"),
        Hyperparameter(f"{which}_vocab_file", "str", default=d(""),
                       help="file in the auxiliary channel mapping tokens to ids, a JSON object "
                            "{\"token\": id}; places the pretrained vectors"),
        Hyperparameter(f"{which}_freeze_pretrained_embedding", "bool", default=d(True),
                       help="keep pretrained token embeddings fixed during training"),
    )


HYPERPARAMETERS = (
    *_encoder(0),
    *_encoder(1),
    Hyperparameter("enc_dim", "int", default=4096, range=closed(4, 10000),
                   help="size of the vector each encoder outputs (the embedding)"),
    Hyperparameter("comparator_list", "str", default="hadamard, concat, abs_diff",
                   help="how the two embeddings are combined, a comma list of hadamard (e0*e1), "
                        "concat ([e0, e1]) and abs_diff (|e0-e1|), concatenated in that order"),
    Hyperparameter("output_layer", "str", default="softmax", choices=OUTPUT_LAYERS,
                   help="softmax: labels are classes 0..num_classes-1 (cross-entropy); "
                        "mean_squared_error: labels are real values (regression)"),
    Hyperparameter("num_classes", "int", default=2, range=closed(2, 30),
                   help="number of classes for softmax (ignored for regression)"),
    Hyperparameter("mlp_layers", "int", default=2, range=closed(0, 10),
                   help="hidden layers of the MLP between the comparator and the output layer"),
    Hyperparameter("mlp_dim", "int", default=512, range=closed(2, 10000),
                   help="units in each MLP layer"),
    Hyperparameter("mlp_activation", "str", default="linear", choices=ACTIVATIONS,
                   help="activation of the MLP layers"),
    Hyperparameter("dropout", "float", default=0.0, range=closed(0, 1),
                   help="dropout probability of the network's layers"),
    Hyperparameter("epochs", "int", default=30, range=closed(1, 100),
                   help="maximum number of passes over the training data"),
    Hyperparameter("early_stopping_patience", "int", default=3, range=closed(1, 5),
                   help="stop after this many epochs in a row without an improvement of at least "
                        "early_stopping_tolerance (validation loss, else training loss)"),
    Hyperparameter("early_stopping_tolerance", "float", default=0.01, range=closed(1e-6, 0.1),
                   help="the relative loss reduction an epoch must make to count as an improvement"),
    Hyperparameter("learning_rate", "float", default=0.0004, range=closed(1e-6, 1.0),
                   help="the optimizer's learning rate"),
    Hyperparameter("mini_batch_size", "int", default=32, range=closed(1, 10000),
                   help="pairs per mini-batch"),
    Hyperparameter("optimizer", "str", default="adam", choices=OPTIMIZERS,
                   help="optimizer type"),
    Hyperparameter("weight_decay", "float", default=0.0, range=closed(0, 10000),
                   help="L2 weight decay of the optimizer"),
    Hyperparameter("negative_sampling_rate", "int", default=0, range=closed(0, 100),
                   help="negatives made per given pair each epoch by pairing in0 with the in1 of "
                        "another record at random, labelled 0 (0: none)"),
    Hyperparameter("bucket_width", "int", default=0, range=closed(0, 100),
                   help="group pairs whose lengths differ by less than this into the same mini-batches "
                        "(0: no bucketing)"),
    Hyperparameter("tied_token_embedding_weight", "bool", default=False,
                   help="one token embedding table for both encoders (needs the same vocab_size and "
                        "token_embedding_dim)"),
    Hyperparameter("token_embedding_storage_type", "str", default="dense", choices=("dense", "row_sparse"),
                   advanced=True,
                   help="row_sparse: MXNet's sparse gradient storage for large vocabularies (nbsage "
                        "stores embeddings densely either way; the result is the same)"),
)

CHANNELS = (
    Channel("train", DATA_TYPES, required=True,
            help='pairs as JSON Lines: {"label": 1, "in0": [token ids], "in1": [token ids]}'),
    Channel("validation", DATA_TYPES, help="pairs scored after every epoch; drives early stopping"),
    Channel("test", DATA_TYPES, help="pairs scored once with the final model"),
    Channel("auxiliary", AUXILIARY_TYPES,
            help="vocabulary JSON files and pretrained embedding text files named by enc*_vocab_file "
                 "and enc*_pretrained_embedding_file"),
)


def _quality(split: str, name: str, kind: str) -> str:
    return rf"#quality_metric: host=\S+, {split} {name} <{kind}>=(\S+)"


METRICS = (
    Metric("validation:accuracy", "Maximize", _quality("validation", "accuracy", "score"),
           "share of validation pairs whose most likely class is the label (softmax)"),
    Metric("validation:cross_entropy", "Minimize", _quality("validation", "cross_entropy", "loss"),
           "mean cross-entropy of the validation pairs (softmax)"),
    Metric("validation:mean_squared_error", "Minimize", _quality("validation", "mean_squared_error", "loss"),
           "mean squared error of the validation pairs (mean_squared_error)"),
    Metric("test:accuracy", "Maximize", _quality("test", "accuracy", "score"),
           "share of test pairs whose most likely class is the label (softmax)"),
    Metric("test:cross_entropy", "Minimize", _quality("test", "cross_entropy", "loss"),
           "mean cross-entropy of the test pairs (softmax)"),
    Metric("test:mean_squared_error", "Minimize", _quality("test", "mean_squared_error", "loss"),
           "mean squared error of the test pairs (mean_squared_error)"),
    Metric("train:loss", "Minimize", r"#quality_metric: host=\S+, epoch=\S+, train loss <loss>=(\S+)",
           "training loss per epoch"),
)
# what a tuning job may vary and optimise (SageMaker's "Tune an Object2Vec model" page)
TUNABLE = ("dropout", "early_stopping_patience", "early_stopping_tolerance", "enc_dim", "enc0_cnn_filter_width",
           "enc1_cnn_filter_width", "enc0_layers", "enc1_layers", "enc0_token_embedding_dim",
           "enc1_token_embedding_dim", "epochs", "learning_rate", "mini_batch_size", "mlp_activation", "mlp_dim",
           "mlp_layers", "optimizer", "weight_decay")
OBJECTIVE_METRICS = ("validation:accuracy", "validation:mean_squared_error")


def parse_comparators(text) -> list[str]:
    """'hadamard, concat' -> ['hadamard', 'concat']; HyperparameterError naming what is accepted."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    bad = [p for p in items if p not in COMPARATORS]
    if not items or bad or len(set(items)) != len(items):
        why = (f"{bad[0]!r} is not a comparator" if bad else "a comparator is listed twice" if items
               else "it is empty")
        raise HyperparameterError(f"hyperparameter 'comparator_list' = {text!r} is not valid ({why}); expected a "
                                  f"comma list of {', '.join(COMPARATORS)}, e.g. \"hadamard, concat, abs_diff\"",
                                  name="comparator_list")
    return items


def check(hps: dict) -> None:
    """Rules that span values: the comparator list, enc1's required settings, file names."""
    import re
    if "comparator_list" in hps:
        parse_comparators(hps["comparator_list"])
    if hps.get("enc1_network", "enc0") != "enc0":
        for name in ("enc1_max_seq_len", "enc1_vocab_size"):
            if hps.get(name) is None:
                raise HyperparameterError(f"hyperparameter {name!r} is required when enc1_network="
                                          f"{hps['enc1_network']!r} (only enc1_network=enc0 copies enc0's)",
                                          name=name)
    for i in (0, 1):
        for key in (f"enc{i}_pretrained_embedding_file", f"enc{i}_vocab_file"):
            value = hps.get(key) or ""
            if value and not re.fullmatch(FILE_NAME, value):
                raise HyperparameterError(f"hyperparameter {key!r} = {value!r} is not valid; expected the name "
                                          "of a file in the auxiliary channel, of letters, digits, '.' and '_'",
                                          name=key)
        if hps.get(f"enc{i}_pretrained_embedding_file") and not hps.get(f"enc{i}_vocab_file"):
            raise HyperparameterError(f"hyperparameter 'enc{i}_pretrained_embedding_file' needs "
                                      f"'enc{i}_vocab_file' too: the vocabulary says which token id each "
                                      "pretrained vector belongs to", name=f"enc{i}_vocab_file")


ALGORITHM = Algorithm(
    name="object2vec",
    title="Object2Vec",
    description=("embeddings of pairs of token sequences (sentences, users and items, ...) learned by "
                 "two encoders and a comparator trained to classify or score the pair"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.object2vec.training", "train"),
    load=imported_on_call("nbsage.algorithms.object2vec.inference", "load"),
    check=check,
    request_content_type="application/json",
    model_files=("model_algo-1.pt",),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
