"""Training views degraded as whole photographs, through the frozen SFace backbone, cached.

Every training photo gives its clean view and ``views`` views degraded by
:func:`~fiqa.training.photo_degrade.training_recipe` at the photo's own resolution. A degraded
photo is detected again (the default detector, largest face) and aligned like any photo a user
scores, so blur, noise and JPEG blocks land wherever the photo puts them and a lost face stays
lost. Aligned crops (FIW, :func:`~fiqa.training.data.is_aligned`) are degraded as the photos they
are and keep the template landmarks (there is nothing around them to detect in).

Each kept view stores SFace's :meth:`~fiqa.recognizers.sface.SFaceNet.head_inputs` (1152 values,
float16): the quality heads train on them in seconds an epoch. Its aligned 112×112 crop (uint8,
37 KB) is kept beside them, for models that read pixels (the face ViT). Rendering costs about
60 ms a view on one core; it runs in worker processes, in chunks saved as they finish, so a
stopped run resumes where it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from ..crop import DEFAULT_CROP, align
from ..evaluation.edc import normalized_fnmr_pauc
from ..evaluation.features import FeatureCache, cached_faces
from ..evaluation.protocols import genuine_pairs
from ..imageio import ImageReadError, LoadedImage, read_image
from ..pipeline import Scorer
from ..recognizers.sface import HEAD_INPUTS, POOLED_DIM, SFace, SFaceNet
from ..weights import load_weights
from .data import is_aligned
from .photo_degrade import FAMILIES, FaceGeometry, training_recipe

CHUNK = 200  # photos per saved chunk
FAMILY_BITS = {name: 1 << i for i, name in enumerate(FAMILIES)}


@dataclass
class PhotoViews:
    """Kept views of ``images`` (a training list of (path, identity)).

    features: V×1152 float16 SFace head inputs; image: V indices into ``images``; view: V view
    numbers (0 = the clean photo); families: V bitmasks of the families applied
    (:data:`FAMILY_BITS`); lost: per image, how many degraded views lost the face; crops:
    V×3×112×112 uint8 SFace crops, when asked for.
    """

    images: list[tuple[str, str]]
    features: torch.Tensor
    image: np.ndarray
    view: np.ndarray
    families: np.ndarray
    lost: np.ndarray
    crops: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.image)

    @property
    def identities(self) -> list[str]:
        """Sorted identity names; :attr:`labels` index them."""
        return sorted({identity for _, identity in self.images})

    @property
    def labels(self) -> np.ndarray:
        """V identity labels, 0…C−1."""
        label_of = {name: i for i, name in enumerate(self.identities)}
        per_image = np.array([label_of[identity] for _, identity in self.images])
        return per_image[self.image]

    @property
    def sources(self) -> np.ndarray:
        """V dataset names (``celeba``, ``fiw``, ``lfw``): the prefix of each view's identity."""
        per_image = np.array([identity.split("/")[0] for _, identity in self.images])
        return per_image[self.image]

    @property
    def embeddings(self) -> torch.Tensor:
        """V×128 float32: SFace's unnormalised embedding of every view."""
        return self.features[:, POOLED_DIM:].float()

    def held_out(self, count: int, seed: int = 0) -> np.ndarray:
        """V bools: the views of ``count`` identities drawn with ``seed``, to keep out of training
        for development checks (the same draw for every trainer)."""
        drawn = np.random.default_rng(seed).choice(len(self.identities), size=count, replace=False)
        return np.isin(self.labels, drawn)

    def clean_partners(self, rows: np.ndarray) -> np.ndarray:
        """For the views where the V bools ``rows`` are true, in order: the position among them
        of the same photo's clean view (a clean view's own), or −1 where it is not among them."""
        photo, clean = self.image[rows], self.view[rows] == 0
        position = np.full(len(self.images), -1)
        position[photo[clean]] = np.flatnonzero(clean)
        return position[photo]

    def has_family(self, family: str) -> np.ndarray:
        """V bools: the views ``family`` degraded."""
        return (self.families & FAMILY_BITS[family]) > 0

    def genuine_paucs(self, index: np.ndarray, score: np.ndarray,
                      units: dict[str, torch.Tensor], seed: int = 0) -> dict[str, float]:
        """Normalised pAUC (FNMR 10 %, discard ≤ 0.2) of ``score`` (len(index) qualities of the
        views ``index``) over their genuine comparisons, judged by each of ``units`` (name →
        len(index)×D unit embeddings of the same views), on the clean views (``clean``, as LFW's
        set (a)) and on one view a photo, a seeded half of the photos degraded (``mixed``, as set
        (b)) → ``{"clean_<name>": …, "mixed_<name>": …}``."""
        clean = self.view[index] == 0
        rng = np.random.default_rng(seed)
        photo, order = self.image[index], rng.permutation(len(index))
        degrade = rng.random(len(self.images)) < 0.5
        wanted = order[(degrade[photo] != clean)[order]]  # a clean view or a degraded one, as drawn
        subsets = {"clean": np.flatnonzero(clean),
                   "mixed": np.sort(wanted[np.unique(photo[wanted], return_index=True)[1]])}
        labels = self.labels[index]
        report = {}
        for subset, rows in subsets.items():
            pairs = rows[genuine_pairs(labels[rows])]
            quality = np.minimum(score[pairs[:, 0]], score[pairs[:, 1]])
            for name, unit in units.items():
                genuine = (unit[pairs[:, 0]] * unit[pairs[:, 1]]).sum(1).numpy()
                report[f"{subset}_{name}"] = normalized_fnmr_pauc(genuine, quality)
        return report


