"""Detection metadata of a batch of faces, as estimators receive it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Faces:
    """N faces, all in original image pixels.

    boxes: N×4 (x1, y1, x2, y2); scores: N detection scores in [0, 1] (NaN for ``--aligned``
    inputs); landmarks: N×5×2 (x, y): the subject's right eye, left eye, nose, right and left
    mouth corners (image-left first in an upright face); image_sizes: N×2 (height, width);
    rotations: N clockwise in-plane turns of the face in degrees (0, 90, 180, 270) that
    detection undid (see :mod:`fiqa.orientation`), zeros by default; detector: the name of
    the detector whose landmarks these are (detectors place points differently: :mod:`fiqa.pose`
    keeps a mean face per detector), ``mtcnn`` by default.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    image_sizes: np.ndarray
    rotations: np.ndarray | None = None
    detector: str = "mtcnn"

    def __post_init__(self) -> None:
        if self.rotations is None:
            self.rotations = np.zeros(len(self.scores))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: slice | np.ndarray) -> Faces:
        return Faces(*(getattr(self, name)[index] for name in _ARRAYS), detector=self.detector)

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        """One Faces from many, all of one detector (an empty list gives zero faces)."""
        if not parts:
            return Faces(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)), np.zeros((0, 2)))
        detectors = {p.detector for p in parts if len(p)} or {parts[0].detector}
        if len(detectors) > 1:
            raise ValueError(f"faces of several detectors cannot be joined: {sorted(detectors)}")
        return Faces(*(np.concatenate([getattr(p, name) for p in parts]) for name in _ARRAYS),
                     detector=detectors.pop())


_ARRAYS = [f.name for f in fields(Faces) if f.name != "detector"]
