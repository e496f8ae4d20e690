"""Our MagFace model: dlib's ResNet backbone with a MagFace-trained embedding head, 512-d.

The embedding's direction identifies the person and its magnitude ‖f‖ (about 10–60) says how
recognisable the face is (Meng et al., "MagFace: A Universal Representation for Face Recognition
and Quality Assessment", CVPR 2021). Trained here by ``scripts/train_magface.py`` on CelebA and
the LFW people outside View 2 (see ``docs/magface.md``); the quality side is the ``magface``
estimator.
"""

from __future__ import annotations

import torch
from torch import nn

from ..weights import load_weights
from . import register
from .base import Recognizer
from .dlib_resnet import DlibResNet, DlibResNetModule

EMBEDDING_DIM = 512


class MagFaceHead(nn.Module):
    """N×256 pooled backbone features → N×512 embeddings whose norm carries quality."""

    def __init__(self, inputs: int = 256, hidden: int = 512, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.PReLU(hidden),
            nn.Linear(hidden, dim), nn.BatchNorm1d(dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class MagFaceNet(nn.Module):
    """N×3×150×150 input normalised like dlib's → N×512 MagFace embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = DlibResNetModule()
        self.head = MagFaceHead()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.pooled(x))


@register
class MagFace(Recognizer):
    """MagFace embeddings (512-d) on dlib-style 150×150 chips; ‖embedding‖ is the face's quality."""

    name = "magface"
    description = "MagFace head on dlib's ResNet, trained here (CelebA + LFW outside View 2), 512-d"
    crop_spec = DlibResNet.crop_spec
    dim = EMBEDDING_DIM
    weights = ("dlib_resnet", "magface")

    def build(self) -> MagFaceNet:
        """``magface`` holds the head, plus the backbone where it was fine-tuned (else dlib's)."""
        module = MagFaceNet()
        stored = load_weights("magface")
        if not any(key.startswith("backbone.") for key in stored):
            stored |= {f"backbone.{k}": v for k, v in load_weights("dlib_resnet").items()}
        module.load_state_dict(stored)
        return module.to(memory_format=torch.channels_last)
