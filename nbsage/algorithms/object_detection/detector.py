"""A trained detector: the network, its settings, prediction, and the model directory's files.

The model directory holds `model_algo_1-0000.params` (the network's torch state dict, named as
SageMaker names its MXNet params) and `hyperparams.json` (the settings the network is rebuilt
from: base network, classes, input size, width, NMS threshold). SageMaker's
`model_algo_1-symbol.json` (an MXNet graph) has no torch counterpart and is not written.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nbsage.algorithms.object_detection import boxes as box_ops
from nbsage.algorithms.object_detection.augment import prepare
from nbsage.algorithms.object_detection.network import SSD
from nbsage.errors import DataError

PARAMS_FILE = "model_algo_1-0000.params"
SETTINGS_FILE = "hyperparams.json"
PREDICT_BATCH = 16


@dataclass
class Settings:
    base_network: str
    num_classes: int
    image_shape: int          # the size the network sees (image_shape, or _small_image_shape)
    width: float = 1.0
    nms_threshold: float = 0.45

    def build(self) -> SSD:
        return SSD(self.base_network, self.num_classes, self.image_shape, self.width)


class Detector:
    def __init__(self, settings: Settings, network: SSD | None = None, device: str = "cpu"):
        self.settings = settings
        self.device = torch.device(device)
        self.network = (network or settings.build()).to(self.device).eval()

    @torch.no_grad()
    def predict_inputs(self, batch: torch.Tensor) -> list[np.ndarray]:
        """Detections of prepared inputs (B, 3, S, S): rows [class, score, xmin, ymin, xmax, ymax]."""
        self.network.eval()
        logits, deltas = self.network(batch.to(self.device))
        return box_ops.detect(logits.softmax(-1).float().cpu(), deltas.float().cpu(), self.network.anchors.cpu(),
                              self.settings.nms_threshold)

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Detections of H x W x 3 images, coordinates normalised by each image's own size."""
        out: list[np.ndarray] = []
        for i in range(0, len(images), PREDICT_BATCH):
            batch = np.stack([prepare(im, self.settings.image_shape) for im in images[i:i + PREDICT_BATCH]])
            out += self.predict_inputs(torch.from_numpy(batch))
        return out

    def save(self, model_dir) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        torch.save(state, model_dir / PARAMS_FILE)
        (model_dir / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=1))

    @classmethod
    def load(cls, model_dir, device: str = "cpu") -> "Detector":
        model_dir = Path(model_dir)
        settings = read_settings(model_dir)
        detector = cls(settings, device="cpu")
        detector.network.load_state_dict(torch.load(model_dir / PARAMS_FILE, map_location="cpu", weights_only=True))
        detector.network.to(detector.device)
        detector.device = torch.device(device)
        detector.network.to(detector.device).eval()
        return detector


def read_settings(model_dir: Path) -> Settings:
    path = Path(model_dir) / SETTINGS_FILE
    try:
        return Settings(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise DataError(f"{path} is missing: not an Object Detection model directory") from None
    except (ValueError, TypeError) as e:
        raise DataError(f"{path} is not an Object Detection model's settings ({e})") from None
