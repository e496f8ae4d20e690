"""ATTN-FIQA and our face ViT: teacher agreement, score range, heatmaps and appearance bias.

    python benchmarks/attention.py [agreement] [range] [figure] [bias] [--device auto]
    python benchmarks/attention.py bias --model OLD.safetensors --score-range -3.4 2.0 \\
        --label round1                              # the same bias check on another face ViT

* agreement: on the LFW View 2 pair images (no LFW image was trained on), the cosine between the
  student's embedding and SFace's unit embedding centred on the training mean (what the student
  learned), beside the centred cosine of SFace's own genuine and impostor pairs for scale.
* range: attention scores of 2,000 training photo views (clean and degraded as whole photos,
  fiqa.training.photo_views): the 1st and 99th percentiles are the estimator's 0–100 range.
* figure: docs/img/attention_heatmaps.png, the four best and four worst of 400 View 2 images by
  attention score, and the best one as a whole photo defocused, downscaled, noised, occluded and
  underexposed (detected again), each with its per-patch map.
* bias: on 1,000 View 2 images, the Spearman correlation of the score with the face region's
  mean luminance, and the median 0–100 quality in four luminance groups (quartiles of the face
  region's luminance: a proxy for skin tone and lighting together, not a demographic label),
  for ``attention`` and, for comparison, ``magface``, ``ri`` and ``sface-norm``.

Accuracy of the student as a recognizer: ``python benchmarks/lfw_verification.py --recognizers
sface,vit``. Throughput: ``python benchmarks/speed.py --recognizers vit --estimators attention``.

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
from fiqa.estimators.attention import AttentionQuality
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column
from fiqa.evaluation.protocols import pair_paths
from fiqa.explain import explain_images, overlay
from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.recognizers.face_vit import CROP_SPEC
from fiqa.training import photo_degrade
from fiqa.training.data import WITHOUT_LFW, training_images
from fiqa.training.face_vit import clean_embeddings
from fiqa.training.photo_views import cached_photo_views
from fiqa.verification import read_lfw_pairs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "attention.json"
LFW = ROOT.parent / "shared" / "data" / "lfw"
FACE_REGION = (slice(36, 104), slice(28, 84))  # rows, columns of the crop: the baseline's region
LUMA = torch.tensor([0.299, 0.587, 0.114])  # Rec. 601 weights of R, G, B
# Whole-photo degradations of the figure (evaluation-recipe kinds, strong settings).
FIGURE_DEGRADATIONS = {
    "defocus": {"radius": 0.35, "psf": "gaussian"},
    "downscale": {"eye_distance": 6.0, "down": "nearest", "up": "bilinear"},
    "noise": {"shot": 0.05, "read": 0.03, "per_channel": True},
    "occlusion": {"region": "eyes", "fill": "dark"},
    "exposure": {"stops": -3.0, "gamma": 1.3},
}


@cache
def training_views(crops: bool = False):
    """The student's training photo views (CelebA + FIW), loaded once per run."""
    return cached_photo_views(training_images(sources=WITHOUT_LFW), views=2, seed=0,
                              cache=ROOT / ".fiqa-cache", crops=crops)


def view2_paths() -> list[str]:
    return pair_paths(read_lfw_pairs(LFW / "pairs.txt", LFW / "images"))


def agreement(device: torch.device, args: argparse.Namespace) -> dict:
    pairs = read_lfw_pairs(LFW / "pairs.txt", LFW / "images")
    paths = pair_paths(pairs)
    with Progress() as progress:
        columns, _ = compute_features(paths, Scorer((), ["sface", "vit"], device=device),
                                      FeatureCache(ROOT / ".fiqa-cache"), progress)
    centre = clean_embeddings(training_views()).mean(0).numpy()
    found = ~np.isnan(columns[embedding_column("vit")][:, 0])
    teacher = _unit(_unit(columns[embedding_column("sface")][found]) - centre)
    student = _unit(columns[embedding_column("vit")][found])
    cosine = (teacher * student).sum(1)
    row = {path: i for i, path in enumerate(np.asarray(paths)[found])}
    known = pairs["path_a"].isin(row) & pairs["path_b"].isin(row)
    a = pairs.loc[known, "path_a"].map(row).to_numpy()
    b = pairs.loc[known, "path_b"].map(row).to_numpy()
    same = pairs.loc[known, "same"].to_numpy()
    teacher_pairs = (teacher[a] * teacher[b]).sum(1)
    student_pairs = (student[a] * student[b]).sum(1)
    return {"images": int(found.sum()),
            "student_vs_centred_teacher": _summary(cosine),
            "teacher_centred_genuine_pairs": _summary(teacher_pairs[same]),
            "teacher_centred_impostor_pairs": _summary(teacher_pairs[~same]),
            "student_genuine_pairs": _summary(student_pairs[same]),
            "student_impostor_pairs": _summary(student_pairs[~same])}


def score_range(device: torch.device, args: argparse.Namespace) -> dict:
    views = training_views(crops=True)
    estimator = fiqa.create("attention", device=device)
    index = np.sort(np.random.default_rng(1).choice(len(views), size=2000, replace=False))
    scores = np.concatenate([estimator.score(views.crops[torch.from_numpy(part)])
                             for part in np.array_split(index, 32)])
    clean = views.view[index] == 0
    return {"views": len(scores), "p01": float(np.percentile(scores, 1)),
            "p99": float(np.percentile(scores, 99)),
            "clean_median": float(np.median(scores[clean])),
            "degraded_median": float(np.median(scores[~clean]))}


