"""One-to-one verification with a quality gate: compare two faces only when both are good enough.

``Verifier().verify(a, b)`` embeds the largest face of each image, scores its quality and decides
``"match"``, ``"no match"`` or ``"rejected"`` (a face missing, unreadable, or below
``min_quality``), with a reason a person can act on. With ``alignment`` the cosine is aligned to
each face's local context first (IDA, :mod:`fiqa.score_alignment`). :func:`min_quality_for`
picks ``min_quality`` from evaluation data with the EDC machinery of :mod:`fiqa.evaluation.edc`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .detectors import DEFAULT_DETECTOR
from .evaluation.edc import edc
from .imageio import ImageReadError, LoadedImage, read_image
from .pipeline import Scorer
from .score_alignment import aligned, discrepancy_model

# Cosine thresholds at FMR 1e-3 over the impostor pairs among the 7,701 LFW View 2 pair images
# (every two images of different people: 29.6 million pairs, faces from the default detector,
# YuNet), measured on cached embeddings by `python benchmarks/enrollment.py thresholds`; the FNMR
# of the 3,000 View 2 genuine pairs there is 2.1 % (sface), 8.1 % (vit), 8.7 % (dlib), 47 %
# (faceres), 51 % (mobileface-v3); see benchmarks/results/enrollment_thresholds.json and
# docs/enrollment.md. magface embeds in SFace's directions (only the magnitude is its own), so
# its cosines, and threshold, are SFace's. mobilefacenet has none: at FMR 1e-3 it rejects 99 %
# of genuine pairs.
DLIB_THRESHOLD = 0.9265
FACERES_THRESHOLD = 0.7564
SFACE_THRESHOLD = 0.3581
MAGFACE_THRESHOLD = SFACE_THRESHOLD
VIT_THRESHOLD = 0.3113
MOBILEFACE_V3_THRESHOLD = 0.373
DEFAULT_THRESHOLDS = {"dlib": DLIB_THRESHOLD, "faceres": FACERES_THRESHOLD,
                      "magface": MAGFACE_THRESHOLD, "mobileface-v3": MOBILEFACE_V3_THRESHOLD,
                      "sface": SFACE_THRESHOLD, "vit": VIT_THRESHOLD}
# IDA-SSE score thresholds at FMR 1e-3 on LFW View 2 (its genuine pairs and 1,000,000 sampled
# impostor pairs of its images), by `python benchmarks/alignment.py`:
# benchmarks/results/alignment.json, docs/alignment.md. IDA-DAO has none: its scores depend on
# the cohort (a gallery of templates is not our cohort of images), so it needs a threshold.
ALIGNED_THRESHOLDS = {("ida-sse", "sface"): 0.0586, ("ida-sse", "dlib"): 0.0221}

Image = str | Path | np.ndarray  # a path, or an H×W×3 uint8 RGB array


@dataclass
class Sample:
    """The largest face of one image: embedding (D float32, unit length; None without a face),
    quality (0–100; NaN without a face) and status (``ok``, ``no_face``, ``unreadable: …``,
    ``error: …``)."""

    embedding: np.ndarray | None
    quality: float
    status: str


class Encoder:
    """Images → one :class:`Sample` each, with one recognizer and one quality estimator."""

    def __init__(self, recognizer: str = "sface", estimator: str = "magface",
                 device: str | torch.device = "auto", batch_size: int = 32,
                 detector: str = DEFAULT_DETECTOR) -> None:
        self.scorer = Scorer([estimator], [recognizer], device, batch_size, detector=detector)
        self.estimator, self.recognizer = self.scorer.estimators[0], self.scorer.recognizers[0]

    def encode(self, images: Sequence[Image]) -> list[Sample]:
        """The samples of ``images``, in order; a bad image gets a status, never an exception."""
        batch = []
        for i, image in enumerate(images):
            try:
                batch.append((f"<image {i}>", _loaded(image)))
            except ImageReadError as error:
                batch.append((f"<image {i}>", f"unreadable: {error}"))
        samples = []
        for start in range(0, len(batch), self.scorer.batch_size):
            part = batch[start:start + self.scorer.batch_size]
            samples += [self._sample(rows[0]) for rows in self.scorer.rows_of_batch(part)]
        return samples

    def _sample(self, row: dict) -> Sample:
        if row["status"] != "ok":
            return Sample(None, math.nan, row["status"])
        vector = np.array([row[f"{self.recognizer.name}.{i}"] for i in range(self.recognizer.dim)],
                          np.float32)
        return Sample(vector / np.linalg.norm(vector), float(row[f"{self.estimator.name}.quality"]),
                      "ok")


def _loaded(image: Image) -> LoadedImage:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageReadError(f"an array must be H×W×3 uint8 RGB, got {image.dtype} "
                                 f"{image.shape}")
        return LoadedImage(np.ascontiguousarray(image))
    return read_image(image)


def default_threshold(recognizer: str, alignment: str | None = None) -> float:
    """The stored threshold of ``recognizer``'s cosines, or of its aligned scores (ValueError
    for one without a default)."""
    if alignment is not None:
        if (alignment, recognizer) not in ALIGNED_THRESHOLDS:
            raise ValueError(f"no default threshold for {alignment} scores of {recognizer!r} "
                             f"(known: {sorted(ALIGNED_THRESHOLDS)}); give one (threshold=, "
                             "--threshold; an ida-dao threshold depends on the cohort: "
                             "docs/alignment.md)")
        return ALIGNED_THRESHOLDS[alignment, recognizer]
    if recognizer not in DEFAULT_THRESHOLDS:
        raise ValueError(f"no default threshold for recognizer {recognizer!r} (known: "
                         f"{sorted(DEFAULT_THRESHOLDS)}); give one (threshold=, --threshold)")
    return DEFAULT_THRESHOLDS[recognizer]


def gate(sample: Sample, label: str, min_quality: float | None) -> str | None:
    """Why ``sample`` cannot be compared (``label`` names it in the reason), or None if it can."""
    if sample.status == "no_face":
        return f"no face in {label}"
    if sample.status != "ok":
        return f"{label} {sample.status}"
    if min_quality is not None and sample.quality < min_quality:
        return f"{label} quality {sample.quality:.0f} < {min_quality:g}: recapture"
    return None


@dataclass
class Verification:
    """decision: ``match``, ``no match`` or ``rejected``; similarity: cosine (NaN without both
    faces); quality_a, quality_b: 0–100 (NaN without a face); threshold: the score at or above
    which faces match; reason: why, in words; score: what is compared with the threshold (the
    cosine, or the aligned score with an alignment)."""

    decision: str
    similarity: float
    quality_a: float
    quality_b: float
    threshold: float
    reason: str
    score: float = math.nan


class Verifier:
    """Is it the same person? ``Verifier().verify("a.jpg", "b.jpg")``.

    recognizer, estimator: names (see ``fiqa list``); min_quality: 0–100 quality below which an
    image is rejected (None: no gate); threshold: score at or above which faces match (None: the
    recognizer's default, see :data:`DEFAULT_THRESHOLDS` and :data:`ALIGNED_THRESHOLDS`);
    detector: ``mtcnn`` or ``yunet``; alignment: None (the cosine), ``"ida-dao"`` (needs
    ``cohort``: M×D embeddings or a gallery file of people disjoint from those verified) or
    ``"ida-sse"`` (sface and dlib; see :mod:`fiqa.score_alignment`).
    """

    def __init__(self, recognizer: str = "sface", estimator: str = "magface",
                 min_quality: float | None = None, threshold: float | None = None,
                 device: str | torch.device = "auto", detector: str = DEFAULT_DETECTOR,
                 alignment: str | None = None,
                 cohort: np.ndarray | str | Path | None = None) -> None:
        if min_quality is not None and not 0 <= min_quality <= 100:
            raise ValueError(f"min_quality must be in [0, 100], got {min_quality}")
        if alignment is None and cohort is not None:
            raise ValueError("a cohort is used only with alignment='ida-dao'")
        self.discrepancy = (None if alignment is None
                            else discrepancy_model(alignment, recognizer, cohort))
        self.alignment = alignment
        self.threshold = (default_threshold(recognizer, alignment) if threshold is None
                          else float(threshold))
        self.min_quality = min_quality
        self.encoder = Encoder(recognizer, estimator, device, detector=detector)

    def verify(self, image_a: Image, image_b: Image) -> Verification:
        """Compare the largest faces of two images (paths or H×W×3 uint8 RGB arrays)."""
        a, b = self.encoder.encode([image_a, image_b])
        similarity = score = math.nan
        if a.embedding is not None and b.embedding is not None:
            similarity = score = float(a.embedding @ b.embedding)
            if self.discrepancy is not None:
                d_a, d_b = self.discrepancy(np.stack([a.embedding, b.embedding]))
                score = float(aligned(similarity, d_a, d_b))
        reasons = [r for r in (gate(a, "A", self.min_quality), gate(b, "B", self.min_quality)) if r]
        what = "similarity" if self.alignment is None else f"{self.alignment} score"
        if reasons:
            decision, reason = "rejected", "; ".join(reasons)
        elif score >= self.threshold:
            decision, reason = "match", f"{what} {score:.3f} ≥ {self.threshold:.3f}"
        else:
            decision, reason = "no match", f"{what} {score:.3f} < {self.threshold:.3f}"
        return Verification(decision, similarity, a.quality, b.quality, self.threshold, reason,
                            score)


def min_quality_for(quality: np.ndarray, similarity: np.ndarray, threshold: float,
                    target_discard: float | None = None,
                    target_fnmr: float | None = None) -> float:
    """The gate ``min_quality`` met by evaluation data: genuine comparisons' pair qualities
    (0–100, min of both images) and cosine similarities at decision ``threshold``.

    target_discard: the highest gate that rejects at most this fraction of the genuine pairs.
    target_fnmr: the lowest gate whose FNMR on the pairs it keeps is at most this (ValueError if
    no gate reaches it). Give exactly one. Pairs with quality below the result are rejected.
    """
    if (target_discard is None) == (target_fnmr is None):
        raise ValueError("give exactly one of target_discard and target_fnmr")
    quality = np.asarray(quality, float)
    if not np.isfinite(quality).all():
        raise ValueError("quality must be finite: drop the pairs without a face first")
    curve = edc(similarity, quality, threshold, "fnmr")
    cuts = np.unique(quality)  # the distinct qualities, one per step of the curve
    if target_discard is not None:
        return float(cuts[np.flatnonzero(curve.discard <= target_discard)[-1]])
    reached = np.flatnonzero(curve.error <= target_fnmr)
    if len(reached) == 0:
        raise ValueError(f"no quality gate brings the FNMR down to {target_fnmr:g}")
    return float(cuts[reached[0]])
