"""ATTN-FIQA: quality from the attention logits of a face ViT's last block (Ozgur et al., 2026).

A recognition ViT aligns queries and keys strongly where it can read a face, weakly where it
cannot. The score is the mean, over heads and over all token pairs, of the last block's
pre-softmax logits q·kᵀ/√d_head: one forward pass, no quality labels (our ViT's training ties
this score to its teachers', SFace's and FaceRes's, recognisability of each view, since
distillation alone left it inverted: ``docs/attention.md``). The per-patch map (each patch's
mean logit as a query, over heads and keys) averages to the score and shows where a face is poor
(:meth:`AttentionQuality.explain`, ``fiqa explain``).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..backbones import run_on_crops
from ..crop import check_crops
from ..faces import Faces
from ..recognizers.face_vit import CROP_SPEC, FaceViT, FaceViTRecognizer, load_face_vit
from . import register
from .base import QualityEstimator


@register
class AttentionQuality(QualityEstimator):
    """Mean pre-softmax attention logit of the last block of our face ViT (recognizer ``vit``).

    model: another :class:`~fiqa.recognizers.face_vit.FaceViT` (a module, or a file written by
    ``save_face_vit``) to read instead of ours; its crops are ``CROP_SPEC`` at its input size.
    score_range: raw scores mapped to 0–100 quality; for our model, the 1st to 99th percentile of
    the scores of its training views (``docs/attention.md``); give your own for your model.
    """

    name = "attention"
    description = "ATTN-FIQA: mean last-block attention logit of our face ViT (no quality labels)"
    crop_spec = CROP_SPEC
    score_range = (-2.30, 0.25)  # 1st–99th pct of 2,000 training views (clean median −0.20)
    weights = FaceViTRecognizer.weights

    backbone = "vit"  # ours reads the shared pass (FaceViTTrunk); another model runs its own

    def __init__(self, device: str | torch.device = "auto",
                 model: FaceViT | str | Path | None = None,
                 score_range: tuple[float, float] | None = None,
                 precision: str = "fp32") -> None:
        super().__init__(device, precision)
        if model is None:
            model = self.shared.net
        else:  # not ours: the evaluation cache tells models apart by this
            self.backbone = None
            model = model if isinstance(model, FaceViT) else load_face_vit(model)
            self.fingerprint = hashlib.sha256(b"".join(
                value.detach().cpu().numpy().tobytes() for value in model.state_dict().values()
            )).hexdigest()
        self.model = model.to(self.device).eval()
        if model.shape.size != CROP_SPEC.size:
            self.crop_spec = replace(CROP_SPEC, size=model.shape.size)
        if score_range is not None:
            self.score_range = score_range

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        """N×3×S×S uint8 crops → N×heads×T×T pre-softmax logits of the last block."""
        return run_on_crops(lambda x: self.model.forward_with_logits(x)[1], self.crop_spec, crops,
                            self.device, self.precision)

    def network_score(self, crops: torch.Tensor) -> torch.Tensor:
        return run_on_crops(lambda x: self.model.forward_with_score(x)[1], self.crop_spec, crops,
                            self.device, self.precision)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": self.network_score(crops).cpu().numpy()}

    def measure_features(self, features: torch.Tensor,
                         faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": features[:, -1].cpu().numpy()}

    def explain(self, crops: torch.Tensor) -> np.ndarray:
        """N×3×S×S uint8 crops → N×G×G float32 per-patch maps (G = S / patch; 14 for ours), in
        the score's units: patch (r, c) holds its mean logit as a query over heads and keys, and
        the map's mean is the face's score."""
        check_crops(crops, self.crop_spec, self.name)
        maps = self.logits(crops).mean((1, 3))
        side = self.model.shape.size // self.model.shape.patch
        return maps.reshape(len(crops), side, side).float().cpu().numpy()
