"""Detector confidence as quality: a common FIQA baseline that costs nothing."""

from __future__ import annotations

import numpy as np
import torch

from ..faces import Faces
from . import register
from .base import QualityEstimator


@register
class DetectionConfidence(QualityEstimator):
    """The detector's face probability (MTCNN's O-Net probability, or YuNet's
    sqrt(class × objectness)), as a logit so that near-certain faces still differ.

    Raw score: log(p / (1 − p)) with p clipped to [1e-7, 1 − 1e-7], so in [−16.1, 16.1]; NaN
    for ``--aligned`` inputs, which have no detection. Saturates on clear faces (many ties).
    """

    name = "detection"
    description = "detector confidence (the detector's face probability as a logit); no weights"
    needs = frozenset({"scores"})
    score_range = (-16.1, 16.1)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        p = np.clip(np.asarray(faces.scores, dtype=np.float64), 1e-7, 1 - 1e-7)
        return {"score": np.log(p / (1 - p))}
