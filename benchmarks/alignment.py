"""Score alignment (IDA-DAO, IDA-SSE) against plain cosines, with and without the quality gate.

    python benchmarks/alignment.py [--bootstrap 100] [--impostors 1000000]

Identities (fiqa.training.support_set): the cohort and the SSE heads come from the ``train``
side of CelebA + FIW; the comparisons are LFW View 2 (its 3,000 genuine pairs, and
``--impostors`` seeded pairs of different people among its 7,701 images) and the ``test`` side
of CelebA + FIW (every genuine pair, and ``--impostors`` sampled ones): no person on both sides,
no LFW person anywhere in training. The comparisons use the library's ``k``
(fiqa.score_alignment.DEFAULT_K, the SSE heads' too); the sweep of ``k`` on the train side alone
(half its people compared, the other half the cohort) is reported beside it, with the best one.
The gate's quality floor (magface) is the 10th percentile of the train side's qualities.

Per test set and recognizer (sface, dlib): FNMR at FMR 1e-3 and 1e-4 (threshold from that
method's own impostor scores), plain / IDA-DAO / IDA-SSE, with paired bootstrap intervals
(resampling genuine and impostor comparisons, the same draws for every method), gate off and on;
the thresholds at FMR 1e-3 on LFW (the aligned defaults of fiqa.verify); a figure of the LFW
score distributions before and after. Writes benchmarks/results/alignment.json and
docs/img/alignment_scores.png. Pairs with a face missing are left out (counted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import matplotlib
import numpy as np
from rich.progress import Progress

from fiqa import Scorer
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column
from fiqa.evaluation.protocols import genuine_pairs, impostor_pairs, lfw_pairs, pair_paths
from fiqa.score_alignment import DEFAULT_K, SupportSetEstimator, aligned, discrepancies, unit
from fiqa.training.support_set import Embedded, embedded

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECOGNIZERS = ("sface", "dlib")
FMRS = (1e-3, 1e-4)
KS = (1, 3, 10, 30, 100, 300)
GATE_PERCENTILE = 10


def fnmr_at(genuine: np.ndarray, impostor: np.ndarray, fmr: float) -> tuple[float, float]:
    """(FNMR, threshold): the threshold lets through a fraction ``fmr`` of the impostors."""
    count = max(1, int(round(fmr * len(impostor))))
    threshold = float(np.partition(impostor, len(impostor) - count)[len(impostor) - count])
    return float(np.mean(genuine < threshold)), threshold


def subside(identities: np.ndarray) -> np.ndarray:
    """True for the train-side people compared when choosing k (a hash of the name: half)."""
    return np.array([hashlib.sha1(f"k/{i}".encode()).digest()[0] % 2 == 0 for i in identities])


def lfw_set(impostors: int) -> dict:
    """LFW View 2: unit embeddings and magface qualities of its images, its genuine pairs and
    sampled impostor pairs (index pairs into the images), the left-out count."""
    pairs = lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    paths = pair_paths(pairs)
    scorer = Scorer(["magface"], list(RECOGNIZERS), device="cpu")
    with Progress(transient=True) as progress:
        columns, _ = compute_features(paths, scorer, FeatureCache(ROOT / ".fiqa-cache"), progress)
    found = ~np.isnan(columns[embedding_column(RECOGNIZERS[0])][:, 0])
    index = {p: i for i, p in enumerate(paths)}
    same = pairs[pairs["same"]]
    genuine = np.array([[index[a], index[b]] for a, b in zip(same["path_a"], same["path_b"],
                                                               strict=True)])
    labels = np.array([Path(p).parent.name for p in paths])
    kept = found[genuine].all(1)
    people = np.flatnonzero(found)
    return {"embeddings": {r: unit(np.nan_to_num(columns[embedding_column(r)]))
                           for r in RECOGNIZERS},
            "quality": scorer.estimators[0].to_quality(columns["magface"]),
            "genuine": genuine[kept],
            "impostor": people[impostor_pairs(labels[people], impostors)],
            "left_out_genuine": int((~kept).sum())}


def side_set(side: Embedded, impostors: int) -> dict:
    return {"embeddings": side.embeddings, "quality": side.quality["magface"],
            "genuine": genuine_pairs(side.identities),
            "impostor": impostor_pairs(side.identities, impostors), "left_out_genuine": 0}


def choose_k(train: Embedded, impostors: int) -> dict:
    """FNMR at FMR 1e-3 on half the train side's people, the other half the cohort, per k."""
    compared = subside(train.identities)
    pick = np.flatnonzero(compared)
    labels = train.identities[pick]
    genuine, impostor = genuine_pairs(labels), impostor_pairs(labels, impostors)
    result = {}
    for name in RECOGNIZERS:
        vectors, cohort = train.embeddings[name][pick], train.embeddings[name][~compared]
        row = {"plain": fnmr_at(*_scores(vectors, genuine, impostor), FMRS[0])[0]}
        for k in KS:
            d = discrepancies(vectors, cohort, k)
            row[f"k={k}"] = fnmr_at(*_scores(vectors, genuine, impostor, d), FMRS[0])[0]
        result[name] = row
    return result


