"""LFW View 2 verification accuracy of every recognizer with our detection and alignment.

    python benchmarks/lfw_verification.py [--recognizers dlib,faceres] [--device auto]

Embeds the 7,701 images of the official pairs once (`fiqa embed`, resumable), then reports the
10-fold accuracy (threshold chosen on the other nine folds, cosine similarity) per recognizer in
benchmarks/results/lfw_verification.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fiqa.evaluation.report import cosine
from fiqa.results import read_table
from fiqa.verification import kfold_accuracy, read_lfw_pairs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def pair_similarity(table, pairs, name: str) -> np.ndarray:
    """Cosine similarity per pair of ``name``'s embeddings; NaN where a face is missing."""
    columns = [c for c in table.columns if c.startswith(f"{name}.") and c[len(name) + 1:].isdigit()]
    ok = table[table["status"] == "ok"].drop_duplicates("path").set_index("path")
    vectors = np.vstack([ok[columns].to_numpy(np.float64), np.full(len(columns), np.nan)])
    row = {path: i for i, path in enumerate(ok.index)}  # a missing face → the NaN last row
    a = pairs["path_a"].map(row).fillna(len(ok)).to_numpy(int)
    b = pairs["path_b"].map(row).fillna(len(ok)).to_numpy(int)
    return cosine(vectors[a], vectors[b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--recognizers", default="dlib,faceres")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    pairs = read_lfw_pairs(args.lfw / "pairs.txt")
    RESULTS.mkdir(parents=True, exist_ok=True)
    image_list = RESULTS / "lfw_pairs_images.txt"
    image_list.write_text("\n".join(sorted(set(pairs["path_a"]) | set(pairs["path_b"]))) + "\n")
    output = RESULTS / "lfw_pairs_embeddings.csv"
    subprocess.run([sys.executable, "-m", "fiqa.cli", "embed", str(image_list), "-r",
                    args.recognizers, "-o", str(output), "--device", args.device, "--resume"],
                   check=True)
    table = read_table(output)
    report = {"protocol": "LFW View 2, 10 folds × 600 pairs, cosine, threshold from 9 folds",
              "images": int(table["path"].nunique()),
              "no_face": int((table["status"] != "ok").sum()),
              "command": "python benchmarks/lfw_verification.py", "recognizers": {}}
    for name in args.recognizers.split(","):
        similarity = pair_similarity(table, pairs, name)
        accuracy = kfold_accuracy(similarity, pairs["same"].to_numpy(), pairs["fold"].to_numpy())
        report["recognizers"][name] = {
            "accuracy_mean": float(accuracy.mean()), "accuracy_std": float(accuracy.std()),
            "per_fold": [round(float(a), 4) for a in accuracy],
            "pairs_without_face": int(np.isnan(similarity).sum()),
            "mean_cosine_same": float(np.nanmean(similarity[pairs["same"]])),
            "mean_cosine_different": float(np.nanmean(similarity[~pairs["same"]])),
        }
        print(name, f"{accuracy.mean():.4f} ± {accuracy.std():.4f}")
    (RESULTS / "lfw_verification.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
