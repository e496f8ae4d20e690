"""Fused quality: the mean of several estimators' standardised raw scores (``fusion``).

Each member's raw score is standardised by its mean and standard deviation over a fixed reference
set of training photos. The reference is 1,000 CelebA photos and 1,000 FIW crops, with no LFW
image; ``scripts/fit_fusion.py`` stores their raw scores in ``weights/fusion_reference``. The
fused score is the members' mean z. No weight is fitted, so each member counts alike on the scale
of its own spread over clean photos. The default members are ``magface`` and ``attention``, the
two learned estimators that read SFace's stem; ``fusion:<a>+<b>+…`` names others.
"""

from __future__ import annotations

import numpy as np
import torch

from ..crop import DEFAULT_CROP
from ..faces import Faces
from ..weights import load_weights
from . import create, register
from .base import QualityEstimator

REFERENCE = "fusion_reference"
DEFAULT_MEMBERS = "magface+attention"


@register
class Fusion(QualityEstimator):
    """Mean over the ``+``-joined ``members`` of their standardised raw scores.

    Inputs are 112-px ArcFace crops. The raw score is in z units, about −6 … 1.5. The 0–100
    quality spans the fused score's 1st to 99th percentile over the reference photos. Members
    are estimators with reference scores (``scripts/fit_fusion.py``): networks on the same crop
    that read no detection metadata. Within a batch, members that read one backbone share its
    pass.
    """

    name = "fusion"
    description = "mean of standardised scores of several estimators (magface+attention)"
    crop_spec = DEFAULT_CROP
    # the default members' (each instance computes its own from the reference)
    score_range = (-2.09, 1.78)
    weights = ("fusion_reference", "sface", "magface", "face_vit")
    variant = "members"  # fusion:<a>+<b>+…

    def __init__(self, device: str | torch.device = "auto", members: str = DEFAULT_MEMBERS,
                 precision: str = "fp32") -> None:
        super().__init__(device, precision)
        names = members.split("+")
        reference = load_weights(REFERENCE)
        if len(names) < 2 or len(set(names)) < len(names):
            raise ValueError(f"fusion needs two or more different members joined by '+', "
                             f"got {members!r}")
        unknown = [name for name in names if name not in reference]
        if unknown:
            raise ValueError(f"no reference scores for {', '.join(unknown)}: fusion members are "
                             f"{', '.join(sorted(reference))} (more: scripts/fit_fusion.py)")
        self.members = [create(name, self.device, precision=precision) for name in names]
        scores = np.stack([reference[name].double().numpy() for name in names])  # M×R
        self.mean, self.std = scores.mean(axis=1), scores.std(axis=1)
        fused = self.fuse(scores)
        self.score_range = tuple(float(v) for v in np.percentile(fused, [1, 99]))
        self.weights = tuple(dict.fromkeys([REFERENCE, *(w for m in self.members
                                                         for w in m.weights)]))

    def fuse(self, scores: np.ndarray) -> np.ndarray:
        """M×N member raw scores (members in order) → N fused scores."""
        return ((scores - self.mean[:, None]) / self.std[:, None]).mean(axis=0)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        computed: dict = {}  # one pass per backbone for all members
        scores = [member(crops, faces, member.shared.features(crops, computed)
                         if member.backbone is not None else None)["score"]
                  for member in self.members]
        return {"score": self.fuse(np.stack(scores))}

    def network_score(self, crops: torch.Tensor) -> torch.Tensor:
        scores = torch.stack([member.network_score(crops).float() for member in self.members])
        mean, std = (torch.tensor(v, dtype=torch.float32, device=scores.device)[:, None]
                     for v in (self.mean, self.std))
        return ((scores - mean) / std).mean(dim=0)
