"""Faces turned in the image plane: detect them upright by trying the photo turned by 90°.

Detectors are trained on upright faces. On a photo turned by 90°, 180° or 270° (without an EXIF
tag saying so) MTCNN finds nothing or, worse, a face with confident but wrong landmarks laid out
as if upright. So when the upright pass finds no face, or its best face has an implausible
layout or a detection score below the detector's ``trusted_score``, the photo is detected again
turned by 90°, 180° and 270°. The orientation whose best plausible face scores highest wins (a
turn must beat a plausible upright face by :data:`TURN_MARGIN`); its boxes and landmarks are
mapped back to the photo's own pixels, so alignment turns the face upright. Photos whose
upright detection is confident cost nothing extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .mtcnn import Detections

if TYPE_CHECKING:
    from .detectors import Detector

MAX_ROLL = 45.0  # degrees: eye line steeper than this in the detector's frame is implausible
# A turn replaces a plausible upright face only when its face scores this much higher. YuNet on
# LFW: the true orientation of a turned photo beats every other by ≥ 0.023 (200 photos × 3
# turns); upright photos whose 180° turn scored higher did so by ≤ 0.014 (3 of 13,233).
TURN_MARGIN = 0.02


def plausible(landmarks: np.ndarray) -> np.ndarray:
    """K×5×2 landmarks → K booleans: eye line within ±MAX_ROLL° and the mouth below the eyes."""
    eyes = landmarks[:, 1] - landmarks[:, 0]
    down = landmarks[:, 3:].mean(1) - landmarks[:, :2].mean(1)
    roll = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
    return (np.abs(roll) <= MAX_ROLL) & (eyes[:, 0] * down[:, 1] - eyes[:, 1] * down[:, 0] > 0)


def confident(found: Detections, trusted_score: float) -> bool:
    """Whether an upright detection needs no retry: a best face scoring at least
    ``trusted_score`` with a plausible layout."""
    return len(found.scores) > 0 and bool(found.scores[0] >= trusted_score) and \
        bool(plausible(found.landmarks[:1])[0])


def unrotate(points: np.ndarray, turns: int, height: int, width: int) -> np.ndarray:
    """…×2 (x, y) points in the image turned ``turns`` × 90° counter-clockwise (``np.rot90``)
    → the same points in the original ``height`` × ``width`` image."""
    sizes = [(height, width) if step % 2 == 0 else (width, height) for step in range(turns)]
    points = np.asarray(points, np.float32).copy()
    for _, before_width in reversed(sizes):  # undo one turn: (x', y') → (w − y', x')
        points = np.stack([before_width - points[..., 1], points[..., 0]], axis=-1)
    return points


def detect_upright(detector: Detector, images: Sequence[np.ndarray]
                   ) -> list[tuple[Detections, int]]:
    """Per H×W×3 image: its detections in its own pixels and the clockwise turn of the face in
    degrees (0, 90, 180 or 270) that was undone to find it."""
    results = [(found, 0) for found in detector.detect(list(images))]
    retry = [i for i, (found, _) in enumerate(results)
             if not confident(found, detector.trusted_score)]
    if not retry:
        return results
    turned = [np.ascontiguousarray(np.rot90(images[i], turns)) for i in retry
              for turns in (1, 2, 3)]
    candidates = detector.detect(turned)
    for n, i in enumerate(retry):
        upright = _best_score(results[i][0])
        bar = upright + TURN_MARGIN if upright >= 0 else upright  # what a turn must beat
        height, width = images[i].shape[:2]
        for turns, found in zip((1, 2, 3), candidates[3 * n:3 * n + 3], strict=True):
            score = _best_score(found)
            if score > bar:
                corners = unrotate(found.boxes.reshape(-1, 2, 2), turns, height, width)
                boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
                landmarks = unrotate(found.landmarks, turns, height, width)
                results[i], bar = (Detections(boxes, found.scores, landmarks), 90 * turns), score
    return results


def _best_score(found: Detections) -> float:
    """The score of the best plausible face (−1 when there is none)."""
    ok = plausible(found.landmarks) if len(found.scores) else np.zeros(0, bool)
    return float(found.scores[ok].max()) if ok.any() else -1.0
