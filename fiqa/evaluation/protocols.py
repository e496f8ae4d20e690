"""Comparison protocols: which image pairs to compare, and whether they show the same person.

Every protocol returns a DataFrame with one row per comparison: path_a, path_b, same (bool),
identity_a, identity_b (the images' parent folder names, used to bootstrap by identity).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ..imageio import IMAGE_SUFFIXES
from ..verification import read_lfw_pairs


def _with_identities(pairs: pd.DataFrame) -> pd.DataFrame:
    pairs = pairs.copy()
    pairs["identity_a"] = pairs["path_a"].map(lambda p: Path(p).parent.name)
    pairs["identity_b"] = pairs["path_b"].map(lambda p: Path(p).parent.name)
    return pairs


def lfw_pairs(pairs_file: str | Path, images: str | Path | None = None) -> pd.DataFrame:
    """The official LFW View 2 pairs (also keeps the ``fold`` column)."""
    return _with_identities(read_lfw_pairs(pairs_file, images))


def pair_lists(same_file: str | Path, different_file: str | Path) -> pd.DataFrame:
    """Two text files of ``path_a path_b`` lines (space, tab or comma separated), relative paths
    resolved against each file's folder: genuine pairs, then impostor pairs."""
    frames = []
    for file, same in ((Path(same_file), True), (Path(different_file), False)):
        rows = [line.replace(",", " ").split() for line in file.read_text().splitlines()]
        rows = [(str(file.parent / a), str(file.parent / b)) for a, b, *_ in
                (row for row in rows if len(row) >= 2 and not row[0].startswith("#"))]
        frames.append(pd.DataFrame(rows, columns=["path_a", "path_b"]).assign(same=same))
    return _with_identities(pd.concat(frames, ignore_index=True))


def folder_pairs(folder: str | Path, impostors: int = 100_000, seed: int = 0) -> pd.DataFrame:
    """All genuine pairs of a folder-per-identity dataset, plus ``impostors`` seeded random pairs
    of images of different identities (fewer if fewer exist)."""
    people = {p.name: sorted(str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
              for p in sorted(Path(folder).iterdir()) if p.is_dir()}
    people = {name: images for name, images in people.items() if images}
    if len(people) < 2:
        raise ValueError(f"{folder} needs at least two identity folders with images")
    genuine = [(a, b, True) for images in people.values()
               for a, b in itertools.combinations(images, 2)]
    paths = np.array([p for images in people.values() for p in images])
    owner = np.array([name for name, images in people.items() for _ in images])
    impostor = [(paths[i], paths[j], False) for i, j in impostor_pairs(owner, impostors, seed)]
    pairs = pd.DataFrame(genuine + impostor, columns=["path_a", "path_b", "same"])
    return _with_identities(pairs)


def genuine_pairs(labels: np.ndarray) -> np.ndarray:
    """Every pair of images with the same label: G×2 indices, a < b, grouped by label in sorted
    order."""
    pairs = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        a, b = np.triu_indices(len(members), 1)
        pairs.append(np.stack([members[a], members[b]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), int)


def impostor_pairs(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` seeded distinct pairs of images with different labels (fewer if fewer exist):
    K×2 indices, a < b, sorted. Pairs are kept in the order drawn, so every pair of different
    labels is equally likely to be chosen."""
    labels = np.asarray(labels)
    _, sizes = np.unique(labels, return_counts=True)
    target = min(count, (len(labels) ** 2 - int((sizes ** 2).sum())) // 2)
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < target:
        a, b = rng.integers(len(labels), size=(2, 2 * (target - len(chosen)) + 16))
        keep = labels[a] != labels[b]
        drawn = zip(np.minimum(a, b)[keep].tolist(), np.maximum(a, b)[keep].tolist(), strict=True)
        chosen.update(dict.fromkeys(drawn))
    return np.array(sorted(itertools.islice(chosen, target)), int).reshape(-1, 2)


def pair_paths(pairs: pd.DataFrame) -> list[str]:
    """Every image the comparisons use, once each, sorted."""
    return sorted(set(pairs["path_a"]) | set(pairs["path_b"]))


def existing(pairs: pd.DataFrame) -> tuple[pd.DataFrame, list[str], int]:
    """The comparisons whose two images exist, the listed images that do not, and how many
    comparisons they cost. ValueError when none of the listed images exists."""
    paths = pair_paths(pairs)
    missing = [path for path in paths if not Path(path).is_file()]
    if paths and len(missing) == len(paths):
        raise ValueError(f"none of the {len(paths)} images the protocol lists exists "
                         f"(e.g. {missing[0]}): is the image folder right?")
    gone = set(missing)
    keep = ~(pairs["path_a"].isin(gone) | pairs["path_b"].isin(gone))
    return pairs[keep].reset_index(drop=True), missing, int((~keep).sum())
