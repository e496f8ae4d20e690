"""Face detectors by name. Each gives, per H×W×3 uint8 RGB image, :class:`~fiqa.mtcnn.Detections`
(boxes, scores, five landmarks in that image's pixels), and its weights carry the same name in
``weights/manifest.json``."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from .mtcnn import Detections

DETECTORS = ("mtcnn", "yunet")
# YuNet by measurement (docs/detection.md): on LFW View 2 every recognizer verifies better on its
# faces than on MTCNN's (sface 99.03 % against 97.08 %, dlib 98.75 % against 96.78 %), it finds
# every LFW face, and it detects 3–4× faster on the CPU.
DEFAULT_DETECTOR = "yunet"


class Detector(Protocol):
    """What the pipeline needs of a detector: ``detect``, and ``trusted_score``, the score from
    which an upright detection is trusted without an orientation retry (fiqa.orientation)."""

    trusted_score: float

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


def create_detector(name: str, device: str | torch.device = "auto") -> Detector:
    """``"mtcnn"`` (our MTCNN port) or ``"yunet"`` (our YuNet port), ready on ``device``."""
    if name == "mtcnn":
        from .mtcnn import MTCNN

        return MTCNN(device=device)
    if name == "yunet":
        from .yunet import YuNet

        return YuNet(device=device)
    raise ValueError(f"unknown detector {name!r}; available: {', '.join(DETECTORS)}")
