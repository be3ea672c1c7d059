"""XGBoost's files: the `xgboost-model` artifact and the `xgboost-checkpoint.<round>` checkpoints.

Both are xgboost's native UBJSON without a file extension (loadable with
`xgboost.Booster().load_model(path)`, as SageMaker's are), written to a temporary name that
SageMaker's checkpoint uploader ignores and then renamed, so a stopped job never leaves half a file
under the real name. k-fold mode writes `xgboost-model-<fold>`.
"""
from __future__ import annotations

import re
from pathlib import Path

from nbsage.algorithms.xgboost.library import xgb
from nbsage.checkpoint_files import write_checkpoint
from nbsage.errors import DataError

MODEL_NAME = "xgboost-model"
CHECKPOINT_NAME = "xgboost-checkpoint"
CHECKPOINTS_KEPT = 5
_CHECKPOINT_FILE = re.compile(rf"^{re.escape(CHECKPOINT_NAME)}\.([0-9]+)$")
_FOLD_MODEL_FILE = re.compile(rf"^{re.escape(MODEL_NAME)}-([0-9]+)$")


def save_model(booster, path: Path) -> Path:
    """Write a booster as `xgboost-model`: native UBJSON without a file extension, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_checkpoint(path, booster.save_raw("ubj"))


def load_booster(path: Path):
    """A booster from a model or checkpoint file; a pickle or a foreign file is a DataError naming it."""
    raw = Path(path).read_bytes()
    if raw[:1] == b"\x80":
        raise DataError(f"{path} is a pickled booster (SageMaker XGBoost before 1.3); nbsage does not "
                        "unpickle model files: load it in xgboost and save it with Booster.save_model")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as e:
        raise DataError(f"{path} is not an XGBoost model: {str(e).splitlines()[0]}") from None
    return booster


def model_files(model_dir) -> list[Path]:
    """`xgboost-model`, or the k-fold models `xgboost-model-0..k-1` in fold order, of a model directory."""
    directory = Path(model_dir)
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    models = [p for p in files if p.name == MODEL_NAME or _FOLD_MODEL_FILE.match(p.name)]
    if not models:
        raise DataError(f"{directory} holds no {MODEL_NAME} file (found: "
                        f"{', '.join(p.name for p in files) or 'nothing'})")
    models.sort(key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name != MODEL_NAME else -1)
    return models


def checkpoint_rounds(directory: Path) -> list[int]:
    """The rounds of the checkpoints in a directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _CHECKPOINT_FILE.match(p.name)))


def save_checkpoint(booster, directory: Path, epoch: int, keep: int = CHECKPOINTS_KEPT) -> None:
    """Write `xgboost-checkpoint.<epoch>` atomically and delete all but the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{CHECKPOINT_NAME}.{epoch}"
    write_checkpoint(path, booster.save_raw("ubj"))
    for old in checkpoint_rounds(directory)[:-keep]:
        try:
            (directory / f"{CHECKPOINT_NAME}.{old}").unlink()
        except OSError:
            pass


def latest_checkpoint(directory: Path, num_features: int):
    """(booster, rounds done) from the newest readable xgboost-checkpoint.<round>, or (None, 0)."""
    for epoch in reversed(checkpoint_rounds(directory)):
        path = directory / f"{CHECKPOINT_NAME}.{epoch}"
        try:
            booster = load_booster(path)
        except DataError:
            continue  # a checkpoint cut short by the stop that we are resuming from
        if booster.num_features() != num_features:
            raise DataError(f"checkpoint {path} was trained on {booster.num_features()} features and the train "
                            f"channel has {num_features}; empty the checkpoint folder to start afresh")
        return booster, booster.num_boosted_rounds()
    return None, 0


def shared_checkpoint(directory: Path, num_features: int, cluster):
    """The master's newest checkpoint, on every host: (booster, rounds done) or (None, 0)."""
    from nbsage.algorithms import distributed
    raw = None
    if cluster.is_master:
        booster, _ = latest_checkpoint(directory, num_features)
        raw = bytes(booster.save_raw("ubj")) if booster is not None else None
    raw = distributed.broadcast(raw, 0)
    if raw is None:
        return None, 0
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster, booster.num_boosted_rounds()
