"""Where is a face poor? Per-patch quality maps of explainable estimators, as arrays and PNGs.

An estimator is explainable when it has ``explain(crops) → N×G×G`` maps in its score's units
(today: ``attention``). :func:`explain_images` runs detection and alignment like ``fiqa score``
and returns, per image, the aligned crop of its largest face with its map; :func:`overlay` draws
the map over the crop on a fixed colour scale (the estimator's ``score_range``), so good and poor
faces can be compared by colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .detectors import DEFAULT_DETECTOR
from .estimators import create
from .estimators.base import QualityEstimator
from .imageio import ImageReadError, read_image
from .pipeline import Scorer

# Viridis at five stops (dark blue = low, yellow = high), interpolated linearly.
_COLOURS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                    dtype=np.float64)


@dataclass
class Explanation:
    """One image: status (``ok``, ``no_face``, ``unreadable: …``, ``error: …``), the raw score
    and 0–100 quality (NaN unless ok), the aligned crop (S×S×3 uint8) and the map (G×G float32)."""

    path: str
    status: str
    score: float = float("nan")
    quality: float = float("nan")
    crop: np.ndarray | None = None
    heatmap: np.ndarray | None = None


def explainable(estimator: QualityEstimator) -> bool:
    """Whether ``estimator`` gives per-patch maps."""
    return callable(getattr(estimator, "explain", None))


def explain_images(paths: Iterable[str | Path], estimator: str | QualityEstimator = "attention",
                   device: str | torch.device = "auto", detector: str = DEFAULT_DETECTOR
                   ) -> Iterator[Explanation]:
    """The largest face of each image with its score and map, lazily and in order; a bad input
    gets a status instead. ``list(explain_images(["a.jpg"]))[0].heatmap`` is the 14×14 map."""
    if isinstance(estimator, str):
        estimator = create(estimator, device)
    if not explainable(estimator):
        raise ValueError(f"{estimator.name} gives no per-patch map; explainable: attention")
    scorer = Scorer(estimators=[estimator], device=estimator.device, detector=detector)
    return (_explained(str(path), scorer, estimator) for path in paths)


def _explained(path: str, scorer: Scorer, estimator: QualityEstimator) -> Explanation:
    try:
        image = read_image(path, scorer.max_pixels, scorer.max_side)
        (faces, points), = scorer.locate([image])
        if len(faces) == 0:
            return Explanation(path, "no_face")
        crops = scorer.crops([image], [points], estimator.crop_spec)
        heatmap = estimator.explain(crops)[0]
    except ImageReadError as error:
        return Explanation(path, f"unreadable: {error}")
    except Exception as error:  # noqa: BLE001 - one bad image must not end the run
        return Explanation(path, f"error: {type(error).__name__}: {error}")
    score = float(heatmap.mean())
    return Explanation(path, "ok", score, float(estimator.to_quality(score)),
                       crops[0].permute(1, 2, 0).cpu().numpy(), heatmap)


def overlay(crop: np.ndarray, heatmap: np.ndarray, score_range: tuple[float, float],
            alpha: float = 0.5) -> np.ndarray:
    """S×S×3 uint8 crop with G×G ``heatmap`` (raw units, coloured over ``score_range``) blended on
    top, upsampled bilinearly → S×S×3 uint8."""
    size = crop.shape[0]
    low, high = score_range
    grid = torch.from_numpy(np.asarray(heatmap, np.float32))[None, None]
    level = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    position = np.clip((level.numpy() - low) / (high - low), 0, 1) * (len(_COLOURS) - 1)
    below = np.minimum(position.astype(int), len(_COLOURS) - 2)
    fraction = (position - below)[..., None]
    colour = _COLOURS[below] * (1 - fraction) + _COLOURS[below + 1] * fraction
    return np.round(crop * (1 - alpha) + colour * alpha).astype(np.uint8)


def write_explanation(explanation: Explanation, score_range: tuple[float, float],
                      path: str | Path, scale: int = 2) -> Path:
    """PNG of the crop and its overlay side by side, each enlarged ``scale`` times."""
    if explanation.crop is None or explanation.heatmap is None:
        raise ValueError(f"{explanation.path}: nothing to draw ({explanation.status})")
    pair = np.concatenate([explanation.crop,
                           overlay(explanation.crop, explanation.heatmap, score_range)], axis=1)
    picture = Image.fromarray(pair)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
    return Path(path)
