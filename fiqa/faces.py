"""Detection metadata of a batch of faces, as estimators receive it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Faces:
    """N faces, all in original image pixels.

    boxes: N×4 (x1, y1, x2, y2); scores: N detection scores in [0, 1] (NaN for ``--aligned``
    inputs); landmarks: N×5×2 (x, y), image-left eye first; image_sizes: N×2 (height, width).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    image_sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: slice | np.ndarray) -> Faces:
        return Faces(
            self.boxes[index], self.scores[index], self.landmarks[index], self.image_sizes[index]
        )

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        """One Faces from many (an empty list gives zero faces)."""
        if not parts:
            return Faces(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)), np.zeros((0, 2)))
        fields = ("boxes", "scores", "landmarks", "image_sizes")
        return Faces(*(np.concatenate([getattr(p, field) for p in parts]) for field in fields))
