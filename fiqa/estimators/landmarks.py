"""Landmark-regression quality: facial-landmark geometry → a random forest's predicted utility.

After "A Lightweight Face Quality Assessment Framework to Improve Face Verification Performance in
Real-Time Screening Applications" (2025): no recognition forward pass, only the detector's output.
The forest is trained by ``scripts/train_landmarks.py`` (see docs/landmarks.md) and stored as plain
arrays; inference is a vectorised tree traversal in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from ..faces import Faces
from ..pose import head_pose
from ..weights import load_weights
from . import register
from .base import QualityEstimator

CONTEXT_FEATURES = ("yaw", "pitch", "roll", "log2_inter_eye_px", "box_to_image", "det_logit")


def procrustes(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """N×K×2 landmarks → N×K×2 shapes without translation, scale and rotation.

    Each shape is centred, scaled to unit Frobenius norm and rotated (no reflection) onto
    ``reference`` (K×2, itself centred and of unit norm): ordinary Procrustes superimposition.
    """
    points = np.asarray(points, dtype=np.float64)
    centred = points - points.mean(1, keepdims=True)
    centred /= np.maximum(np.linalg.norm(centred, axis=(1, 2), keepdims=True), 1e-12)
    u, _, vt = np.linalg.svd(np.einsum("nki,kj->nij", centred, reference))  # N×2×2
    u[:, :, 1] *= np.sign(np.linalg.det(u @ vt))[:, None]  # a rotation, never a reflection
    return centred @ (u @ vt)


def feature_names(points: int) -> list[str]:
    """Names of the :func:`landmark_features` columns for ``points`` landmarks."""
    coordinates = [f"shape_{i}_{axis}" for i in range(points) for axis in "xy"]
    residuals = [f"residual_{i}" for i in range(points)]
    return [*coordinates, *residuals, "procrustes_distance", *CONTEXT_FEATURES]


def landmark_features(points: np.ndarray, faces: Faces, reference: np.ndarray) -> np.ndarray:
    """N×K×2 landmarks (any pixel frame) + detection metadata → N×(3K + 7) features.

    Columns (see :func:`feature_names`): the Procrustes-normalised shape (2K), each point's distance
    to ``reference`` (K), the Procrustes distance (1), then from ``faces``: yaw, pitch, roll
    (degrees, five-point pose fit), log2 of the inter-eye distance in original pixels, the square
    root of box area over image area, the detector's logit (NaN when it has no score).
    """
    shapes = procrustes(points, reference)
    residual = np.linalg.norm(shapes - reference, axis=2)
    five = np.asarray(faces.landmarks, dtype=np.float64)
    inter_eye = np.linalg.norm(five[:, 1] - five[:, 0], axis=1)
    boxes = np.asarray(faces.boxes, dtype=np.float64)
    box_area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    image_area = np.prod(np.asarray(faces.image_sizes, dtype=np.float64), axis=1)
    p = np.clip(np.asarray(faces.scores, dtype=np.float64), 1e-7, 1 - 1e-7)
    context = np.column_stack([head_pose(five, faces.detector),
                               np.log2(np.maximum(inter_eye, 1e-3)),
                               np.sqrt(box_area / np.maximum(image_area, 1)), np.log(p / (1 - p))])
    return np.column_stack([shapes.reshape(len(shapes), 2 * reference.shape[0]), residual,
                            np.linalg.norm(residual, axis=1), context])


@dataclass(frozen=True)
class Forest:
    """A regression forest as flat arrays (no pickle): the mean over trees of each tree's leaf.

    Node arrays, every tree's nodes concatenated: ``left``/``right`` (global child indices, −1 at
    leaves), ``feature``, ``threshold`` (float32, a sample goes left when its float32 feature is
    ≤ threshold, as in scikit-learn), ``value`` (leaf prediction); ``roots``: each tree's root.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Forest:
        """A forest from the ``forest.*`` tensors of a weights file."""
        return cls(*(tensors[f"forest.{key}"].numpy()
                     for key in ("left", "right", "feature", "threshold", "value", "roots")))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """N×F features (finite) → N predictions (float64)."""
        x = np.asarray(features, dtype=np.float32)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()  # N×T
        active = self.left[node] >= 0
        while active.any():
            goes_left = x[rows, self.feature[node]] <= self.threshold[node]
            child = np.where(goes_left, self.left[node], self.right[node])
            node = np.where(active, child, node)
            active = self.left[node] >= 0
        return self.value[node].astype(np.float64).mean(1)