def with_clean_partners(batch: torch.Tensor, partners: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``batch`` of a training set whose row ``i`` has its clean view at ``partners[i]``
    (:meth:`PhotoViews.clean_partners`) → (the rows followed by the clean views of the degraded
    ones among them, P×2 positions in those rows of each degraded view and its clean view)."""
    degraded = ((partners[batch] >= 0) & (partners[batch] != batch)).nonzero()[:, 0]
    rows = torch.cat([batch, partners[batch[degraded]]])
    return rows, torch.stack([degraded, len(batch) + torch.arange(len(degraded))], dim=1)


def ranking_loss(scores: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Mean softplus(score of the degraded view − score of its clean view) over the P×2
    ``pairs`` of (:func:`with_clean_partners`): small when each degraded view scores lower."""
    return F.softplus(scores[pairs[:, 0]] - scores[pairs[:, 1]]).mean()


def cached_photo_views(images: list[tuple[str, str]], views: int = 2, seed: int = 0,
                       cache: str | Path = ".fiqa-cache", workers: int = 2,
                       crops: bool = False) -> PhotoViews:
    """The clean and ``views`` degraded views of every image of ``images``, rendered once in
    ``workers`` processes and cached in ``<cache>/train/``, keyed by the recipe, ``views``,
    ``seed`` and the image list. Photos without a face in their clean version are left out.
    With ``crops``, the views' crops too (chunks cached before crops were kept render again)."""
    if not images:
        raise ValueError("no training images")
    recipe = repr(training_recipe())
    key = hashlib.sha1(json.dumps([recipe, views, seed, images]).encode()).hexdigest()[:10]
    folder = Path(cache) / "train" / f"photo-views-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    chunks = range(0, len(images), CHUNK)
    needed = (".npz", ".crops.npy") if crops else (".npz",)
    todo = [start for start in chunks
            if not all((folder / f"{start:06d}{suffix}").is_file() for suffix in needed)]
    if todo:
        geometry = clean_geometry(images, cache)
        jobs = [[(i, *images[i], geometry[i], views, seed)
                 for i in range(start, min(start + CHUNK, len(images)))] for start in todo]
        with Progress() as progress, ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=_start_worker) as pool:
            task = progress.add_task("photo views", total=sum(map(len, jobs)))
            for start, job, result in zip(todo, jobs, pool.map(_render_chunk, jobs), strict=True):
                np.save(folder / f"{start:06d}.partial.npy", result.pop("crops"))
                (folder / f"{start:06d}.partial.npy").replace(folder / f"{start:06d}.crops.npy")
                np.savez(folder / f"{start:06d}.partial.npz", **result)
                (folder / f"{start:06d}.partial.npz").replace(folder / f"{start:06d}.npz")
                progress.advance(task, len(job))
    parts = [np.load(folder / f"{start:06d}.npz") for start in chunks]
    joined = {name: np.concatenate([part[name] for part in parts]) for name in parts[0].files}
    lost = np.zeros(len(images), int)
    np.add.at(lost, joined["lost_image"], 1)
    kept = torch.from_numpy(np.concatenate(
        [np.load(folder / f"{start:06d}.crops.npy") for start in chunks])) if crops else None
    return PhotoViews(images, torch.from_numpy(joined["features"]), joined["image"],
                      joined["view"], joined["families"], lost, kept)