def _scores(vectors: np.ndarray, genuine: np.ndarray, impostor: np.ndarray,
            discrepancy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor scores: cosines, aligned by ``discrepancy`` when given."""
    out = []
    for pairs in (genuine, impostor):
        cosine = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
        out.append(cosine if discrepancy is None else
                   aligned(cosine, discrepancy[pairs[:, 0]], discrepancy[pairs[:, 1]]))
    return out[0], out[1]


def compare(test: dict, train: Embedded, k: int, gate: float | None, bootstrap: int) -> dict:
    """Per recognizer and method: FNMR at each FMR with bootstrap intervals and paired
    differences from plain; the thresholds at FMR 1e-3."""
    genuine, impostor = test["genuine"], test["impostor"]
    if gate is not None:
        good = test["quality"] >= gate
        genuine, impostor = genuine[good[genuine].all(1)], impostor[good[impostor].all(1)]
    rng = np.random.default_rng(0)
    draws = [(rng.integers(len(genuine), size=len(genuine)),
              rng.integers(len(impostor), size=len(impostor))) for _ in range(bootstrap)]
    result = {"genuine": len(genuine), "impostor": len(impostor)}
    for name in RECOGNIZERS:
        vectors = test["embeddings"][name]
        methods = {"plain": None,
                   "ida-dao": discrepancies(vectors, train.embeddings[name], k),
                   "ida-sse": SupportSetEstimator.pretrained(name)(vectors)}
        scores = {m: _scores(vectors, genuine, impostor, d) for m, d in methods.items()}
        rows = {}
        for fmr in FMRS:
            samples = {m: np.array([fnmr_at(g[a], i[b], fmr)[0] for a, b in draws])
                       for m, (g, i) in scores.items()}
            for m, (g, i) in scores.items():
                value, threshold = fnmr_at(g, i, fmr)
                row = rows.setdefault(m, {})
                row[f"fnmr@{fmr:g}"] = value
                row[f"fnmr@{fmr:g}_ci"] = np.percentile(samples[m], [2.5, 97.5]).tolist()
                if m != "plain":
                    row[f"minus_plain@{fmr:g}_ci"] = np.percentile(
                        samples[m] - samples["plain"], [2.5, 97.5]).tolist()
                if fmr == FMRS[0]:
                    row["threshold@0.001"] = threshold
        result[name] = rows
    return result


def figure(test: dict, train: Embedded, k: int, path: Path) -> None:
    """LFW score histograms, genuine and impostor, for sface: plain, IDA-DAO, IDA-SSE."""
    vectors = test["embeddings"]["sface"]
    methods = {"plain cosine": None,
               f"IDA-DAO (k={k})": discrepancies(vectors, train.embeddings["sface"], k),
               "IDA-SSE": SupportSetEstimator.pretrained("sface")(vectors)}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, d) in zip(axes, methods.items(), strict=True):
        g, i = _scores(vectors, test["genuine"], test["impostor"], d)
        bins = np.linspace(min(g.min(), i.min()), max(g.max(), i.max()), 80)
        ax.hist(i, bins, density=True, alpha=0.6, label="impostor")
        ax.hist(g, bins, density=True, alpha=0.6, label="genuine")
        ax.axvline(fnmr_at(g, i, 1e-3)[1], color="k", ls="--", lw=1, label="FMR 1e-3")
        ax.set_title(f"{title}: FNMR {fnmr_at(g, i, 1e-3)[0]:.3f}")
        ax.set_xlabel("score")
    axes[0].legend()
    fig.suptitle("LFW View 2, SFace: score distributions before and after alignment")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--impostors", type=int, default=1_000_000)
    args = parser.parse_args()
    cache = ROOT / ".fiqa-cache"
    train = embedded(DATA, "train", RECOGNIZERS, ("magface",), cache)
    test = embedded(DATA, "test", RECOGNIZERS, ("magface",), cache)
    k_choice = choose_k(train, args.impostors // 4)
    print("k", json.dumps(k_choice, indent=1))
    best_k = min(KS, key=lambda k: np.mean([row[f"k={k}"] / row["plain"]
                                            for row in k_choice.values()]))
    k = DEFAULT_K  # what the library uses and the SSE heads were trained at
    gate = float(np.percentile(train.quality["magface"], GATE_PERCENTILE))
    sets = {"lfw": lfw_set(args.impostors), "celeba+fiw test": side_set(test, args.impostors)}
    result = {"train_images": len(train), "train_people": len(set(train.identities)),
              "test_people": len(set(test.identities)), "k_choice": k_choice,
              "best_k_on_train": best_k, "k": k,
              "gate_magface_quality": gate, "bootstrap": args.bootstrap, "sets": {}}
    for name, data in sets.items():
        result["sets"][name] = {"left_out_genuine": data["left_out_genuine"]}
        for label, floor in (("no gate", None), ("gate", gate)):
            result["sets"][name][label] = compare(data, train, k, floor, args.bootstrap)
            print(name, label, json.dumps(result["sets"][name][label], indent=1))
    figure(sets["lfw"], train, k, ROOT / "docs" / "img" / "alignment_scores.png")
    out = ROOT / "benchmarks" / "results" / "alignment.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
