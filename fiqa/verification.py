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
    try:
        lines = pairs_file.read_text().split("\n")
    except UnicodeDecodeError:
        raise ValueError(f"{pairs_file}: not a text file") from None
    head = lines[0].split()
    if len(head) != 2 or not all(field.isdigit() and int(field) > 0 for field in head):
        raise ValueError(f"{pairs_file}, line 1: expected 'FOLDS PAIRS_PER_FOLD' (LFW View 2: "
                         f"'10 300'), got {lines[0].strip()[:60]!r}")
    folds, per_fold = map(int, head)

    def path(name: str, number: str) -> str:
        return str(images / name / f"{name}_{int(number):04d}.jpg")

    rows = []
    numbered = [(n, line.strip()) for n, line in enumerate(lines[1:], 2) if line.strip()]
    for index, (number, line) in enumerate(numbered):
        fields = line.split()
        fold = index // (2 * per_fold)
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            rows.append((fold, path(fields[0], fields[1]), path(fields[0], fields[2]), True))
        elif len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
            rows.append((fold, path(fields[0], fields[1]), path(fields[2], fields[3]), False))
        else:
            raise ValueError(f"{pairs_file}, line {number}: expected 'name i j' or "
                             f"'name1 i name2 j', got {line[:60]!r}")
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
