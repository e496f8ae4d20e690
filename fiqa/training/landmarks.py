"""Training the landmark-regression estimators (``landmarks``, ``landmarks68``).

Target: each training image's recognition utility under a recognizer (SFace for ``landmarks``
since session 14, dlib for ``landmarks68``), the margin
``mean cos(own identity's other images) − max cos(any other identity's image)``. Features:
:func:`fiqa.estimators.landmarks.landmark_features`. Model: a scikit-learn random forest, exported
as flat arrays (:func:`export_forest`) for :class:`fiqa.estimators.landmarks.Forest`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score

from ..crop import align
from ..estimators.landmarks import feature_names, landmark_features, procrustes
from ..evaluation.features import FeatureCache, cached_faces, compute_features, embedding_column
from ..faces import Faces
from ..imageio import LoadedImage, read_image
from ..pipeline import Scorer
from .data import DEFAULT_DATA, training_images

REJECT_BELOW = 0.0  # utility threshold: an image closer to a stranger than to its own kind


def recognition_utility(embeddings: np.ndarray, identities: np.ndarray,
                        gallery: np.ndarray | None = None,
                        gallery_identities: np.ndarray | None = None,
                        sources: np.ndarray | None = None, block: int = 1024) -> np.ndarray:
    """N×D embeddings + N identity labels → N margins in [−2, 2] (cosine similarities).

    margin = mean similarity to the gallery images of the same identity − the highest similarity
    to a gallery image of another identity. The gallery defaults to the embeddings themselves;
    ``sources`` (N gallery indices, default 0…N−1) names the gallery image each embedding was made
    from, never compared with it. NaN where no other gallery image shares the identity.
    """
    if gallery is None:
        gallery, gallery_identities = embeddings, identities
    sources = np.arange(len(embeddings)) if sources is None else np.asarray(sources)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    gallery_unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    identities, gallery_identities = np.asarray(identities), np.asarray(gallery_identities)
    margin = np.empty(len(unit))
    for start in range(0, len(unit), block):
        rows = slice(start, start + block)
        similarity = unit[rows] @ gallery_unit.T
        same = identities[rows, None] == gallery_identities[None]
        other = ~same
        same[np.arange(len(similarity)), sources[rows]] = False
        count = same.sum(1)
        genuine = np.where(same, similarity, 0).sum(1) / np.maximum(count, 1)
        impostor = np.where(other, similarity, -np.inf).max(1)
        margin[rows] = np.where(count > 0, genuine - impostor, np.nan)
    return margin


def mean_shape(points: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Generalised Procrustes mean of N×K×2 landmarks: K×2, centred, unit Frobenius norm."""
    centred = points - points.mean(1, keepdims=True)
    reference = (centred / np.linalg.norm(centred, axis=(1, 2), keepdims=True)).mean(0)
    reference /= np.linalg.norm(reference)  # unrotated start: upright like the average face
    for _ in range(iterations):
        mean = procrustes(points, reference).mean(0)
        reference = procrustes(mean[None], reference)[0]  # renormalised, rotation kept fixed
    return reference


@dataclass
class LandmarkData:
    """Training rows: landmarks N×K×2, faces (metadata), utility N, identities N, and whether
    each row is a downscaled copy (N bools)."""

    landmarks: np.ndarray
    faces: Faces
    utility: np.ndarray
    identities: np.ndarray
    copied: np.ndarray


