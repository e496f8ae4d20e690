"""IDA score alignment in identification: does ranking a gallery by aligned scores help?

    python benchmarks/alignment_identification.py [--cache .fiqa-cache] [--bootstrap 200]

People: the test side of CelebA and FIW (``fiqa.training.support_set``; no image of theirs
trained the SSE heads, and the IDA-DAO cohort is the train side's images, other people). A
seeded half of the identities is enrolled: each template is the normalised mean of its first two
images, as a gallery's template is a mean of embeddings; their other images are mated probes. The
other half's images are non-mated probes. Per recognizer (sface, dlib) and alignment (none,
ida-dao with k = 100, ida-sse), scores as ``Gallery.identify`` ranks them
(:func:`fiqa.score_alignment.aligned` of each probe and template):

* rank-1 identification rate of the mated probes (closed set);
* FNIR at FPIR 1e-2 (open set): the threshold is the 99th percentile of the non-mated probes'
  best score; a mated probe fails when its best candidate is not its identity or scores below it.

Intervals: 95 % bootstrap over identities (``--bootstrap`` resamplings). Results in
``benchmarks/results/alignment_identification.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fiqa.score_alignment import aligned, discrepancy_model, unit
from fiqa.training.support_set import embedded

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECOGNIZERS = ("sface", "dlib")
ALIGNMENTS = (None, "ida-dao", "ida-sse")
FPIR = 1e-2


def split(identities: np.ndarray, seed: int = 0):
    """(enrolled identity names, template image indices per enrolled identity, mated probe
    indices with their gallery row, non-mated probe indices)."""
    names = np.unique(identities)
    rng = np.random.default_rng(seed)
    enrolled = np.sort(rng.choice(names, len(names) // 2, replace=False))
    row = {name: i for i, name in enumerate(enrolled)}
    templates, mated, gallery_rows, non_mated = [], [], [], []
    for name in names:
        members = np.flatnonzero(identities == name)
        if name in row and len(members) >= 3:
            templates.append(members[:2])
            mated += list(members[2:])
            gallery_rows += [len(templates) - 1] * (len(members) - 2)
        elif name not in row:
            non_mated += list(members)
    return templates, np.array(mated), np.array(gallery_rows), np.array(non_mated)


def rates(scores: np.ndarray, mated: np.ndarray, rows: np.ndarray, non_mated: np.ndarray
          ) -> tuple[float, float]:
    """(rank-1 rate, FNIR at FPIR) from probe × template scores."""
    best = scores.argmax(axis=1)
    top = scores.max(axis=1)
    threshold = np.quantile(top[non_mated], 1 - FPIR)
    hit = best[mated] == rows
    return float(hit.mean()), float(1 - (hit & (top[mated] >= threshold)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    test = embedded(DATA, "test", RECOGNIZERS, (), args.cache)
    train = embedded(DATA, "train", RECOGNIZERS, (), args.cache)
    templates, mated, rows, non_mated = split(test.identities)
    probes = np.concatenate([mated, non_mated])
    mated_at, non_mated_at = np.arange(len(mated)), len(mated) + np.arange(len(non_mated))
    owner = test.identities[probes]
    people = np.unique(owner)
    by_person = [np.flatnonzero(owner == person) for person in people]
    rng = np.random.default_rng(1)
    draws = [np.concatenate([by_person[i] for i in rng.choice(len(people), len(people))])
             for _ in range(args.bootstrap)]  # probes of resampled people, repeats kept
    result = {"templates": len(templates), "mated_probes": len(mated),
              "non_mated_probes": len(non_mated), "fpir": FPIR, "bootstrap": args.bootstrap,
              "results": []}
    for name in RECOGNIZERS:
        vectors = test.embeddings[name]
        gallery = unit(np.stack([vectors[t].mean(axis=0) for t in templates]))
        plain = vectors[probes] @ gallery.T
        spreads = {}
        for alignment in ALIGNMENTS:
            scores = plain
            if alignment is not None:
                model = discrepancy_model(alignment, name, train.embeddings[name]
                                          if alignment == "ida-dao" else None)
                scores = aligned(plain, model(vectors[probes])[:, None], model(gallery)[None, :])
            rank1, fnir = rates(scores, mated_at, rows, non_mated_at)
            spread = np.array([rates(scores, draw[draw < len(mated)], rows[draw[draw < len(mated)]],
                                     draw[draw >= len(mated)]) for draw in draws])
            spreads[alignment] = spread
            low, high = np.percentile(spread, [2.5, 97.5], axis=0)
            entry = {"recognizer": name, "alignment": alignment or "none",
                     "rank1": round(rank1, 4), "rank1_ci": [round(low[0], 4), round(high[0], 4)],
                     "fnir": round(fnir, 4), "fnir_ci": [round(low[1], 4), round(high[1], 4)]}
            if alignment is not None:  # paired: the same resampled people
                change = np.percentile(spread - spreads[None], [2.5, 97.5], axis=0)
                entry.update(rank1_change_ci=[round(v, 4) for v in change[:, 0]],
                             fnir_change_ci=[round(v, 4) for v in change[:, 1]])
            result["results"].append(entry)
            print(json.dumps(entry), flush=True)
    out = ROOT / "benchmarks" / "results" / "alignment_identification.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
