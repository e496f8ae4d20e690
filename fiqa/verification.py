"""Verification protocols: pair lists and k-fold accuracy of similarity scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_lfw_pairs(pairs_file: str | Path, images: str | Path | None = None) -> pd.DataFrame:
    """LFW ``pairs.txt`` (View 2 format) → one row per pair: fold, path_a, path_b, same.

    images: the folder holding ``Person_Name/Person_Name_0001.jpg`` (default: ``images/`` beside
    the pairs file). Matched lines are ``name i j``, mismatched ``name1 i name2 j``.
    """
    pairs_file = Path(pairs_file)
    images = Path(images) if images else pairs_file.parent / "images"
    lines = pairs_file.read_text().split("\n")
    folds, per_fold = map(int, lines[0].split())

    def path(name: str, number: str) -> str:
        return str(images / name / f"{name}_{int(number):04d}.jpg")

    rows = []
    for index, line in enumerate(filter(None, (line.strip() for line in lines[1:]))):
        fields = line.split()
        fold = index // (2 * per_fold)
        if len(fields) == 3:
            rows.append((fold, path(fields[0], fields[1]), path(fields[0], fields[2]), True))
        else:
            rows.append((fold, path(fields[0], fields[1]), path(fields[2], fields[3]), False))
    if len(rows) != folds * 2 * per_fold:
        raise ValueError(f"{pairs_file}: expected {folds * 2 * per_fold} pairs, read {len(rows)}")
    return pd.DataFrame(rows, columns=["fold", "path_a", "path_b", "same"])


def best_threshold(similarity: np.ndarray, same: np.ndarray) -> float:
    """The threshold on ``similarity`` (accept when ≥) with the highest accuracy."""
    order = np.argsort(-similarity, kind="stable")
    similarity, same = similarity[order], same[order]
    # Accepting the first k pairs: correct = genuine among them + impostors among the rest.
    correct = np.concatenate([[0], np.cumsum(same)]) + np.concatenate(
        [[(~same).sum()], (~same).sum() - np.cumsum(~same)])
    k = int(np.argmax(correct))
    if k == 0:
        return float(similarity[0]) + 1e-6
    if k == len(similarity):
        return float(similarity[-1])
    return float((similarity[k - 1] + similarity[k]) / 2)


def kfold_accuracy(similarity: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per fold: accuracy at the threshold chosen on the other folds (the LFW protocol).

    A NaN similarity (a face not found) counts as a wrong decision.
    """
    similarity, same = np.asarray(similarity, float), np.asarray(same, bool)
    accuracies = []
    for fold in np.unique(folds):
        train = (folds != fold) & ~np.isnan(similarity)
        threshold = best_threshold(similarity[train], same[train])
        test = folds == fold
        decided = np.where(np.isnan(similarity[test]), ~same[test], similarity[test] >= threshold)
        accuracies.append(float((decided == same[test]).mean()))
    return np.array(accuracies)
