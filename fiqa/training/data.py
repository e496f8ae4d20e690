"""Training images whose identities never appear in the evaluation protocol (LFW View 2).

Training set: every CelebA identity of ``../shared/data/celeba`` (298), optionally the 2,066 FIW
people of ``../shared/data/fiw`` (112×112 crops already aligned to the ArcFace template), plus
the LFW people who appear in no View 2 pair (``pairs.txt``) and have at least ``min_images``
images. Evaluation on LFW View 2 therefore only sees identities the models never trained on;
leaving ``lfw`` out of ``sources`` trains with no LFW image at all (the generalisation
benchmark's (a)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..crop import DEFAULT_CROP, CropSpec, align_faces
from ..evaluation.features import FeatureCache, cached_faces
from ..imageio import identity_folders, read_image
from ..pipeline import Scorer
from ..verification import read_lfw_pairs

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def lfw_pair_identities(lfw: str | Path) -> set[str]:
    """The people (folder names) of every LFW View 2 pair."""
    pairs = read_lfw_pairs(Path(lfw) / "pairs.txt", Path(lfw) / "images")
    return {Path(p).parent.name for column in ("path_a", "path_b") for p in pairs[column]}


SOURCES = ("celeba", "fiw", "lfw")
WITHOUT_LFW = ("celeba", "fiw")  # what the heads judged on LFW (magface, ri, vit) train on


def training_images(data: str | Path = DEFAULT_DATA, min_images: int = 2,
                    sources: tuple[str, ...] = ("celeba", "lfw")) -> list[tuple[str, str]]:
    """(path, identity) of every training image of ``sources``: CelebA; FIW; LFW people outside
    View 2 with at least ``min_images`` images. Identities are prefixed with their source
    (``celeba/``, ``fiw/``, ``lfw/``); FIW images are aligned crops (:func:`is_aligned`)."""
    data = Path(data)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; known: {SOURCES}")
    folders = {"celeba": data / "celeba", "fiw": data / "fiw" / "images",
               "lfw": data / "lfw" / "pairs.txt"}
    missing = [str(folders[source]) for source in sources if not folders[source].exists()]
    if missing:
        raise FileNotFoundError(f"missing training data: {', '.join(missing)} (see its README)")
    images = []
    for source in ("celeba", "fiw"):
        if source in sources:
            images += [(str(path), f"{source}/{name}")
                       for name, paths in identity_folders(folders[source]).items()
                       for path in paths]
    if "lfw" in sources:
        excluded = lfw_pair_identities(data / "lfw")
        images += [(str(path), f"lfw/{name}")
                   for name, paths in identity_folders(data / "lfw" / "images").items()
                   if name not in excluded and len(paths) >= min_images for path in paths]
    return images


def is_aligned(identity: str) -> bool:
    """Whether an identity's images are already aligned 112×112 crops (FIW) to use as they are."""
    return identity.startswith("fiw/")


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
    """Decode ``(path, identity)`` images and find their largest face (the default detector,
    cached in ``cache_folder``; aligned crops, :func:`is_aligned`, take the template's
    landmarks); images without a face are dropped."""
    detected = [path for path, identity in images if not is_aligned(identity)]
    found = dict(zip(detected, cached_faces(detected, Scorer(estimators=(), device=device),
                                            FeatureCache(cache_folder), progress), strict=True))
    names = sorted({identity for _, identity in images})
    label_of = {name: i for i, name in enumerate(names)}
    kept, pixels, points = [], [], []
    for path, identity in images:
        if not is_aligned(identity) and len(found[path]) == 0:
            continue
        image = read_image(path)
        if is_aligned(identity):
            height, width = image.pixels.shape[:2]
            landmarks = DEFAULT_CROP.landmarks() * [width / DEFAULT_CROP.size,
                                                    height / DEFAULT_CROP.size]
        else:
            landmarks = found[path].landmarks[0] * image.scale
        kept.append((path, label_of[identity]))
        pixels.append(torch.from_numpy(image.pixels).permute(2, 0, 1).contiguous())
        points.append(landmarks)
    used = sorted({label for _, label in kept})
    relabel = {old: new for new, old in enumerate(used)}
    return FaceSet(pixels, np.stack(points), np.array([relabel[label] for _, label in kept]),
                   [names[old] for old in used], [path for path, _ in kept])