def clean_geometry(images: list[tuple[str, str]], cache: str | Path) -> list:
    """Per image: (landmarks, box) of its largest face in original pixels from the default
    detector (cached), ``"aligned"`` for aligned crops, None where no face was found."""
    photos = [path for path, identity in images if not is_aligned(identity)]
    found = dict(zip(photos, cached_faces(photos, Scorer((), device="cpu"), FeatureCache(cache)),
                     strict=True))
    geometry = []
    for path, identity in images:
        faces = None if is_aligned(identity) else found[path]
        geometry.append("aligned" if faces is None else
                        (faces.landmarks[0], faces.boxes[0]) if len(faces) else None)
    return geometry


_worker: dict = {}


def _start_worker() -> None:
    """One thread per worker process; its own detector and SFace network."""
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    net = SFaceNet()
    net.load_state_dict(load_weights("sface"))
    _worker.update(scorer=Scorer((), device="cpu"), net=net.eval())


def read_photo(path: str) -> LoadedImage | None:
    """The decoded photo at ``path``, or None when it cannot be read."""
    try:
        return read_image(path)
    except ImageReadError:
        return None


def _render_chunk(jobs: list[tuple]) -> dict[str, np.ndarray]:
    """The views of one chunk of photos (see :func:`cached_photo_views`) as arrays."""
    crops, image, view, families, lost = [], [], [], [], []
    for index, path, _identity, geometry, views, seed in jobs:
        if geometry is None:
            continue
        photo = read_photo(path)
        if photo is None:
            continue
        for number in range(views + 1):
            rng = np.random.default_rng([seed, index, number])
            crop, applied = render_view(photo, geometry, rng, _worker["scorer"],
                                        degrade=number > 0)
            if crop is None:
                lost.append(index)
                continue
            crops.append(crop)
            image.append(index)
            view.append(number)
            families.append(sum({FAMILY_BITS[step.family] for step in applied}))
    features = np.zeros((0, HEAD_INPUTS), np.float16)
    pixels = np.zeros((0, 3, SFace.crop_spec.size, SFace.crop_spec.size), np.uint8)
    if crops:
        normalize, net = SFace.crop_spec.normalize, _worker["net"]
        with torch.inference_mode():
            batches = [net.head_inputs(normalize(torch.cat(crops[i:i + 64])))
                       for i in range(0, len(crops), 64)]
        features = torch.cat(batches).half().numpy()
        pixels = torch.cat(crops).numpy()
    return {"features": features, "crops": pixels, "image": np.array(image, int),
            "view": np.array(view, int), "families": np.array(families, int),
            "lost_image": np.array(lost, int)}


def render_view(photo: LoadedImage, geometry, rng: np.random.Generator, scorer: Scorer,
                degrade: bool = True) -> tuple[torch.Tensor | None, list]:
    """One 1×3×112×112 uint8 SFace crop of ``photo`` (None when ``scorer``'s detector loses the
    degraded face) and the degradation steps applied; ``geometry``: its entry of
    :func:`clean_geometry`."""
    pixels, aligned = photo.pixels, geometry == "aligned"
    if aligned:
        height, width = pixels.shape[:2]
        landmarks = DEFAULT_CROP.landmarks() * [width / DEFAULT_CROP.size,
                                                height / DEFAULT_CROP.size]
        face = FaceGeometry(landmarks)
    else:
        face = FaceGeometry(geometry[0] * photo.scale, geometry[1] * photo.scale)
        landmarks = face.landmarks
    applied = []
    if degrade:
        pixels, applied = training_recipe()(pixels, rng, face)
        if not aligned:
            faces, points = scorer.locate([LoadedImage(pixels)])[0]
            if len(faces) == 0:
                return None, applied
            landmarks = points[0]
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
    return align(tensor, landmarks[None], SFace.crop_spec), applied
