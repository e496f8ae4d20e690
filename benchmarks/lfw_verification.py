"""LFW View 2 verification accuracy of every recognizer with our detection and alignment.

    python benchmarks/lfw_verification.py [--recognizers dlib,faceres,magface] [--detector D]
        [--face largest|central]

Embeds the 7,701 images of the official pairs once (through the evaluation feature cache in
.fiqa-cache/, shared with ``fiqa evaluate``), then reports the 10-fold accuracy (threshold chosen
on the other nine folds, cosine similarity) per recognizer in
benchmarks/results/lfw_verification_<detector>[_central].json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.progress import Progress

from fiqa.detectors import DEFAULT_DETECTOR
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column
from fiqa.evaluation.protocols import pair_paths
from fiqa.evaluation.report import cosine
from fiqa.pipeline import FACE_CHOICES, Scorer
from fiqa.verification import kfold_accuracy, read_lfw_pairs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--recognizers", default="dlib,faceres,magface")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--face", default="largest", choices=FACE_CHOICES)
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    args = parser.parse_args()
    pairs = read_lfw_pairs(args.lfw / "pairs.txt", args.lfw / "images")
    paths = pair_paths(pairs)
    row = {path: i for i, path in enumerate(paths)}
    a, b = pairs["path_a"].map(row).to_numpy(), pairs["path_b"].map(row).to_numpy()
    scorer = Scorer((), args.recognizers.split(","), device=args.device, detector=args.detector,
                    face=args.face)
    with Progress() as progress:
        columns, _ = compute_features(paths, scorer, FeatureCache(args.cache), progress)
    report = {"protocol": "LFW View 2, 10 folds × 600 pairs, cosine, threshold from 9 folds",
              "images": len(paths),
              "no_face": int(np.isnan(next(iter(columns.values()))[:, 0]).sum()),
              "detector": args.detector, "face": args.face,
              "command": f"python benchmarks/lfw_verification.py --recognizers {args.recognizers} "
                         f"--detector {args.detector} --face {args.face}", "recognizers": {}}
    for name in args.recognizers.split(","):
        vectors = columns[embedding_column(name)]
        similarity = cosine(vectors[a], vectors[b])
        accuracy = kfold_accuracy(similarity, pairs["same"].to_numpy(), pairs["fold"].to_numpy())
        report["recognizers"][name] = {
            "accuracy_mean": float(accuracy.mean()), "accuracy_std": float(accuracy.std()),
            "per_fold": [round(float(a), 4) for a in accuracy],
            "pairs_without_face": int(np.isnan(similarity).sum()),
            "mean_cosine_same": float(np.nanmean(similarity[pairs["same"]])),
            "mean_cosine_different": float(np.nanmean(similarity[~pairs["same"]])),
        }
        print(name, f"{accuracy.mean():.4f} ± {accuracy.std():.4f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.face == "largest" else f"_{args.face}"
    out = RESULTS / f"lfw_verification_{args.detector}{suffix}.json"
    if out.is_file():  # keep the recognizers measured by earlier runs
        report["recognizers"] = {**json.loads(out.read_text())["recognizers"],
                                 **report["recognizers"]}
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
