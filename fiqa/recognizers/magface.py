"""Our MagFace model: a MagFace-trained magnitude head on the frozen SFace backbone, 128-d.

The embedding's direction identifies the person and its magnitude ‖f‖ says how recognisable the
face is (Meng et al., "MagFace: A Universal Representation for Face Recognition and Quality
Assessment", CVPR 2021). Trained here by ``scripts/train_magface.py`` on views of CelebA and FIW
degraded as whole photographs, with no LFW image (see ``docs/magface.md``); the quality side is
the ``magface`` estimator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..weights import load_weights
from . import register
from .base import Recognizer
from .sface import EMBEDDING_DIM, HEAD_INPUTS, POOLED_DIM, SFace, SFaceNet


class MagFaceHead(nn.Module):
    """N×1152 SFace head inputs → N×128 embeddings: SFace's own direction, scaled to a learned
    magnitude in (low, high) that carries quality. Keeping SFace's direction keeps its
    recognition accuracy, and leaves the head nothing to memorise identities with."""

    def __init__(self, inputs: int = HEAD_INPUTS, hidden: int = 256, low: float = 10.0,
                 high: float = 60.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden),
                                    nn.PReLU(hidden), nn.Linear(hidden, 1))
        self.register_buffer("bounds", torch.tensor([low, high]))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        low, high = self.bounds
        magnitude = low + (high - low) * torch.sigmoid(self.layers(features))
        return F.normalize(features[:, POOLED_DIM:], dim=1) * magnitude


class MagFaceNet(nn.Module):
    """N×3×112×112 input normalised like SFace's → N×128 MagFace embeddings; ``backbone``: an
    SFaceNet to use (a fresh one by default)."""

    def __init__(self, backbone: SFaceNet | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else SFaceNet()
        self.head = MagFaceHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.head_inputs(x))


@register
class MagFace(Recognizer):
    """MagFace embeddings (128-d: SFace's direction, a learned magnitude) on SFace's 112×112
    crops; ‖embedding‖ is the face's quality. The head reads SFace's shared pass, unless the
    weights hold a fine-tuned backbone of their own."""

    name = "magface"
    description = "MagFace magnitude head on SFace, trained here (CelebA + FIW, no LFW), 128-d"
    crop_spec = SFace.crop_spec
    dim = EMBEDDING_DIM
    weights = ("sface", "magface")
    backbone = "sface"

    def build(self) -> MagFaceNet:
        """``magface`` holds the head, plus the backbone where it was fine-tuned (else SFace's
        shared one)."""
        stored = load_weights("magface")
        if any(key.startswith("backbone.") for key in stored):
            self.backbone = None
            module = MagFaceNet()
            module.load_state_dict(stored)
            return module.to(memory_format=torch.channels_last)
        module = MagFaceNet(self.shared.net)
        module.head.load_state_dict({k[5:]: v for k, v in stored.items() if k.startswith("head.")})
        return module

    def embed_features(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if self.backbone is None:
            raise NotImplementedError("these magface weights hold their own fine-tuned backbone: "
                                      "embed crops with embed()")
        with torch.inference_mode():
            embeddings = self.model.head(features)
        return F.normalize(embeddings, dim=1) if normalize else embeddings
