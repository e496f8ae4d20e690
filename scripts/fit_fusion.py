"""Reference scores of the estimators ``fusion`` can fuse → weights/fusion_reference.

    python scripts/fit_fusion.py [--cache .fiqa-cache] [--per-source 1000]

The reference is a seeded draw (numpy seed 0) of ``--per-source`` CelebA photos and as many FIW
crops: training photos as they come, clean, with no LFW image. CelebA is detected with YuNet
(largest face); FIW is already aligned. Every estimator in MEMBERS scores them through the
evaluation cache. The file keeps each one's raw scores over the images where every one has a
face. ``fiqa.estimators.fusion.Fusion`` standardises by their mean and standard deviation.
Nothing is fitted beyond these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from fiqa.device import retain_freed_memory
from fiqa.estimators.fusion import REFERENCE
from fiqa.evaluation.features import FeatureCache, compute_features
from fiqa.pipeline import Scorer
from fiqa.training.data import training_images
from fiqa.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
# networks on the 112-px ArcFace crop that read no detection metadata
MEMBERS = ("magface", "ri", "attention", "sface-norm", "vit-norm", "mobileface-v3-norm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    parser.add_argument("--per-source", type=int, default=1000)
    args = parser.parse_args()
    retain_freed_memory()
    images = training_images(DATA, sources=("celeba", "fiw"))
    rng = np.random.default_rng(0)
    columns = []
    for source in ("celeba", "fiw"):
        paths = [path for path, identity in images if identity.startswith(f"{source}/")]
        drawn = [paths[i] for i in sorted(rng.choice(len(paths), args.per_source, replace=False))]
        scorer = Scorer(list(MEMBERS), device="cpu", aligned=source == "fiw")
        with Progress(transient=True) as progress:
            found, _ = compute_features(drawn, scorer, FeatureCache(args.cache), progress)
        columns.append(np.stack([found[name] for name in MEMBERS]))
    scores = np.concatenate(columns, axis=1)  # members × images
    kept = ~np.isnan(scores).any(axis=0)
    print(f"{kept.sum()} of {scores.shape[1]} images with a face")
    for name, row in zip(MEMBERS, scores[:, kept], strict=True):
        print(f"{name}: mean {row.mean():.4f}, std {row.std():.4f}")
    save_weights(REFERENCE, {name: torch.from_numpy(row.astype(np.float32))
                             for name, row in zip(MEMBERS, scores[:, kept], strict=True)},
                 source=f"raw scores of {kept.sum()} training photos ({args.per_source} CelebA "
                        f"photos and {args.per_source} FIW crops drawn with numpy seed 0; no LFW "
                        "image) by the estimators named",
                 licence="scores of CelebA and FIW photos (data published for non-commercial "
                         "research)",
                 made_by="python scripts/fit_fusion.py " + " ".join(sys.argv[1:]),
                 notes="fiqa.estimators.fusion standardises each member by its mean and "
                       "standard deviation here; the fused score's 1st-99th percentile here is "
                       "its 0-100 range")


if __name__ == "__main__":
    main()