def load_training_data(points: int = 5, data: str | Path = DEFAULT_DATA,
                       cache_folder: str | Path = ".fiqa-cache", copies: float = 0.5,
                       seed: int = 0, progress=None, recognizer: str = "sface",
                       sources: tuple[str, ...] = ("celeba",)) -> LandmarkData:
    """The photos of ``sources`` (:func:`fiqa.training.data.training_images`; CelebA alone by
    default: no LFW image, and FIW's crops are pre-aligned, so their geometry says nothing)
    with ``points`` (5 or 68) landmarks per face and its margin under ``recognizer`` as utility,
    plus downscaled copies of a seeded ``copies`` fraction of the images (see
    :func:`write_downscaled_copies`), whose margins are measured against the original images.

    Detections and embeddings come from the feature cache (computed there if missing; the
    copies are keyed by their content too). Faces without an embedding or another image of their
    identity are dropped.
    """
    if points not in (5, 68):
        raise ValueError(f"points must be 5 or 68, not {points}")
    images = training_images(data, sources=sources)
    scorer = Scorer(estimators=(), recognizers=(recognizer,), device="cpu")
    cache = FeatureCache(cache_folder)
    paths, faces, embeddings, found = _detected([p for p, _ in images], scorer, recognizer,
                                                cache, progress)
    identities = np.array([identity for _, identity in images])[found]
    utility = recognition_utility(embeddings, identities)
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(len(paths)) < copies)
    with tempfile.TemporaryDirectory() as folder:
        small = write_downscaled_copies([paths[i] for i in chosen], Path(folder), rng)
        small, small_faces, small_embeddings, kept = _detected(small, scorer, recognizer, cache,
                                                               progress)
        sources = chosen[kept]
        small_utility = recognition_utility(small_embeddings, identities[sources], embeddings,
                                            identities, sources)
        every_face = Faces.concat([faces, small_faces])
        if points == 5:
            landmarks = np.asarray(every_face.landmarks, dtype=np.float64)
        else:
            landmarks = dlib68_landmarks(map(read_image, paths + small), every_face, progress)
    utility = np.concatenate([utility, small_utility])
    usable = np.flatnonzero(np.isfinite(utility))
    return LandmarkData(landmarks[usable], every_face[usable], utility[usable],
                        np.concatenate([identities, identities[sources]])[usable],
                        usable >= len(paths))


def _detected(paths: list[str], scorer: Scorer, recognizer: str, cache: FeatureCache,
              progress=None) -> tuple[list[str], Faces, np.ndarray, np.ndarray]:
    """The paths with a face and an embedding by ``recognizer``, their faces, embeddings and
    indices."""
    embeddings = compute_features(paths, scorer, cache, progress)[0][embedding_column(recognizer)]
    faces = cached_faces(paths, scorer, cache, progress)
    found = np.flatnonzero(np.array([len(f) == 1 for f in faces])
                           & np.isfinite(embeddings).all(1))
    return ([paths[i] for i in found], Faces.concat([faces[i] for i in found]), embeddings[found],
            found)


def write_downscaled_copies(paths: list[str], folder: Path, rng: np.random.Generator,
                            smallest: float = 1 / 8, largest: float = 1 / 2) -> list[str]:
    """Each image shrunk by a log-uniform factor in [``smallest``, ``largest``] (antialiased) and
    written as PNG into ``folder``: small photos of their own, for the resolution variation that
    the 250×250 training photos lack. Returns the copies' paths (same PNG bytes for the same seed,
    so the feature cache recognises them)."""
    factors = np.exp(rng.uniform(np.log(smallest), np.log(largest), len(paths)))
    copies = []
    for i, (path, factor) in enumerate(zip(paths, factors, strict=True)):
        photo = Image.fromarray(read_image(path).pixels)
        size = [max(1, round(side * factor)) for side in photo.size]
        copies.append(str(folder / f"{i:06d}.png"))
        photo.resize(size, Image.Resampling.BILINEAR).save(copies[-1])
    return copies


def dlib68_landmarks(images: Iterable[LoadedImage], faces: Faces, progress=None,
                     batch: int = 64) -> np.ndarray:
    """dlib's 68 landmarks (chip pixels, N×68×2) of each image's face, as ``landmarks68`` finds
    them: on the dlib chip aligned from the face's MTCNN landmarks (original pixels)."""
    from ..estimators.landmarks68 import Landmark68Estimator, dlib68

    predictor, spec = dlib68(), Landmark68Estimator.crop_spec
    task = progress.add_task("dlib 68 landmarks", total=len(faces)) if progress else None
    parts, crops = [], []
    for i, image in enumerate(images):
        pixels = torch.from_numpy(image.pixels).permute(2, 0, 1)
        crops.append(align(pixels, faces.landmarks[i:i + 1] * image.scale, spec))
        if len(crops) == batch or i == len(faces) - 1:
            parts.append(predictor(torch.cat(crops)))
            if progress:
                progress.advance(task, len(crops))
            crops = []
    return np.concatenate(parts) if parts else np.zeros((0, 68, 2))


