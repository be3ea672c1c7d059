"""BlazingText's declaration: hyperparameters of both families of modes, channels, metrics.

BlazingText has two families of modes with different hyperparameters: Word2Vec (`cbow`,
`skipgram`, `batch_skipgram`) and text classification (`supervised`). The declaration is their
union, as SageMaker's form shows it; each help line says which modes read the parameter, and
`check` rejects combinations SageMaker rejects. Names, ranges and defaults follow SageMaker's
blazingtext_hyperparameters page.

Metrics: `train:mean_rho` (Word2Vec, Spearman's rho of the vectors' cosine similarities against
human similarity judgements, with evaluation=true) and `validation:accuracy` (supervised). Their
log lines are the ones BlazingText prints (`#validation_accuracy: 0.9228`, `#train_accuracy: ...`);
the `mean_rho` token is not documented by AWS, and `#mean_rho: <value>` is this implementation's.
"""
from __future__ import annotations

from nbsage.algorithms.base import imported_on_call
from nbsage.algorithms.base import Algorithm, Channel, Hyperparameter, Metric, Range, at_least, greater_than
from nbsage.errors import HyperparameterError

WORD2VEC_MODES = ("batch_skipgram", "skipgram", "cbow")
SUPERVISED = "supervised"
MODES = WORD2VEC_MODES + (SUPERVISED,)
MODE_CODES = {"skipgram": 0, "cbow": 1, "batch_skipgram": 2}  # as the training kernels number them

_W2V = "Word2Vec modes"
_SUP = "supervised mode"
_BOTH = "all modes"

HYPERPARAMETERS = (
    Hyperparameter("mode", "str", required=True, choices=MODES,
                   help="what to train: word vectors with cbow, skipgram or batch_skipgram "
                        "(Word2Vec with negative sampling), or a text classifier (supervised)"),
    Hyperparameter("batch_size", "int", default=11, range=greater_than(0), advanced=True,
                   help="context words that share one set of negative samples in batch_skipgram "
                        "(10 to 20 recommended, about 2 * window_size + 1; batch_skipgram only)"),
    Hyperparameter("buckets", "int", default=2_000_000, range=greater_than(0), advanced=True,
                   help="hash buckets for character n-grams (Word2Vec with subwords) or word "
                        f"n-grams (supervised with word_ngrams > 1); {_BOTH}"),
    Hyperparameter("epochs", "int", default=5, range=greater_than(0),
                   help=f"passes over the training data; {_BOTH}"),
    Hyperparameter("evaluation", "bool", default=True,
                   help="score the word vectors against word-pair similarity judgements "
                        f"(metric train:mean_rho, file eval.json); {_W2V}"),
    Hyperparameter("learning_rate", "float", default=0.05, range=greater_than(0),
                   help=f"initial step size, decayed linearly to 0 over training; {_BOTH}"),
    Hyperparameter("min_char", "int", default=3, range=greater_than(0), advanced=True,
                   help=f"shortest character n-gram of a subword (subwords=true); {_W2V}"),
    Hyperparameter("max_char", "int", default=6, range=greater_than(0), advanced=True,
                   help=f"longest character n-gram of a subword (subwords=true); {_W2V}"),
    Hyperparameter("min_count", "int", default=5, range=at_least(0),
                   help=f"words seen fewer times than this are dropped from the vocabulary; {_BOTH}"),
    Hyperparameter("negative_samples", "int", default=5, range=greater_than(0),
                   help=f"negative samples per positive one; {_W2V}"),
    Hyperparameter("sampling_threshold", "float", default=0.0001, range=Range(0, 1, False, True),
                   advanced=True,
                   help="frequent words are randomly skipped in proportion to how far their "
                        f"frequency exceeds this ((0, 1e-3] recommended); {_W2V}"),
    Hyperparameter("subwords", "bool", default=False,
                   help="learn character n-gram vectors too, which gives vectors to words never "
                        f"seen in training (not with batch_skipgram); {_W2V}"),
    Hyperparameter("vector_dim", "int", default=100, range=greater_than(0),
                   help=f"size of the word vectors (and of the classifier's hidden layer); {_BOTH}"),
    Hyperparameter("window_size", "int", default=5, range=greater_than(0),
                   help=f"context words on each side of the target word; {_W2V}"),
    Hyperparameter("early_stopping", "bool", default=False,
                   help="stop when validation accuracy has not improved for `patience` epochs "
                        f"and keep the best epoch's weights (needs a validation channel); {_SUP}"),
    Hyperparameter("min_epochs", "int", default=5, range=greater_than(0),
                   help=f"epochs always trained before early stopping may stop; {_SUP}"),
    Hyperparameter("patience", "int", default=4, range=greater_than(0),
                   help=f"epochs without improvement of validation accuracy before stopping; {_SUP}"),
    Hyperparameter("word_ngrams", "int", default=2, range=greater_than(0),
                   help="word n-grams up to this length are features too, hashed into `buckets` "
                        f"(1 = words only); {_SUP}"),
)

