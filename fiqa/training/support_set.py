"""IDA-SSE training and the identity splits score alignment is developed on (no LFW person).

CelebA identities and FIW *families* (relatives are look-alike impostors, so a family stays on
one side) are split by a hash of their name: ``train`` people make the cohort and train the
support-set heads, ``test`` people are only ever compared. :func:`train_sse` fits
:class:`fiqa.score_alignment.SupportSetEstimator` to the discrepancies a cohort gives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from ..evaluation.features import FeatureCache, compute_features, embedding_column
from ..evaluation.protocols import genuine_pairs
from ..imageio import identity_folders
from ..pipeline import Scorer
from ..score_alignment import SupportSetEstimator, unit

SIDES = ("train", "test")


def side_of(source: str, identity: str) -> str:
    """``"train"`` or ``"test"`` for a CelebA identity or an FIW person (by family), fixed by a
    hash of the name (about half each)."""
    group = identity.split("_")[0] if source == "fiw" else identity
    return SIDES[hashlib.sha1(f"{source}/{group}".encode()).digest()[0] % 2]


@dataclass
class Embedded:
    """Images of one split: paths, identity labels (``source/name``), per recognizer N×D unit
    embeddings, and per estimator N raw scores and N 0–100 qualities; images without a face are
    dropped."""

    paths: list[str]
    identities: np.ndarray
    embeddings: dict[str, np.ndarray]
    quality: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.paths)

    def genuine(self, estimator: str, recognizer: str, detected_only: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The images' raw ``estimator`` scores (CelebA's alone with ``detected_only``: FIW's
        crops come aligned, with no detection to read), every genuine pair among them (G×2
        indices into those images) and its ``recognizer`` cosine."""
        keep = (np.char.startswith(self.identities.astype(str), "celeba/") if detected_only
                else np.ones(len(self), bool))
        pairs = genuine_pairs(self.identities[keep])
        vectors = self.embeddings[recognizer][keep]  # unit length
        return (self.scores[estimator][keep], pairs,
                np.einsum("gd,gd->g", vectors[pairs[:, 0]], vectors[pairs[:, 1]]))


def embedded(data: Path, side: str, recognizers: tuple[str, ...], estimators: tuple[str, ...],
             cache: Path, device: str = "cpu") -> Embedded:
    """The CelebA and FIW images of ``side`` (``data`` holds celeba/ and fiw/images/), embedded
    and scored through the evaluation cache (CelebA detected, FIW already aligned)."""
    parts = []
    for source, folder, aligned in (("celeba", data / "celeba", False),
                                    ("fiw", data / "fiw" / "images", True)):
        people = {name: files for name, files in identity_folders(folder).items()
                  if side_of(source, name) == side}
        paths = [str(p) for files in people.values() for p in files]
        labels = np.array([f"{source}/{name}" for name, files in people.items() for _ in files])
        scorer = Scorer(list(estimators), list(recognizers), device=device, aligned=aligned)
        with Progress(transient=True) as progress:
            columns, _ = compute_features(paths, scorer, FeatureCache(cache), progress)
        found = ~np.isnan(columns[embedding_column(recognizers[0])][:, 0])
        scores = {e.name: columns[e.name][found] for e in scorer.estimators}
        quality = {e.name: e.to_quality(scores[e.name]) for e in scorer.estimators}
        vectors = {r: unit(columns[embedding_column(r)][found]) for r in recognizers}
        parts.append(Embedded([p for p, f in zip(paths, found, strict=True) if f],
                              labels[found], vectors, quality, scores))
    return Embedded(sum((p.paths for p in parts), []),
                    np.concatenate([p.identities for p in parts]),
                    {r: np.concatenate([p.embeddings[r] for p in parts]) for r in recognizers},
                    {e: np.concatenate([p.quality[e] for p in parts]) for e in estimators},
                    {e: np.concatenate([p.scores[e] for p in parts]) for e in estimators})


def train_sse(embeddings: np.ndarray, targets: np.ndarray, identities: np.ndarray,
              epochs: int = 60, batch: int = 256, lr: float = 1e-3, seed: int = 0
              ) -> tuple[SupportSetEstimator, list[dict]]:
    """Fit a head to N×D unit embeddings → N discrepancy targets (MSE, AdamW, cosine decay),
    with the images of a tenth of the ``identities`` (N labels) held out to report; returns
    the head and the per-epoch log."""
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(unit(embeddings)), torch.from_numpy(targets.astype(np.float32))
    people = np.unique(identities)
    held_people = np.random.default_rng(seed).permutation(people)[: len(people) // 10]
    is_held = torch.from_numpy(np.isin(identities, held_people))
    held, used = is_held.nonzero()[:, 0], (~is_held).nonzero()[:, 0]
    torch.manual_seed(seed)
    model = SupportSetEstimator(x.shape[1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(used) // batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    history = []
    for epoch in range(epochs):
        model.train()
        for chunk in used[torch.randperm(len(used), generator=generator)].split(batch):
            loss = torch.nn.functional.mse_loss(model(x[chunk]), y[chunk])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            predicted = model(x[held])
        residual = (predicted - y[held]).pow(2).mean().sqrt()
        correlation = torch.corrcoef(torch.stack([predicted, y[held]]))[0, 1]
        history.append({"epoch": epoch + 1, "train_mse": loss.item(),
                        "held_out_rmse": float(residual), "held_out_pearson": float(correlation),
                        "target_std": float(y[held].std())})
    return model, history