def export_forest(model: RandomForestRegressor) -> dict[str, torch.Tensor]:
    """A fitted single-output forest → ``forest.*`` tensors for
    :meth:`fiqa.estimators.landmarks.Forest.from_tensors`.

    Thresholds become the largest float32 not above scikit-learn's float64 threshold, so that
    ``x ≤ t`` on float32 features (what scikit-learn compares) decides the same way.
    """
    trees = [estimator.tree_ for estimator in model.estimators_]
    offsets = np.cumsum([0] + [tree.node_count for tree in trees])
    left, right, feature, threshold, value = [], [], [], [], []
    for tree, offset in zip(trees, offsets[:-1], strict=True):
        leaf = tree.children_left < 0
        left.append(np.where(leaf, -1, tree.children_left + offset))
        right.append(np.where(leaf, -1, tree.children_right + offset))
        feature.append(np.where(leaf, 0, tree.feature))
        rounded = tree.threshold.astype(np.float32)
        too_high = rounded.astype(np.float64) > tree.threshold
        threshold.append(np.where(too_high, np.nextafter(rounded, np.float32(-np.inf)), rounded))
        value.append(tree.value[:, 0, 0])
    arrays = {"left": np.concatenate(left).astype(np.int32),
              "right": np.concatenate(right).astype(np.int32),
              "feature": np.concatenate(feature).astype(np.int32),
              "threshold": np.concatenate(threshold).astype(np.float32),
              "value": np.concatenate(value).astype(np.float32),
              "roots": offsets[:-1].astype(np.int32)}
    return {f"forest.{key}": torch.from_numpy(array) for key, array in arrays.items()}


@dataclass
class ForestConfig:
    """scikit-learn RandomForestRegressor settings (max_features: fraction tried per split)."""

    trees: int = 100
    max_depth: int = 12
    min_samples_leaf: int = 5
    max_features: float = 1 / 3
    seed: int = 0

    def forest(self) -> RandomForestRegressor:
        """An unfitted forest with these settings (out-of-bag predictions kept)."""
        return RandomForestRegressor(
            n_estimators=self.trees, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            oob_score=True, random_state=self.seed, n_jobs=1)


def accept_reject_metrics(utility: np.ndarray, predicted: np.ndarray,
                          rejected: np.ndarray) -> dict[str, float]:
    """How well ``rejected`` (N bools) finds the images with utility < :data:`REJECT_BELOW`;
    ``predicted`` (N) gives the threshold-free ROC AUC."""
    reject = utility < REJECT_BELOW
    return {"accuracy": float((reject == rejected).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(reject, rejected)),
            "majority_accuracy": float(max(reject.mean(), 1 - reject.mean())),
            "reject_rate_true": float(reject.mean()),
            "reject_rate_predicted": float(rejected.mean()),
            "roc_auc": float(roc_auc_score(reject, -predicted))}


def best_cut(utility: np.ndarray, predicted: np.ndarray) -> float:
    """The cut c with the highest balanced accuracy of "reject when predicted < c" against
    "utility < REJECT_BELOW" (c among the predictions; ties: the lowest)."""
    reject = utility < REJECT_BELOW
    order = np.argsort(predicted, kind="stable")
    candidates = np.unique(predicted)
    rejected = np.searchsorted(predicted[order], candidates, side="left")  # count below each c
    true_rejects = np.concatenate([[0], np.cumsum(reject[order])])[rejected]
    positives, negatives = reject.sum(), (~reject).sum()
    balanced = (true_rejects / positives + (negatives - (rejected - true_rejects)) / negatives) / 2
    return float(candidates[int(np.argmax(balanced))])


