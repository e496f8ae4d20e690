"""EDC and pAUC: hand-computed cases and properties."""

from __future__ import annotations

import numpy as np
import pytest

from fiqa.evaluation import (
    crfiqa_erc,
    edc,
    normalized_fnmr_pauc,
    normalized_pauc,
    oracle_quality,
    pair_quality,
    pauc,
    random_pauc,
    threshold_for_fmr,
    threshold_for_fnmr,
)


def test_ties_are_discarded_together():
    similarity = np.array([0.1, 0.9, 0.2, 0.8])
    quality = np.array([1.0, 1.0, 2.0, 3.0])
    curve = edc(similarity, quality, threshold=0.5)
    assert np.allclose(curve.discard, [0, 0.5, 0.75])  # the two quality-1 pairs go at once
    assert np.allclose(curve.error, [0.5, 0.5, 0.0])
    assert list(curve.kept) == [4, 2, 1]
    assert pauc(curve, 1.0) == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)
    assert pauc(curve, 0.2) == pytest.approx(0.1)


def test_no_errors_and_all_errors():
    quality = np.arange(5.0)
    none = edc(np.ones(5), quality, threshold=0.5)
    assert pauc(none) == 0 and np.isnan(normalized_pauc(0.0, 0.0, random_pauc(none)))
    every = edc(np.zeros(5), quality, threshold=0.5)
    assert np.allclose(every.error, 1) and pauc(every, 0.2) == pytest.approx(0.2)
    impostors = edc(np.ones(5), quality, threshold=0.5, kind="fmr")
    assert np.allclose(impostors.error, 1)


def test_thresholds_at_exact_steps():
    impostor = np.linspace(0.1, 1.0, 10)
    t = threshold_for_fmr(impostor, 0.1)
    assert (impostor >= t).mean() == pytest.approx(0.1) and t > 0.9  # exactly at a step
    assert threshold_for_fmr(impostor, 0.15) == t  # between steps: the stricter one
    assert (impostor >= threshold_for_fmr(impostor, 0.05)).mean() == 0
    tied = np.array([0.5, 0.5, 0.5, 0.1])
    assert (tied >= threshold_for_fmr(tied, 0.25)).mean() == 0  # ties cannot be split
    genuine = np.linspace(0.1, 1.0, 10)
    t = threshold_for_fnmr(genuine, 0.2)
    assert (genuine < t).mean() == pytest.approx(0.2)
    assert pair_quality([1, 5], [3, 2]).tolist() == [1, 2]


def _comparisons(rng: np.random.Generator, count: int, informative: float):
    """Genuine similarities with ~10 % errors at 0.5, and qualities that predict them a little."""
    quality = rng.normal(size=count)
    similarity = 0.8 + 0.2 * rng.normal(size=count) + informative * 0.1 * quality
    return similarity, quality


@pytest.mark.parametrize("seed", range(20))
def test_oracle_is_a_lower_bound_and_the_curve_starts_at_the_starting_error(seed):
    rng = np.random.default_rng(seed)
    similarity, quality = _comparisons(rng, 500, informative=rng.uniform(0, 3))
    curve = edc(similarity, quality, threshold=0.6)
    assert curve.error[0] == pytest.approx((similarity < 0.6).mean())
    oracle = edc(similarity, oracle_quality(similarity, 0.6), threshold=0.6)
    for limit in (0.05, 0.2, 1.0):
        assert pauc(oracle, limit) <= pauc(curve, limit) + 1e-12
    better = edc(similarity, quality + rng.normal(size=500) * 0.01, threshold=0.6)
    assert pauc(oracle) <= pauc(better) + 1e-12


def test_uninformative_quality_stays_flat_and_informative_quality_falls():
    rng = np.random.default_rng(0)
    similarity, quality = _comparisons(rng, 50_000, informative=0.0)
    flat = edc(similarity, quality, threshold=0.6)
    first_half = flat.discard <= 0.5
    assert np.abs(flat.error[first_half] - flat.error[0]).max() < 0.01
    assert normalized_pauc(pauc(flat), pauc(edc(similarity, oracle_quality(similarity, 0.6), 0.6)),
                           random_pauc(flat)) == pytest.approx(1.0, abs=0.02)
    assert normalized_fnmr_pauc(similarity, quality) == pytest.approx(1.0, abs=0.05)
    similarity, quality = _comparisons(rng, 50_000, informative=2.0)
    falling = edc(similarity, quality, threshold=0.6)
    assert pauc(falling) < 0.8 * random_pauc(falling)
    assert 0 < normalized_fnmr_pauc(similarity, quality) < 0.8
    assert normalized_fnmr_pauc(similarity, similarity) == pytest.approx(0.0)  # the oracle


def test_crfiqa_erc_recomputes_the_threshold_at_every_step():
    # Four genuine, four impostor comparisons; the two lowest-quality ones are the errors.
    similarity = np.array([0.2, 0.9, 0.8, 0.7, 0.75, 0.1, 0.3, 0.2])
    same = np.array([True, True, True, True, False, False, False, False])
    quality = np.array([0.0, 5, 6, 7, 1, 2, 3, 4])
    erc = crfiqa_erc(similarity, same, quality, fmr=0.0, discard=np.array([0.0, 0.25]))
    # At 0: threshold above the best impostor (0.75) → genuine 0.2 and 0.7 rejected: 2/4.
    # At 0.25 (2 dropped: the 0.2 genuine and the 0.75 impostor): threshold above 0.3 → 0/3.
    assert np.allclose(erc.fnmr, [0.5, 0.0])
    assert erc.auc() == pytest.approx(0.25 * 0.5 / 2)
