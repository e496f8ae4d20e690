"""MagFace quality: the magnitude of our MagFace model's embedding (Meng et al., CVPR 2021)."""

from __future__ import annotations

from ..recognizers.magface import MagFace
from . import register
from .embedding_norm import EmbeddingNorm


@register
class MagFaceMagnitude(EmbeddingNorm):
    """‖f‖ of the ``magface`` recognizer's embedding: about 8 (unrecognisable) to 40.

    The 0–100 quality maps [10, 36] linearly: the 1st to 99th percentile of the magnitudes of the
    training views (clean ones have a median of 30).
    """

    name = "magface"
    description = "MagFace embedding magnitude (our dlib-backbone MagFace, trained here)"
    model = MagFace
    score_range = (10.0, 36.0)
