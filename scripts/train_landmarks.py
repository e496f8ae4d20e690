"""Train the landmark-regression forest into weights/landmarks_rf.safetensors (or, with
``--points 68``, weights/landmarks68_rf.safetensors); CPU, seeded, deterministic.

    python scripts/train_landmarks.py [--points 5|68] [--trees 100] [--max-depth 12] ...
    python scripts/train_landmarks.py --recognizer dlib --sources celeba,lfw --name NAME
                                        # round 1's recipe as another forest: fiqa.create(
                                        # "landmarks", forest="NAME")

Data: fiqa.training.data.training_images(sources=...) (five points: CelebA alone, no LFW image,
SFace's margin as the target; 68 points: CelebA + LFW people outside View 2 and dlib's margin,
round 1's recipe) and downscaled copies, their detections and embeddings read from the feature
cache (computed there first if missing: about 5 min on 2 cores for the five points; later runs
take ~1 min, ~8 min with --points 68). Prints the report (held-out accuracy, importances) as JSON,
stores it in the manifest notes and plots the feature importances. See docs/landmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import sklearn
from rich.progress import Progress

from fiqa.training.data import DEFAULT_DATA
from fiqa.training.landmarks import ForestConfig, load_training_data, train
from fiqa.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"celeba": "CelebA", "fiw": "FIW", "lfw": "LFW"}
LICENCE = ("MIT (this training code); trained on {} images, published for non-commercial "
           "research use only")
LICENCE_68 = "; its inputs come from dlib's 68-point predictor, trained on iBUG 300-W "\
    "(non-commercial use only)"


def plot_importances(importances: dict[str, float], path: Path, title: str, top: int = 20) -> None:
    """Bar charts: the ``top`` most important features, and the importance of each feature group
    (all shape coordinates together, all point residuals together, each other feature alone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, float] = {}
    for name, value in importances.items():
        group = {"shape": "shape (all coordinates)", "residual": "residuals (all points)"}.get(
            name.split("_")[0], name)
        groups[group] = groups.get(group, 0.0) + value
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 0.28 * top + 1.4))
    for axes, values, label in ((left, importances, f"top {top} features"),
                                (right, groups, "feature groups")):
        names, heights = zip(*sorted(values.items(), key=lambda kv: kv[1])[-top:], strict=True)
        axes.barh(names, heights, color="#4c72b0")
        axes.set_title(label)
        axes.set_xlabel("impurity-based importance (sums to 1)")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, choices=(5, 68), default=5,
                        help="MTCNN's five landmarks or dlib's 68 (needs dlib-bin)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with celeba/, lfw/")
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache",
                        help="feature cache (detections, the target recognizer's embeddings)")
    parser.add_argument("--recognizer", default=None,
                        help="whose margin is the target (default: sface; dlib with --points 68)")
    parser.add_argument("--sources", default=None,
                        help="comma-separated training sources (default: celeba; celeba,lfw with "
                             "--points 68)")
    parser.add_argument("--name", default=None,
                        help="weights name (default: landmarks_rf, or landmarks68_rf)")
    parser.add_argument("--copies", type=float, default=0.5,
                        help="fraction of images also used as downscaled copies (1/8 to 1/2 size)")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=12)
    parser.add_argument("--min-leaf", type=int, default=5, help="min_samples_leaf")
    parser.add_argument("--max-features", type=float, default=1 / 3,
                        help="fraction of features tried at each split")
    parser.add_argument("--folds", type=int, default=5,
                        help="identity-disjoint cross-validation folds for the reported metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="importance plot (default docs/img/...)")
    parser.add_argument("--no-save", action="store_true", help="report only, write no weights")
    args = parser.parse_args()

    config = ForestConfig(args.trees, args.max_depth, args.min_leaf, args.max_features, args.seed)
    five = args.points == 5
    recognizer = args.recognizer or ("sface" if five else "dlib")
    sources = tuple((args.sources or ("celeba" if five else "celeba,lfw")).split(","))
    with Progress() as progress:
        dataset = load_training_data(args.points, args.data, args.cache, args.copies, args.seed,
                                     progress, recognizer, sources)
    tensors, _, report = train(dataset, config, args.folds)
    report["config"] = vars(config) | {"recognizer": recognizer, "sources": list(sources)}
    nodes = len(tensors["forest.value"])
    report["nodes"] = nodes
    print(json.dumps(report, indent=2))
    if args.no_save:
        return

    name = args.name or ("landmarks_rf" if five else "landmarks68_rf")
    stem = name.replace("landmarks68", "landmarks_68").removesuffix("_rf")
    plot_importances(report["importances"], args.plot or ROOT / f"docs/img/{stem}_importance.png",
                     f"{name}: top feature importances")
    top = sorted(report["importances"].items(), key=lambda kv: -kv[1])[:5]
    notes = (
        f"scikit-learn {sklearn.__version__} RandomForestRegressor ({json.dumps(vars(config))}), "
        f"exported as flat arrays ({nodes} nodes; forest.left/right/feature/threshold/value/roots,"
        " threshold = largest float32 <= sklearn's), plus mean_shape (generalised Procrustes "
        "mean), fill (training medians) and range (OOB prediction 1st/99th percentiles). Data: "
        f"training_images(sources={list(sources)}), plus downscaled copies (1/8-1/2 size, "
        "re-detected); "
        f"{report['faces']} faces ({report['downscaled_copies']} copies) of "
        f"{report['identities']} identities ({report['celeba_faces']} CelebA, "
        f"{report['lfw_train_faces']} LFW). Target: {recognizer} cosine margin = mean similarity "
        "to the "
        "same identity's other original images - max similarity to any other identity's image. "
        f"Held out ({report['held_out']['folds']}-fold cross-validation by identity, pooled; "
        "reject = margin < 0, cut from each fold's OOB predictions): "
        + "; ".join(
            f"{subset}: R2 {m['r2']:.3f}, Spearman {m['spearman']:.3f}, accuracy "
            f"{m['accuracy']:.3f} (majority {m['majority_accuracy']:.3f}), balanced "
            f"{m['balanced_accuracy']:.3f}, ROC AUC {m['roc_auc']:.3f}"
            for subset, m in ((s, report["held_out"][s]) for s in ("all", "originals")))
        + f". Shipped forest: all identities, OOB R2 {report['oob_r2']:.3f}, reject below "
        f"{report['cut']:.4f}. Top importances: " + ", ".join(f"{k} {v:.3f}" for k, v in top)
    )
    path = save_weights(
        name, tensors,
        source="trained here: scripts/train_landmarks.py (fiqa.training.landmarks)",
        licence=LICENCE.format(" and ".join(DATASETS[source] for source in sources))
        + ("" if five else LICENCE_68),
        made_by=shlex.join(["python", *sys.argv]), notes=notes)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
