"""ATTN-FIQA and our face ViT: teacher agreement, score range and heatmap figure.

    python benchmarks/attention.py [agreement] [range] [figure] [--device auto]

* agreement: on the LFW View 2 pair images (never trained on), the cosine between the student's
  embedding and dlib's unit embedding centred on the training mean (what the student learned),
  beside the centred cosine of dlib's own genuine and impostor pairs for scale.
* range: attention scores of 2,000 training views rendered as in training (jittered, half of them
  degraded): the 1st and 99th percentiles are the estimator's 0–100 range.
* figure: docs/img/attention_heatmaps.png, the four best and four worst of 400 View 2 images
  by attention score, and one good face under four degradations, each with its per-patch map;
  and the Spearman correlation of the score with the face region's mean brightness.

Throughput: ``python benchmarks/speed.py --recognizers vit --estimators attention``.

Writes benchmarks/results/attention.json (sections merge across runs).
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from scipy.stats import spearmanr

import fiqa
from fiqa.device import resolve_device
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column
from fiqa.evaluation.protocols import pair_paths
from fiqa.explain import explain_images, overlay
from fiqa.pipeline import Scorer
from fiqa.recognizers.face_vit import CROP_SPEC
from fiqa.training.data import load_faces, training_images
from fiqa.training.degrade import degrade
from fiqa.training.face_vit import ViTConfig, render_batch, teacher_embeddings
from fiqa.verification import read_lfw_pairs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "attention.json"
LFW = ROOT.parent / "shared" / "data" / "lfw"
TRAIN_CACHE = ROOT / ".fiqa-cache" / "train"


@cache
def training_faces():
    """The student's training faces, decoded once per run."""
    return load_faces(training_images(min_images=1))


def agreement(device: torch.device) -> dict:
    pairs = read_lfw_pairs(LFW / "pairs.txt", LFW / "images")
    paths = pair_paths(pairs)
    with Progress() as progress:
        columns, _ = compute_features(paths, Scorer((), ["dlib", "vit"], device=device),
                                      FeatureCache(ROOT / ".fiqa-cache"), progress)
    faces = training_faces()
    centre = teacher_embeddings(faces, ViTConfig().teacher, device, TRAIN_CACHE).mean(0).numpy()
    found = ~np.isnan(columns[embedding_column("vit")][:, 0])
    dlib = columns[embedding_column("dlib")][found]
    teacher = _unit(_unit(dlib) - centre)
    student = _unit(columns[embedding_column("vit")][found])
    cosine = (teacher * student).sum(1)
    row = {path: i for i, path in enumerate(np.asarray(paths)[found])}
    known = pairs["path_a"].isin(row) & pairs["path_b"].isin(row)
    a = pairs.loc[known, "path_a"].map(row).to_numpy()
    b = pairs.loc[known, "path_b"].map(row).to_numpy()
    same = pairs.loc[known, "same"].to_numpy()
    teacher_pairs = (teacher[a] * teacher[b]).sum(1)
    return {"images": int(found.sum()),
            "student_vs_centred_teacher": _summary(cosine),
            "teacher_centred_genuine_pairs": _summary(teacher_pairs[same]),
            "teacher_centred_impostor_pairs": _summary(teacher_pairs[~same])}


def score_range(device: torch.device) -> dict:
    faces = training_faces()
    estimator = fiqa.create("attention", device=device)
    rng = np.random.default_rng(1)
    index = rng.choice(len(faces), size=2000, replace=False)
    config = ViTConfig()
    scores = np.concatenate([estimator.score(render_batch(faces, part, config, rng))
                             for part in np.array_split(index, 32)])
    clean = np.concatenate([estimator.score(faces.crops(part, CROP_SPEC))
                            for part in np.array_split(index, 32)])
    return {"views": len(scores), "p01": float(np.percentile(scores, 1)),
            "p99": float(np.percentile(scores, 99)), "clean_median": float(np.median(clean)),
            "views_median": float(np.median(scores))}


def figure(device: torch.device) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    estimator = fiqa.create("attention", device=device)
    pairs = read_lfw_pairs(LFW / "pairs.txt", LFW / "images")
    paths = pair_paths(pairs)
    sample = np.random.default_rng(0).choice(paths, size=400, replace=False)
    items = [item for item in explain_images(sample, estimator) if item.status == "ok"]
    order = np.argsort([item.score for item in items])
    best, worst = [items[i] for i in order[::-1][:4]], [items[i] for i in order[:4]]
    crop = torch.from_numpy(best[0].crop).permute(2, 0, 1)[None]
    degraded = [(kind, degrade(crop, kind, level, np.random.default_rng(0)))
                for kind, level in (("blur", 0.6), ("resolution", 0.85), ("occlusion", 0.7),
                                    ("dark", 0.8))]
    cells = [(f"best {i + 1}", item.crop, item.heatmap) for i, item in enumerate(best)]
    cells += [(f"worst {i + 1}", item.crop, item.heatmap) for i, item in enumerate(worst)]
    cells += [(f"best 1, {kind}", view[0].permute(1, 2, 0).numpy(), estimator.explain(view)[0])
              for kind, view in degraded]
    fig, axes = plt.subplots(3, 4, figsize=(10, 6.4))
    for axis, (label, image, heatmap) in zip(axes.flat, cells, strict=True):
        score = float(heatmap.mean())
        axis.imshow(np.concatenate([image, overlay(image, heatmap, estimator.score_range)], 1))
        axis.set_title(f"{label}: quality {estimator.to_quality(score):.0f}", fontsize=9)
        axis.axis("off")
    fig.suptitle("ATTN-FIQA per-patch maps (viridis over the 0–100 range: dark = low); "
                 "LFW View 2, never trained on", fontsize=10)
    fig.tight_layout()
    target = ROOT / "docs" / "img" / "attention_heatmaps.png"
    fig.savefig(target, dpi=90)
    brightness = [item.crop[36:104, 28:84].mean() for item in items]  # baseline's face region
    return {"image": str(target.relative_to(ROOT)), "scored": len(items),
            "spearman_score_vs_face_brightness": float(spearmanr([i.score for i in items],
                                                                 brightness)[0]),
            "best": [[Path(i.path).name, round(i.score, 4)] for i in best],
            "worst": [[Path(i.path).name, round(i.score, 4)] for i in worst]}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p05": float(np.percentile(values, 5)), "count": len(values)}


SECTIONS = {"agreement": agreement, "range": score_range, "figure": figure}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for section in args.sections:
        results[section] = SECTIONS[section](device)
        print(section, json.dumps(results[section], indent=1), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