@dataclass(frozen=True)
class LandmarkModel:
    """A trained landmark forest: reference (K×2 mean shape), fill (F training medians used for
    non-finite features), the forest, and the range of its predictions (1st and 99th percentile
    of the out-of-bag predictions; None in forests made before it was stored)."""

    reference: np.ndarray
    fill: np.ndarray
    forest: Forest
    score_range: tuple[float, float] | None = None

    def predict(self, landmarks: np.ndarray, faces: Faces) -> tuple[np.ndarray, np.ndarray]:
        """N×K×2 landmarks + metadata → N predicted utilities and the N×F features used."""
        features = landmark_features(landmarks, faces, self.reference)
        features = np.where(np.isfinite(features), features, self.fill)
        return self.forest.predict(features), features


@cache
def load_model(name: str) -> LandmarkModel:
    """The :class:`LandmarkModel` of weights ``name`` (loaded and verified once)."""
    tensors = load_weights(name)
    score_range = tuple(tensors["range"].tolist()) if "range" in tensors else None
    return LandmarkModel(tensors["mean_shape"].numpy(), tensors["fill"].numpy(),
                         Forest.from_tensors(tensors), score_range)


@register
class LandmarkEstimator(QualityEstimator):
    """The detector's five landmarks and detection metadata → predicted recognition utility.

    Features: :func:`landmark_features` (Procrustes shape against the training mean shape, its
    residual, head pose, inter-eye pixels, box-to-image size, detector logit); non-finite values
    (e.g. no detector score for ``--aligned`` inputs) are replaced by the training median.
    Raw score: the forest's predicted SFace margin (mean cosine similarity to the same identity
    minus the highest to any other, on CelebA photos and downscaled copies; no LFW image); the
    1st to 99th percentile of its out-of-bag predictions (about −0.12 to 0.24, stored with the
    forest) maps linearly to quality 0–100. Component: procrustes_distance (0 = the mean shape).
    """

    name = "landmarks"
    description = ("random forest on five-landmark geometry (trained on YuNet's), pose, face size "
                   "and detector confidence; predicts the SFace margin")
    needs = frozenset({"boxes", "scores", "landmarks", "image_sizes"})
    score_range = (-0.03, 0.03)  # forests that store no range (landmarks68_rf: dlib margins)
    components = ("procrustes_distance",)
    weights = ("landmarks_rf",)
    points = 5  # landmarks per face the forest reads
    variant = "forest"  # landmarks:<forest>

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32",
                 forest: str | None = None) -> None:
        """forest: the weights of another forest (a name in weights/manifest.json, e.g. one
        trained by ``scripts/train_landmarks.py --name``), making an estimator named
        ``landmarks:<forest>``."""
        super().__init__(device, precision)
        if forest is not None and forest != self.weights[0]:
            self.name, self.weights = f"{self.name}:{forest}", (forest,)
        model = load_model(self.weights[0])  # fail now if missing; kept out of vars(), the key
        if len(model.reference) != self.points:
            raise ValueError(f"forest {self.weights[0]} reads {len(model.reference)} landmarks, "
                             f"{self.name} gives {self.points}")
        if model.score_range is not None:
            self.score_range = model.score_range

    def landmarks(self, crops: torch.Tensor, faces: Faces) -> np.ndarray:
        """The N×K×2 landmarks whose shape is scored: here the detector's five, original pixels."""
        return np.asarray(faces.landmarks, dtype=np.float64)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        landmarks = self.landmarks(crops, faces)
        score, features = load_model(self.weights[0]).predict(landmarks, faces)
        distance = features[:, feature_names(landmarks.shape[1]).index("procrustes_distance")]
        return {"score": score, "procrustes_distance": distance}