def identity_folds(identities: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """N fold numbers in [0, folds): every image of an identity in the same, seeded, fold."""
    names, index = np.unique(identities, return_inverse=True)
    fold_of_name = np.random.default_rng(seed).permutation(len(names)) % folds
    return fold_of_name[index]


def cross_validate(features: np.ndarray, utility: np.ndarray, identities: np.ndarray,
                   copied: np.ndarray, config: ForestConfig, folds: int = 5) -> dict:
    """Identity-disjoint k-fold evaluation: each fold predicted by a forest fit on the others,
    its reject cut chosen on that forest's out-of-bag predictions (:func:`best_cut`).

    Returns pooled out-of-fold R², Spearman and accept/reject metrics of every row, the same for
    the original photos alone (``copied`` False), and the per-fold Spearman of every row.
    """
    fold = identity_folds(identities, folds, config.seed)
    predicted, rejected, per_fold = np.empty(len(utility)), np.empty(len(utility), bool), []
    for k in range(folds):
        test = fold == k
        model = config.forest().fit(features[~test], utility[~test])
        predicted[test] = model.predict(features[test])
        rejected[test] = predicted[test] < best_cut(utility[~test], model.oob_prediction_)
        per_fold.append(float(spearmanr(utility[test], predicted[test]).statistic))
    report: dict = {"folds": folds, "spearman_per_fold": [round(value, 4) for value in per_fold]}
    for subset, rows in (("all", slice(None)), ("originals", ~copied)):
        report[subset] = {"faces": len(utility[rows]),
                          "r2": float(r2_score(utility[rows], predicted[rows])),
                          "spearman": float(spearmanr(utility[rows], predicted[rows]).statistic),
                          **accept_reject_metrics(utility[rows], predicted[rows], rejected[rows])}
    return report


def train(dataset: LandmarkData, config: ForestConfig, folds: int = 5
          ) -> tuple[dict[str, torch.Tensor], RandomForestRegressor, dict]:
    """Cross-validate by identity (:func:`cross_validate`), then fit the shipped forest on every
    training identity.

    Returns the weights' tensors (``forest.*``, ``mean_shape``, ``fill``, ``range``: the 1st and
    99th percentile of the out-of-bag predictions), the final scikit-learn
    model and a report (counts, held-out metrics, the reject cut, importances).
    """
    reference = mean_shape(dataset.landmarks)
    features = landmark_features(dataset.landmarks, dataset.faces, reference)
    fill = np.nanmedian(features, axis=0)
    features = np.where(np.isfinite(features), features, fill)
    y = dataset.utility
    held_out = cross_validate(features, y, dataset.identities, dataset.copied, config, folds)
    model = config.forest().fit(features, y)
    names = feature_names(dataset.landmarks.shape[1])
    report = {
        "faces": len(y), "downscaled_copies": int(dataset.copied.sum()),
        "identities": int(len(np.unique(dataset.identities))),
        "celeba_faces": int(sum(i.startswith("celeba/") for i in dataset.identities)),
        "lfw_train_faces": int(sum(i.startswith("lfw/") for i in dataset.identities)),
        "utility_percentiles_1_50_99": np.percentile(y, [1, 50, 99]).round(4).tolist(),
        "held_out": held_out, "oob_r2": float(model.oob_score_),
        "cut": best_cut(y, model.oob_prediction_),
        "oob_prediction_percentiles_1_99": np.percentile(model.oob_prediction_, [1, 99])
        .round(4).tolist(),
        "importances": dict(zip(names, model.feature_importances_.round(5).tolist(), strict=True)),
    }
    low, high = np.percentile(model.oob_prediction_, [1, 99])
    tensors = {**export_forest(model), "mean_shape": torch.from_numpy(reference),
               "fill": torch.from_numpy(fill), "range": torch.tensor([low, high])}
    return tensors, model, report