def figure(device: torch.device, args: argparse.Namespace) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    estimator = fiqa.create("attention", device=device)
    sample = np.random.default_rng(0).choice(view2_paths(), size=400, replace=False)
    items = [item for item in explain_images(sample, estimator) if item.status == "ok"]
    order = np.argsort([item.score for item in items])
    best, worst = [items[i] for i in order[::-1][:4]], [items[i] for i in order[:4]]
    cells = [(f"best {i + 1}", item.crop, item.heatmap) for i, item in enumerate(best)]
    cells += [(f"worst {i + 1}", item.crop, item.heatmap) for i, item in enumerate(worst)]
    cells += [(f"best 1, {kind}", crop, estimator.explain(torch.from_numpy(crop).permute(
        2, 0, 1)[None])[0]) for kind, crop in degraded_photos(best[0].path, device)]
    rows = -(-len(cells) // 4)
    fig, axes = plt.subplots(rows, 4, figsize=(10, 2.15 * rows))
    for axis in axes.flat:
        axis.axis("off")
    for axis, (label, image, heatmap) in zip(axes.flat, cells, strict=False):
        score = float(heatmap.mean())
        axis.imshow(np.concatenate([image, overlay(image, heatmap, estimator.score_range)], 1))
        axis.set_title(f"{label}: quality {estimator.to_quality(score):.0f}", fontsize=9)
    fig.suptitle("ATTN-FIQA per-patch maps (viridis over the 0–100 range: dark = low); "
                 "LFW View 2, never trained on", fontsize=10)
    fig.tight_layout()
    target = ROOT / "docs" / "img" / "attention_heatmaps.png"
    fig.savefig(target, dpi=90)
    return {"image": str(target.relative_to(ROOT)), "scored": len(items),
            "best": [[Path(i.path).name, round(i.score, 4)] for i in best],
            "worst": [[Path(i.path).name, round(i.score, 4)] for i in worst]}


def degraded_photos(path: str, device: torch.device) -> list[tuple[str, np.ndarray]]:
    """(kind, 112×112×3 crop) of the photo at ``path`` under each of FIGURE_DEGRADATIONS,
    applied to the whole photo, the face detected again (kinds that lose it are left out)."""
    scorer = Scorer((), device=device)
    photo = read_image(path)
    (_, points), = scorer.locate([photo])
    crops = {kind: photo_degrade.redetected(photo.pixels, points[0], kind, params, scorer,
                                            CROP_SPEC)
             for kind, params in FIGURE_DEGRADATIONS.items()}
    return [(kind, crop) for kind, crop in crops.items() if crop is not None]


def bias(device: torch.device, args: argparse.Namespace) -> dict:
    attention = fiqa.create("attention", device=device) if args.model is None else \
        AttentionQuality(device, model=args.model, score_range=tuple(args.score_range))
    others = [fiqa.create(name, device=device) for name in ("magface", "ri", "sface-norm")]
    scorer = Scorer((), device=device)
    sample = np.random.default_rng(2).choice(view2_paths(), size=1000, replace=False)
    luminance, quality = [], {e.name: [] for e in [attention, *others]}
    with Progress() as progress:
        task = progress.add_task("bias", total=len(sample))
        for start in range(0, len(sample), 50):
            images = [read_image(path) for path in sample[start:start + 50]]
            located = scorer.locate(images)
            kept = [(image, points[:1]) for image, (faces, points) in
                    zip(images, located, strict=True) if len(faces)]
            crops = scorer.crops([k[0] for k in kept], [k[1] for k in kept], CROP_SPEC)
            grey = (crops.float() * LUMA[None, :, None, None]).sum(1)
            luminance += grey[:, FACE_REGION[0], FACE_REGION[1]].mean((1, 2)).tolist()
            for estimator in [attention, *others]:
                quality[estimator.name] += estimator.to_quality(estimator.score(crops)).tolist()
            progress.advance(task, len(images))
    luminance = np.array(luminance)
    edges = np.percentile(luminance, [25, 50, 75])
    group = np.searchsorted(edges, luminance)
    result = {"label": args.label, "faces": len(luminance),
              "luminance_quartile_edges": edges.round(1).tolist()}
    for name, values in quality.items():
        values = np.array(values)
        medians = [float(np.median(values[group == g])) for g in range(4)]
        result[name] = {"spearman_vs_luminance": float(spearmanr(values, luminance)[0]),
                        "median_quality_by_luminance_quartile": [round(m, 1) for m in medians],
                        "spread": round(max(medians) - min(medians), 1)}
    return result


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p05": float(np.percentile(values, 5)), "count": len(values)}


SECTIONS = {"agreement": agreement, "range": score_range, "figure": figure, "bias": bias}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", type=Path, default=None, help="bias: another face ViT file")
    parser.add_argument("--score-range", type=float, nargs=2, default=None,
                        help="bias: that model's raw score range")
    parser.add_argument("--label", default="shipped", help="bias: the result's key suffix")
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for section in args.sections:
        key = section if section != "bias" else f"bias_{args.label}"
        results[key] = SECTIONS[section](device, args)
        print(key, json.dumps(results[key], indent=1), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
