"""Score alignment for verification, after IDA (Liu et al., "Inter-class Discrepancy Alignment
for Face Recognition", 2021): a comparison score is read against each face's local context.

A face's *support set* is its ``k`` nearest inter-class neighbours among the unit embeddings of a
*cohort* (people disjoint from the comparisons); its *discrepancy* d is its mean cosine to them:
how crowded its neighbourhood of the hypersphere is. The aligned score of faces a and b with
cosine s is ``s − (d_a + d_b) / 2``: a pair from a crowded region, where everyone looks alike
(poor captures, common looks), must be more similar to count as the same.

* IDA-DAO (:class:`CohortDiscrepancy`): d from a real cohort, at inference.
* IDA-SSE (:class:`SupportSetEstimator`): d predicted from the embedding alone by a small head
  per recognizer, trained here on CelebA + FIW identities (``scripts/train_ida_sse.py``).

The paper's own equations could not be read offline (only its abstract was reachable): this is
our reading of it, the cohort-normalisation form its abstract describes; ``k`` and the gate
settings were chosen on training-side identities (docs/alignment.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .weights import load_weights

ALIGNMENTS = ("ida-dao", "ida-sse")
DEFAULT_K = 100  # chosen on the train side of CelebA + FIW alone (docs/alignment.md)
SSE_RECOGNIZERS = ("sface", "dlib")  # the recognizers with a trained IDA-SSE head


def unit(vectors: np.ndarray) -> np.ndarray:
    """N×D vectors → unit length (float32)."""
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def discrepancies(embeddings: np.ndarray, cohort: np.ndarray, k: int = DEFAULT_K,
                  labels: Sequence | None = None, cohort_labels: Sequence | None = None,
                  chunk: int = 2048) -> np.ndarray:
    """Mean cosine of each of N embeddings (N×D) to its ``k`` most similar cohort embeddings
    (M×D) → N float32. With ``labels`` and ``cohort_labels``, cohort members of a face's own
    identity are left out of its support set (a cohort that contains the faces themselves)."""
    embeddings, cohort = unit(embeddings), unit(cohort)
    _check_k(k, len(cohort))
    leave_out = labels is not None and cohort_labels is not None
    result = np.empty(len(embeddings), np.float32)
    for start in range(0, len(embeddings), chunk):
        cosines = embeddings[start:start + chunk] @ cohort.T
        if leave_out:  # the face's own identity is no inter-class neighbour
            own = np.asarray(labels[start:start + chunk])[:, None] == np.asarray(cohort_labels)
            cosines[own] = -np.inf
        top = -np.partition(-cosines, k - 1, axis=1)[:, :k]
        result[start:start + chunk] = top.mean(1)
    return result


def _check_k(k: int, cohort_size: int) -> None:
    if not 1 <= k <= cohort_size:
        raise ValueError(f"k must be between 1 and the cohort size {cohort_size}, got {k}")


def aligned(scores: np.ndarray, discrepancy_a: np.ndarray, discrepancy_b: np.ndarray
            ) -> np.ndarray:
    """Cosines of pairs and the discrepancies of their two faces → aligned scores."""
    return np.asarray(scores) - (np.asarray(discrepancy_a) + np.asarray(discrepancy_b)) / 2


class CohortDiscrepancy:
    """IDA-DAO: discrepancies against a cohort of M×D embeddings (any scale; normalised here)."""

    def __init__(self, cohort: np.ndarray, k: int = DEFAULT_K) -> None:
        self.cohort, self.k = unit(cohort), k
        _check_k(k, len(self.cohort))

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return discrepancies(embeddings, self.cohort, self.k)


class SupportSetEstimator(nn.Module):
    """IDA-SSE: unit D-dim embeddings N×D → N predicted discrepancies (the mean cosine to the k
    nearest inter-class cohort neighbours), an MLP D → hidden → hidden → 1."""

    def __init__(self, dim: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]

    @classmethod
    def pretrained(cls, recognizer: str) -> SupportSetEstimator:
        """The shipped head of ``recognizer`` (weights ``ida_sse_<recognizer>``)."""
        if recognizer not in SSE_RECOGNIZERS:
            raise ValueError(f"no IDA-SSE head for recognizer {recognizer!r}; trained for: "
                             f"{', '.join(SSE_RECOGNIZERS)}")
        tensors = load_weights(f"ida_sse_{recognizer}")
        model = cls(tensors["net.0.weight"].shape[1], tensors["net.0.weight"].shape[0])
        model.load_state_dict(tensors)
        return model.eval()

    def __call__(self, embeddings: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if isinstance(embeddings, torch.Tensor):
            return super().__call__(embeddings)
        with torch.inference_mode():
            return super().__call__(torch.from_numpy(unit(embeddings))).numpy()


def discrepancy_model(alignment: str, recognizer: str, cohort: np.ndarray | str | Path | None,
                      k: int = DEFAULT_K):
    """What gives discrepancies for ``alignment``: embeddings N×D → N (numpy).

    ``ida-dao`` needs ``cohort``: M×D embeddings, or a gallery file of ``recognizer`` whose
    templates serve as the cohort; ``ida-sse`` takes none."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    if alignment == "ida-sse":
        if cohort is not None:
            raise ValueError("ida-sse estimates the support set itself: give no cohort")
        return SupportSetEstimator.pretrained(recognizer)
    if cohort is None:
        raise ValueError("ida-dao needs a cohort: embeddings or a gallery file of people "
                         "disjoint from those compared")
    if isinstance(cohort, str | Path):
        from .gallery import Gallery

        cohort = Gallery.load(cohort, recognizer).templates
    return CohortDiscrepancy(cohort, k)
