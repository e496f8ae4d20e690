"""Training images whose identities never appear in the evaluation protocol (LFW View 2).

Training set: every CelebA identity of ``../shared/data/celeba`` plus the LFW people who appear in
no View 2 pair (``pairs.txt``) and have at least ``min_images`` images. Evaluation on LFW View 2
therefore only sees identities the models never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..crop import CropSpec, align_faces
from ..evaluation.features import FeatureCache, cached_faces
from ..imageio import identity_folders, read_image
from ..pipeline import Scorer
from ..verification import read_lfw_pairs

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def lfw_pair_identities(lfw: str | Path) -> set[str]:
    """The people (folder names) of every LFW View 2 pair."""
    pairs = read_lfw_pairs(Path(lfw) / "pairs.txt", Path(lfw) / "images")
    return {Path(p).parent.name for column in ("path_a", "path_b") for p in pairs[column]}


def training_images(data: str | Path = DEFAULT_DATA, min_images: int = 2) -> list[tuple[str, str]]:
    """(path, identity) of every training image: CelebA, plus LFW people outside View 2 with at
    least ``min_images`` images. Identities are prefixed ``celeba/`` or ``lfw/``."""
    data = Path(data)
    if not (data / "celeba").is_dir() or not (data / "lfw" / "pairs.txt").is_file():
        raise FileNotFoundError(f"{data} needs celeba/ and lfw/pairs.txt (see its README)")
    images = [(str(path), f"celeba/{name}")
              for name, paths in identity_folders(data / "celeba").items() for path in paths]
    excluded = lfw_pair_identities(data / "lfw")
    images += [(str(path), f"lfw/{name}")
               for name, paths in identity_folders(data / "lfw" / "images").items()
               if name not in excluded and len(paths) >= min_images for path in paths]
    return images


@dataclass
class FaceSet:
    """Decoded training faces: images (list of 3×H×W uint8), landmarks (N×5×2 decoded pixels),
    labels (N ints), identities (names by label), paths."""

    images: list[torch.Tensor]
    landmarks: np.ndarray
    labels: np.ndarray
    identities: list[str]
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def crops(self, index: np.ndarray, spec: CropSpec, jitter: float = 0.0,
              generator: np.random.Generator | None = None) -> torch.Tensor:
        """Faces ``index`` aligned to ``spec`` → N×3×S×S uint8. ``jitter`` perturbs each alignment
        by a random similarity: shift up to ``jitter`` of the eye distance, scale by up to
        1 ± jitter, rotation up to ``50·jitter`` degrees."""
        points = self.landmarks[index].copy()
        if jitter > 0:
            rng = generator or np.random.default_rng()
            points = _jittered(points, jitter, rng)
        return align_faces([self.images[i] for i in index], points, spec)


def celeba_holdout(faces: FaceSet, count: int, seed: int = 0) -> np.ndarray:
    """Labels of ``count`` CelebA identities of ``faces``, a seeded draw, to keep out of training
    for development checks (the same draw for every trainer given the same seed)."""
    celeba = [i for i, name in enumerate(faces.identities) if name.startswith("celeba/")]
    return np.sort(np.random.default_rng(seed).choice(celeba, size=count, replace=False))


def _jittered(points: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """N×5×2 landmarks moved by a random similarity each."""
    n = len(points)
    centre = points.mean(1, keepdims=True)
    eye_distance = np.linalg.norm(points[:, 1] - points[:, 0], axis=1)[:, None, None]
    angle = np.deg2rad(rng.uniform(-50, 50, n) * jitter)
    scale = rng.uniform(1 - jitter, 1 + jitter, n)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    rotation = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # N×2×2
    shift = rng.uniform(-jitter, jitter, (n, 1, 2)) * eye_distance
    return np.einsum("nij,nkj->nki", rotation, points - centre) + centre + shift


def load_faces(images: list[tuple[str, str]], cache_folder: str | Path = ".fiqa-cache",
               device: str = "cpu", progress=None) -> FaceSet:
    """Decode ``(path, identity)`` images and find their largest face (MTCNN, cached in
    ``cache_folder``); images without a face are dropped."""
    paths = [path for path, _ in images]
    faces = cached_faces(paths, Scorer(estimators=(), device=device), FeatureCache(cache_folder),
                         progress)
    names = sorted({identity for _, identity in images})
    label_of = {name: i for i, name in enumerate(names)}
    kept, pixels, points = [], [], []
    for (path, identity), face in zip(images, faces, strict=True):
        if len(face) == 0:
            continue
        image = read_image(path)
        kept.append((path, label_of[identity]))
        pixels.append(torch.from_numpy(image.pixels).permute(2, 0, 1).contiguous())
        points.append(face.landmarks[0] * image.scale)
    used = sorted({label for _, label in kept})
    relabel = {old: new for new, old in enumerate(used)}
    return FaceSet(pixels, np.stack(points), np.array([relabel[label] for _, label in kept]),
                   [names[old] for old in used], [path for path, _ in kept])
