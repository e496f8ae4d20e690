"""Training-free recognisability: the angle between a face's embedding and the UI centre.

The UI centre is where a recognizer puts faces nobody could identify (the normalised mean of its
embeddings of extremely small, blurred, noisy, occluded and non-face crops; see
``fiqa.training.unrecognisable``). The further a face's embedding points from it, the more the
recognizer has to go on: criterion (i) of the recognizability index of Chai et al. (CVPR 2023).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..recognizers import Recognizer
from ..recognizers import recognizer as make_recognizer
from ..weights import load_weights
from . import register
from .base import EmbeddingEstimator

DEFAULT_RECOGNIZER = "dlib"


@register
class RIProximity(EmbeddingEstimator):
    """Degrees between the face's normalised embedding and the recognizer's UI centre.

    recognizer: a name (``dlib`` by default: its centre ranked LFW View 2 better than SFace's,
    docs/ri.md; ``sface``, ``mobilefacenet``, ``faceres``, ``magface``, ``mobileface-v3`` and
    ``vit`` have stored centres too) or any :class:`~fiqa.recognizers.Recognizer`, including
    your own; its name then joins the estimator's (``ri-proximity:sface``: a column of its own).
    For one without a stored centre pass ``centre`` (from
    ``fiqa.training.unrecognisable.ui_centre``) and, optionally, ``angles`` = (angle of
    unrecognisable faces, angle of good faces) for the 0–100 mapping.
    """

    name = "ri-proximity"
    description = "angle to the recognizer's unrecognisable-identity centre (RI criterion i)"
    score_range = (0.0, 90.0)
    weights = ("ri_centres",)
    variant = "recognizer"  # ri-proximity:<recognizer>

    def __init__(self, device: str | torch.device = "auto",
                 recognizer: str | Recognizer = DEFAULT_RECOGNIZER,
                 centre: torch.Tensor | None = None,
                 angles: tuple[float, float] | None = None, precision: str = "fp32") -> None:
        super().__init__(device, precision)
        self.recognizer = (recognizer if isinstance(recognizer, Recognizer)
                           else make_recognizer(recognizer, self.device, self.precision))
        self.crop_spec = self.recognizer.crop_spec
        if self.recognizer.name != DEFAULT_RECOGNIZER:  # its own column: ri-proximity:sface, …
            self.name = f"{self.name}:{self.recognizer.name}"
        if centre is None:
            centre, angles = stored_centre(self.recognizer.name)
        self.centre = torch.as_tensor(centre, dtype=torch.float32).to(self.device)
        if self.centre.shape != (self.recognizer.dim,):
            raise ValueError(f"centre has shape {tuple(self.centre.shape)}, but "
                             f"{self.recognizer.name} embeds in {self.recognizer.dim} dimensions")
        if angles is not None:
            self.score_range = tuple(float(a) for a in angles)

    def score_of(self, embeddings: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(embeddings, dim=1) @ self.centre
        return torch.arccos(cosine.clamp(-1, 1)) * (180 / math.pi)  # ONNX has no rad2deg


def stored_centre(name: str) -> tuple[torch.Tensor, tuple[float, float]]:
    """The UI centre of recognizer ``name`` and its (unrecognisable, good) angles, from
    ``weights/ri_centres.safetensors`` (made by ``scripts/train_ri.py``)."""
    stored = load_weights("ri_centres")
    if f"{name}.centre" not in stored:
        known = sorted(key.split(".")[0] for key in stored if key.endswith(".centre"))
        raise ValueError(f"no stored UI centre for recognizer {name!r} (stored: {known}); compute "
                         "one with fiqa.training.unrecognisable.ui_centre(recognizer, faces) and "
                         "pass it as centre=")
    low, high = stored[f"{name}.angles"].tolist()
    return stored[f"{name}.centre"], (low, high)
