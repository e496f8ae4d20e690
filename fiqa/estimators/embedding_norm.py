"""Quality as the norm of a recognizer's unnormalised embedding.

For MagFace the norm is trained to be quality; for every other recognizer it is the free,
untrained baseline that a learned head on that backbone must beat (``<recognizer>-norm``).
Each score range is the 1st to 99th percentile of the norms of 600 CelebA photos (training-side
data; our detection and alignment). MobileFaceNet has none: its graph ends in an L2
normalisation, so every embedding it returns has norm 1.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..recognizers import Recognizer, recognizer
from ..recognizers.dlib_resnet import DlibResNet
from ..recognizers.face_vit import FaceViTRecognizer
from ..recognizers.faceres import FaceRes
from ..recognizers.mobileface_v3 import MobileFaceV3
from ..recognizers.sface import SFace
from . import register
from .base import EmbeddingEstimator


class EmbeddingNorm(EmbeddingEstimator):
    """‖f‖ of recognizer ``model``'s embedding of each crop; a subclass names the recognizer
    class and takes its crop spec and weights."""

    model: ClassVar[type[Recognizer]]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            cls.crop_spec, cls.weights = cls.model.crop_spec, cls.model.weights

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        super().__init__(device, precision)
        self.recognizer = recognizer(self.model.name, self.device, self.precision)

    def score_of(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.norm(dim=1)


@register
class DlibNorm(EmbeddingNorm):
    """‖f‖ of dlib's 128-d embedding: about 1.2–1.7 on LFW; not trained to mean anything."""

    name = "dlib-norm"
    description = "norm of dlib's unnormalised embedding (naive baseline for MagFace)"
    model = DlibResNet
    score_range = (1.2, 1.7)


@register
class SFaceNorm(EmbeddingNorm):
    """‖f‖ of SFace's 128-d embedding (graph output fc1, before normalisation)."""

    name = "sface-norm"
    description = "norm of SFace's unnormalised embedding (untrained baseline)"
    model = SFace
    score_range = (8.2, 14.5)


@register
class FaceResNorm(EmbeddingNorm):
    """‖f‖ of FaceRes's 1024-d embedding (its global average pool)."""

    name = "faceres-norm"
    description = "norm of FaceRes's unnormalised embedding (untrained baseline)"
    model = FaceRes
    score_range = (6.8, 16.5)


@register
class MobileFaceV3Norm(EmbeddingNorm):
    """‖f‖ of MobileFace V3's 256-d embedding (graph output batchnorm0, unnormalised); its
    range from 600 CelebA photos evenly spaced in sorted order (median 78.4)."""

    name = "mobileface-v3-norm"
    description = "norm of MobileFace V3's unnormalised embedding (untrained baseline)"
    model = MobileFaceV3
    score_range = (58.3, 110.0)


@register
class FaceViTNorm(EmbeddingNorm):
    """‖f‖ of our face ViT's 128-d embedding (the ``vit`` recognizer)."""

    name = "vit-norm"
    description = "norm of our face ViT's unnormalised embedding (untrained baseline)"
    model = FaceViTRecognizer
    score_range = (25.4, 48.3)
