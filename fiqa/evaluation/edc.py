"""Error-versus-discard characteristic (EDC), ISO/IEC 29794-1:2024 style.

The decision threshold is fixed once, before discarding (at a target FMR over all impostor scores,
or at a starting FNMR over all genuine scores). Comparisons are then discarded in ascending pair
quality, min(q_a, q_b), comparisons of equal pair quality together, and after each step the error
rate of what is left is recorded. The FNMR curve is computed over genuine comparisons (its discard
fraction is the fraction of genuine comparisons discarded), the FMR curve over impostor ones.
Similarities: higher = more alike; a comparison is accepted when similarity ≥ threshold.
See Schlett et al., "Considerations on the evaluation of biometric quality assessment
algorithms", IEEE T-BIOM 2024, for the choices (min pair quality, stepwise pAUC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class EDC:
    """One error-versus-discard curve.

    discard: fractions of the comparisons discarded, ascending from 0, one per distinct pair
    quality cut; error: error rate among the comparisons kept at each; kept: how many are kept;
    threshold: the fixed similarity threshold; kind: ``"fnmr"`` or ``"fmr"``.
    """

    discard: np.ndarray
    error: np.ndarray
    kept: np.ndarray
    threshold: float
    kind: str


def pair_quality(quality_a: np.ndarray, quality_b: np.ndarray) -> np.ndarray:
    """Pair quality of each comparison: the lower of its two samples' qualities."""
    return np.minimum(np.asarray(quality_a, float), np.asarray(quality_b, float))


def threshold_for_fmr(impostor: np.ndarray, fmr: float) -> float:
    """The lowest threshold whose FMR over ``impostor`` similarities is at most ``fmr``."""
    ordered = np.sort(np.asarray(impostor, float))[::-1]
    allowed = int(np.floor(fmr * len(ordered) + 1e-9))  # impostors that may be accepted
    if allowed >= len(ordered):
        return -np.inf
    return float(np.nextafter(ordered[allowed], np.inf))  # just above the first one refused


def threshold_for_fnmr(genuine: np.ndarray, fnmr: float) -> float:
    """The highest threshold whose FNMR over ``genuine`` similarities is at most ``fnmr``.

    A similarity of −inf (a comparison that failed, e.g. no face) is an error at any threshold:
    if there are more of them than ``fnmr`` allows, the threshold accepts every other pair."""
    genuine = np.asarray(genuine, float)
    ordered = np.sort(genuine[np.isfinite(genuine)])
    failed = len(genuine) - len(ordered)
    allowed = int(np.floor(fnmr * len(genuine) + 1e-9)) - failed  # pairs that may be rejected
    if allowed >= len(ordered):
        return np.inf
    return float(ordered[max(allowed, 0)])


def edc(similarity: np.ndarray, quality: np.ndarray, threshold: float, kind: str = "fnmr") -> EDC:
    """The EDC of one kind of comparison: genuine ones for ``"fnmr"``, impostor ones for ``"fmr"``.

    similarity, quality: one value per comparison (quality = pair quality). The threshold stays
    fixed while the lowest-quality comparisons are discarded, ties together.
    """
    if kind not in ("fnmr", "fmr"):
        raise ValueError(f"kind must be 'fnmr' or 'fmr', got {kind!r}")
    similarity, quality = np.asarray(similarity, float), np.asarray(quality, float)
    if len(similarity) == 0:
        raise ValueError("no comparisons to compute an EDC from")
    order = np.argsort(quality, kind="stable")
    similarity, quality = similarity[order], quality[order]
    errors = similarity < threshold if kind == "fnmr" else similarity >= threshold
    errors_left = np.cumsum(errors[::-1])[::-1]  # errors among comparisons i..n-1
    count = len(similarity)
    starts = np.concatenate([[0], np.flatnonzero(quality[1:] != quality[:-1]) + 1])
    kept = count - starts
    return EDC(starts / count, errors_left[starts] / kept, kept, float(threshold), kind)


def pauc(curve: EDC, limit: float = 0.2) -> float:
    """Area under the stepwise EDC over discard fractions [0, limit]."""
    if not 0 <= limit <= 1:
        raise ValueError(f"limit must be in [0, 1], got {limit}")
    ends = np.minimum(np.append(curve.discard[1:], 1.0), limit)
    widths = np.clip(ends - curve.discard, 0, None)
    return float((curve.error * widths).sum())


def oracle_quality(similarity: np.ndarray, threshold: float, kind: str = "fnmr") -> np.ndarray:
    """Qualities that discard the errors first, one at a time: the lower bound of any curve."""
    similarity = np.asarray(similarity, float)
    errors = similarity < threshold if kind == "fnmr" else similarity >= threshold
    distinct = np.arange(len(similarity)) / max(len(similarity), 1)
    return np.where(errors, distinct - 1.0, 1.0)


def random_pauc(curve: EDC, limit: float = 0.2) -> float:
    """pAUC expected from discarding at random: the starting error, flat, over [0, limit]."""
    return float(curve.error[0] * limit)


def normalized_pauc(value: float, oracle: float, random: float) -> float:
    """(pAUC − oracle) / (random − oracle): 0 matches the oracle, 1 is no better than random."""
    return float((value - oracle) / (random - oracle)) if random > oracle else float("nan")


def normalized_fnmr_pauc(genuine: np.ndarray, quality: np.ndarray, fnmr: float = 0.1,
                         limit: float = 0.2) -> float:
    """Normalised pAUC (0 = oracle, 1 = random) over discard [0, ``limit``] of G genuine
    similarities ranked by their G pair qualities, the threshold at a starting FNMR of ``fnmr``."""
    threshold = threshold_for_fnmr(genuine, fnmr)
    value = pauc(curve := edc(genuine, quality, threshold), limit)
    oracle = pauc(edc(genuine, oracle_quality(genuine, threshold), threshold), limit)
    return normalized_pauc(value, oracle, random_pauc(curve, limit))


@dataclass
class CrfiqaERC:
    """The ERC as the public CR-FIQA code draws it (not ISO): see :func:`crfiqa_erc`."""

    discard: np.ndarray
    fnmr: np.ndarray
    fmr_target: float

    def auc(self) -> float:
        """Trapezoidal area over all the discard fractions, as that code reports it."""
        return float(np.trapezoid(self.fnmr, self.discard))


def crfiqa_erc(similarity: np.ndarray, same: np.ndarray, quality: np.ndarray,
               fmr: float = 1e-3, discard: np.ndarray | None = None) -> CrfiqaERC:
    """Error-versus-reject curve the way CR-FIQA's public evaluation code computes it.

    Genuine and impostor comparisons are sorted together by pair quality (ties not grouped); at
    each discard fraction (default 0, 0.05, …, 0.95) the lowest ``fraction × N`` comparisons are
    dropped, the threshold is recomputed at ``fmr`` on the impostors left, and the FNMR of the
    genuine ones left is recorded. Most published FIQA tables use this; its numbers are not
    comparable with :func:`edc`'s.
    """
    similarity, same = np.asarray(similarity, float), np.asarray(same, bool)
    order = np.argsort(np.asarray(quality, float), kind="stable")
    similarity, same = similarity[order], same[order]
    discard = np.arange(0, 0.98, 0.05) if discard is None else np.asarray(discard, float)
    fnmr = []
    for fraction in discard:
        start = int(fraction * len(similarity))
        kept, kept_same = similarity[start:], same[start:]
        threshold = threshold_for_fmr(kept[~kept_same], fmr)
        fnmr.append(float((kept[kept_same] < threshold).mean()))
    return CrfiqaERC(discard, np.array(fnmr), fmr)
