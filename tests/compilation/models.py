"""Small models of each compilable algorithm, written as their training jobs write them."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np


def tar_dir(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(Path(directory).iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


def tar_files(archive: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def xgboost_model(folder: Path, objective: str = "binary:logistic", features: int = 8, rounds: int = 20,
                  rows: int = 400):
    """(booster, model.tar.gz, X) of a booster trained on random rows."""
    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(float)
    params = {"objective": objective, "max_depth": 4, "nthread": 1}
    if objective.startswith("multi"):
        y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
        params["num_class"] = 3
    booster = xgb.train(params, xgb.DMatrix(X, y), rounds)
    archive = tar_files(Path(folder) / f"xgboost-{objective.replace(':', '-')}.tar.gz",
                        {"xgboost-model": bytes(booster.save_raw("ubj"))})
    return booster, archive, X


def linear_learner_model(folder: Path, predictor_type: str = "binary_classifier", features: int = 6) -> Path:
    from nbsage.algorithms.linear_learner.inference import LinearModel
    rng = np.random.default_rng(1)
    outputs = 3 if predictor_type == "multiclass_classifier" else 1
    model = LinearModel(weights=rng.normal(size=(features, outputs)), bias=rng.normal(size=outputs),
                        predictor_type=predictor_type,
                        loss={"binary_classifier": "logistic", "multiclass_classifier": "softmax_loss",
                              "regressor": "squared_loss"}[predictor_type],
                        num_classes=max(outputs, 2) if predictor_type != "regressor" else 0)
    model.save(Path(folder) / "ll")
    return tar_dir(Path(folder) / "ll", Path(folder) / "linear-learner.tar.gz")


WORDS = ["good", "great", "fine", "bad", "awful", "poor", "movie", "plot", "the", "a"]


def blazingtext_model(folder: Path, dim: int = 8) -> Path:
    from nbsage.algorithms.blazingtext.model import ClassifierModel
    rng = np.random.default_rng(2)
    bucket_ids = np.arange(0, 2000, 13, dtype=np.int64)
    model = ClassifierModel(words=WORDS, labels=["__label__pos", "__label__neg"],
                            w_in=np.vstack([rng.normal(size=(len(WORDS) + len(bucket_ids), dim)),
                                            np.zeros((1, dim))]).astype(np.float32),
                            w_out=rng.normal(size=(2, dim)).astype(np.float32), bucket_ids=bucket_ids,
                            word_ngrams=2, buckets=2000)
    model.save(Path(folder) / "bt")
    return tar_dir(Path(folder) / "bt", Path(folder) / "blazingtext.tar.gz")


def deepar_model(folder: Path):
    """(model.tar.gz, records) of a DeepAR trained one epoch on four short hourly series."""
    from algorithms.test_deepar import DEEPAR, PERIOD, SMALL, make_root, seasonal_records
    from nbsage.runtime.environment import TrainingEnvironment
    records = seasonal_records(n_series=4, length=5 * PERIOD)
    root = make_root(Path(folder) / "root", {**SMALL, "epochs": "1"}, {"train": records})
    DEEPAR.train(TrainingEnvironment(root))
    return tar_dir(root.model_dir, Path(folder) / "deepar.tar.gz"), records


def word_vectors_model(folder: Path) -> Path:
    from nbsage.algorithms.blazingtext.model import WordVectors
    vectors = np.random.default_rng(3).normal(size=(len(WORDS), 4)).astype(np.float32)
    WordVectors(words=WORDS, vectors=vectors).save(Path(folder) / "w2v")
    return tar_dir(Path(folder) / "w2v", Path(folder) / "word2vec.tar.gz")
