"""Quality as the norm of a recognizer's unnormalised embedding.

For MagFace the norm is trained to be quality; for other recognizers it is the naive baseline
that MagFace must beat (``dlib-norm``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ..faces import Faces
from ..recognizers import recognizer
from ..recognizers.dlib_resnet import DlibResNet
from . import register
from .base import QualityEstimator


class EmbeddingNorm(QualityEstimator):
    """‖f‖ of recognizer ``recognizer_name``'s embedding of each crop (its ``crop_spec``)."""

    recognizer_name: ClassVar[str]

    def __init__(self, device: str | torch.device = "auto") -> None:
        super().__init__(device)
        self.recognizer = recognizer(self.recognizer_name, self.device)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": self.recognizer.embed(crops).norm(dim=1).cpu().numpy()}


@register
class DlibNorm(EmbeddingNorm):
    """‖f‖ of dlib's 128-d embedding: about 1.2–1.7 on LFW; not trained to mean anything."""

    name = "dlib-norm"
    description = "norm of dlib's unnormalised embedding (naive baseline for MagFace)"
    recognizer_name = "dlib"
    crop_spec = DlibResNet.crop_spec
    score_range = (1.2, 1.7)
    weights = DlibResNet.weights