TEXT_TYPES = ("text/plain", "application/jsonlines", "application/x-recordio")

CHANNELS = (
    Channel("train", TEXT_TYPES, required=True,
            help="Word2Vec: one space-tokenised sentence per line. supervised: lines of "
                 "'__label__<name> tokens ...', or an augmented manifest of "
                 "{\"source\": \"text\", \"label\": 1} JSON lines (plain or RecordIO-wrapped)"),
    Channel("validation", TEXT_TYPES,
            help="supervised only: labelled lines scored each epoch (validation:accuracy); "
                 "required for early_stopping"),
)

METRICS = (
    Metric("train:mean_rho", "Maximize", r"#mean_rho: (\S+)",
           "Word2Vec: Spearman's rho between the vectors' cosine similarities and human "
           "judgements of word-pair similarity (evaluation=true)"),
    Metric("validation:accuracy", "Maximize", r"#validation_accuracy: (\S+)",
           "supervised: fraction of validation lines whose top predicted label is one of theirs"),
    Metric("train:accuracy", "Maximize", r"#train_accuracy: (\S+)",
           "supervised: the same on the training lines"),
)
# what a tuning job may vary and optimise (SageMaker's "Tune a BlazingText model" page)
TUNABLE = ("batch_size", "buckets", "epochs", "learning_rate", "min_count", "negative_samples", "sampling_threshold",
           "vector_dim", "window_size", "word_ngrams")
OBJECTIVE_METRICS = ("train:mean_rho", "validation:accuracy")


def check(hps: dict) -> None:
    """Rules that span several hyperparameters."""
    mode = hps.get("mode")
    if mode == "batch_skipgram" and hps.get("subwords"):
        raise HyperparameterError(
            "hyperparameter 'subwords' = true is not valid with mode=batch_skipgram: BlazingText "
            "learns subword vectors only in cbow and skipgram modes; use mode=skipgram or cbow, "
            "or subwords=false", name="subwords")
    if hps.get("min_char", 3) > hps.get("max_char", 6):
        raise HyperparameterError(
            f"hyperparameters min_char = {hps.get('min_char')} and max_char = {hps.get('max_char')} "
            f"are not valid together: min_char must not exceed max_char")


ALGORITHM = Algorithm(
    name="blazingtext",
    title="BlazingText",
    description=("Word2Vec word vectors (cbow, skipgram, batch_skipgram, with optional subwords) "
                 "and fastText-style text classification (supervised)"),
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=METRICS,
    train=imported_on_call("nbsage.algorithms.blazingtext.training", "train"),
    load=imported_on_call("nbsage.algorithms.blazingtext.inference", "load"),
    check=check,
    request_content_type="application/json",
    response_accept="application/json",
    model_files=("model.bin", "vectors.bin", "vectors.txt"),
    tunable_hyperparameters=TUNABLE,
    objective_metrics=OBJECTIVE_METRICS,
)
