"""Recognizability index, learned: a regression head on SFace's backbone predicts the RI.

The RI of Chai et al. (CVPR 2023) combines (i) how far a face's embedding points from the
unrecognisable-identity centre and (ii) how much closer it is to its own identity's prototype than
to the nearest other one. (ii) needs to know who the face is; the head learns to predict the index
from the image alone (``fiqa.training.ri`` gives the exact target; ``scripts/train_ri.py`` trains
it on photo-degraded views of CelebA and FIW, no LFW image).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..faces import Faces
from ..recognizers.sface import HEAD_INPUTS, SFace
from ..weights import load_weights
from . import register
from .base import QualityEstimator


class RIHead(nn.Module):
    """N×1152 SFace head inputs → N predicted RI values (about −3 … 2; higher = better)."""

    def __init__(self, inputs: int = HEAD_INPUTS, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)[:, 0]


@register
class RIRegression(QualityEstimator):
    """Predicted recognizability index of SFace's embedding; the 0–100 quality spans the 1st to
    99th percentile of the index on the training views."""

    name = "ri"
    description = "recognizability index (Chai et al. 2023) regressed on SFace features; ours"
    crop_spec = SFace.crop_spec
    score_range = (-3.0, 2.0)
    weights = ("sface", "ri_head")
    backbone = "sface"
    variant = "head"  # ri:<head>

    def __init__(self, device: str | torch.device = "auto", head: str = "ri_head",
                 precision: str = "fp32") -> None:
        """head: the weights of the regression head (``ri_head``; another name in
        weights/manifest.json, e.g. a head trained without one degradation family, makes an
        estimator named ``ri:<head>``)."""
        super().__init__(device, precision)
        if head != "ri_head":
            self.name, self.weights = f"ri:{head}", ("sface", head)
        stored = load_weights(head)
        self.head = RIHead()
        self.head.load_state_dict({k[5:]: v for k, v in stored.items() if k.startswith("head.")})
        self.score_range = tuple(stored["range"].tolist())
        self.head.to(self.device).eval()

    def network_score(self, crops: torch.Tensor) -> torch.Tensor:
        features = self.shared.features(crops)
        with torch.inference_mode():
            return self.head(features)

    def measure_features(self, features: torch.Tensor,
                         faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": self.head(features).cpu().numpy()}
