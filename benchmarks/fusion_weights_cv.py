"""Exploration, with no adoption rule: fusion weights chosen on half of the held-out people,
judged on the other half.

    python benchmarks/held_out_scores.py --save-scores held_out.npz
    python benchmarks/fusion_weights_cv.py held_out.npz        # ~3 min

The 300 held-out people of ``held_out_scores.py`` are split in two seeded halves. On each half in
turn, the members' scores (magface, attention, sface-norm) are standardised over that half. A
weight vector is chosen on the simplex (steps of 0.1) to give the lowest mean of the six
normalised pAUC cells there. It is then judged on the other half, beside equal weights and the
members alone. Writes benchmarks/results/generalisation/fusion_weights_cv.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from fiqa.training.data import DEFAULT_DATA, WITHOUT_LFW, training_images
from fiqa.training.photo_views import cached_photo_views

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "generalisation" / "fusion_weights_cv.json"
MEMBERS = ("magface", "attention", "sface-norm")
JUDGES = ("vit", "sface", "faceres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores", type=Path, help="the .npz of held_out_scores.py --save-scores")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1, help="the split of the people")
    args = parser.parse_args()
    views = cached_photo_views(training_images(args.data, sources=WITHOUT_LFW), views=2,
                               seed=0, cache=ROOT / ".fiqa-cache")
    saved = np.load(args.scores)
    rows = saved["rows"]
    units = {name: torch.from_numpy(saved[f"judge:{name}"]) for name in JUDGES}
    members = np.stack([saved[name] for name in MEMBERS])  # M×N
    people = views.labels[rows]
    distinct = np.unique(people)
    first = np.random.default_rng(args.seed).permutation(distinct)[:len(distinct) // 2]
    grid = [np.array(w) / 10 for w in itertools.product(range(11), repeat=len(MEMBERS))
            if sum(w) == 10]

    def cells(mask: np.ndarray, score: np.ndarray) -> dict[str, float]:
        kept = torch.from_numpy(mask)
        return views.genuine_paucs(rows[mask], score[mask],
                                   {name: unit[kept] for name, unit in units.items()})

    def with_mean(paucs: dict[str, float]) -> dict[str, float]:
        return {**paucs, "mean": float(np.mean(list(paucs.values())))}

    report = {}
    for half, fit in (("first", np.isin(people, first)), ("second", ~np.isin(people, first))):
        judged = ~fit
        z = (members - members[:, fit].mean(1, keepdims=True)) / members[:, fit].std(
            1, keepdims=True)
        chosen = min(grid, key=lambda w: with_mean(cells(fit, w @ z))["mean"])
        scores = {"chosen": chosen @ z, "equal": z.mean(0), "magface+attention": z[:2].mean(0),
                  **dict(zip(MEMBERS, z, strict=True))}
        report[f"chosen on the {half} half"] = {
            "weights": dict(zip(MEMBERS, chosen.round(2).tolist(), strict=True)),
            "judged on the other half": {name: with_mean(cells(judged, score))
                                         for name, score in scores.items()}}
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
