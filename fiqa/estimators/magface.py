"""MagFace quality: the magnitude of our MagFace model's embedding (Meng et al., CVPR 2021)."""

from __future__ import annotations

from ..recognizers.magface import MagFace
from . import register
from .embedding_norm import EmbeddingNorm


@register
class MagFaceMagnitude(EmbeddingNorm):
    """‖f‖ of the ``magface`` recognizer's embedding: 10 (unrecognisable) to about 25.

    The 0–100 quality maps [10, 25] linearly: the 1st to 99th percentile of the magnitudes of the
    training views (clean ones have a median of 14.5, photo-degraded ones 10.3).
    """

    name = "magface"
    description = "MagFace embedding magnitude (our MagFace head on SFace, trained here)"
    model = MagFace
    score_range = (10.0, 25.0)
