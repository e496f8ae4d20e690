"""Unrecognisable faces: the views whose embeddings define a recognizer's UI centre.

Deng et al. ("Harnessing Unrecognizable Faces for Improving Face Recognition", 2021) observed that
faces nobody could identify collapse onto one region of a recognizer's embedding space, whoever
they show; Chai et al. (CVPR 2023) measure recognisability against that region's centre.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..crop import CropSpec, align
from ..recognizers import Recognizer
from .data import FaceSet
from .degrade import DEGRADATIONS

# kind → the range of degradation levels that leaves nothing to recognise (see degrade.py)
UNRECOGNISABLE = {
    "resolution": (0.8, 1.0),  # 8–16 px across the crop, then back up
    "blur": (0.8, 1.0),  # σ 5–6 px at 150 px
    "noise": (0.9, 1.0),  # after a blur of level 0.5, so the noise is all that is left
    "occlusion": (0.9, 1.0),  # 54–60 % of the crop, on the face
}
NON_FACE = "non-face"  # a crop of the same image, two to three eye distances away from the face


def unrecognisable_views(faces: FaceSet, index: np.ndarray, spec: CropSpec,
                         rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """One unrecognisable view of each face ``index`` for ``spec``: N×3×S×S uint8, and the kinds
    (chosen uniformly among :data:`UNRECOGNISABLE` and ``non-face``)."""
    kinds = rng.choice([*UNRECOGNISABLE, NON_FACE], size=len(index)).tolist()
    crops = []
    for i, kind in zip(index, kinds, strict=True):
        points = faces.landmarks[i:i + 1]
        if kind == NON_FACE:
            eyes = np.linalg.norm(points[0, 1] - points[0, 0])
            angle = rng.uniform(0, 2 * np.pi)
            points = points + rng.uniform(2, 3) * eyes * np.array([np.cos(angle), np.sin(angle)])
        crop = align(faces.images[i], points, spec)
        if kind == "noise":
            crop = DEGRADATIONS["blur"](crop, 0.5)
        if kind != NON_FACE:
            crop = DEGRADATIONS[kind](crop, rng.uniform(*UNRECOGNISABLE[kind]), rng)
        crops.append(crop)
    return torch.cat(crops), kinds


def ui_centre(recognizer: Recognizer, faces: FaceSet, views: int = 2000, seed: int = 0,
              batch_size: int = 64) -> torch.Tensor:
    """The unit-length mean of ``recognizer``'s normalised embeddings of ``views`` unrecognisable
    views of ``faces`` (drawn with replacement when there are fewer faces): a 1-D tensor."""
    rng = np.random.default_rng(seed)
    index = rng.permutation(np.resize(np.arange(len(faces)), views))
    total = torch.zeros(recognizer.dim)
    for start in range(0, views, batch_size):
        crops, _ = unrecognisable_views(faces, index[start:start + batch_size],
                                        recognizer.crop_spec, rng)
        total += recognizer.embed(crops, normalize=True).sum(0).cpu()
    return F.normalize(total, dim=0)
