"""Pair protocols and k-fold verification accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import LFW

from fiqa.verification import best_threshold, kfold_accuracy, read_lfw_pairs


def test_reads_the_official_lfw_pairs():
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW pairs not found at {LFW}")
    pairs = read_lfw_pairs(LFW / "pairs.txt")
    assert len(pairs) == 6000 and pairs["fold"].nunique() == 10
    assert (pairs.groupby("fold")["same"].sum() == 300).all()
    first = pairs.iloc[0]
    assert first["path_a"].endswith("Abel_Pacheco/Abel_Pacheco_0001.jpg") and first["same"]
    assert all(Path(p).is_file() for p in pairs["path_a"].tolist() + pairs["path_b"].tolist())


def test_best_threshold_and_kfold_by_hand():
    similarity = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    same = np.array([True, True, False, True, False, False])
    assert best_threshold(similarity, same) == pytest.approx(0.75)  # 5 of 6 right
    folds = np.array([0, 0, 0, 1, 1, 1])
    # Fold 0 at fold 1's threshold (0.55): .9 .8 accepted, and .7 wrongly too.
    # Fold 1 at fold 0's threshold (0.75): .6 wrongly rejected, .5 .4 rightly.
    assert np.allclose(kfold_accuracy(similarity, same, folds), [2 / 3, 2 / 3])
    with_missing = similarity.copy()
    with_missing[0] = np.nan  # a genuine pair without a face is an error
    assert kfold_accuracy(with_missing, same, folds)[0] == pytest.approx(1 / 3)
