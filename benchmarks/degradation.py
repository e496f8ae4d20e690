"""Estimator scores against synthetic degradation strength, on LFW View 2 faces (never trained on).

    python benchmarks/degradation.py [-m magface,dlib-norm,baseline] [--kinds blur,resolution,...]
                                     [--images 200] [--name degradation]

Each face is detected once on the clean image; the whole image is then degraded and every
estimator sees crops of the degraded image at the clean landmarks (so detection failures do not
mix in). ``resolution`` shrinks the image until the face's 112×112-template crop spans 8…112
pixels (the estimators' crops are upsampled back, as for a small face in a real capture);
``blur`` is a Gaussian of σ 0…8 image pixels; the other kinds use fiqa.training.degrade at levels
0…1. Writes benchmarks/results/<name>.json and docs/img/<name>.png (mean 0–100 quality ± 95 % CI
per estimator and level), and docs/img/degradations.png: the kinds and levels on one face.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import fiqa
from fiqa.imageio import LoadedImage
from fiqa.training.degrade import degrade
from fiqa.verification import read_lfw_pairs

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
FACE_SIDES = (112, 80, 56, 40, 28, 20, 14, 10, 8)  # px of the 112-template crop
SIGMAS = (0, 1, 2, 3, 4, 6, 8)  # px on the original image
LEVELS = (0, 0.2, 0.4, 0.6, 0.8, 1.0)
LEVELS_OF = {"blur": SIGMAS, "resolution": FACE_SIDES}
TEMPLATE_EYES = 35.24  # inter-eye distance of the 112×112 ArcFace template, px


def degraded(image: LoadedImage, points: np.ndarray, kind: str,
             level: float, rng: np.random.Generator) -> tuple[LoadedImage, np.ndarray]:
    """The image degraded by ``kind`` at ``level`` (σ px, face side px or 0–1) and its landmarks."""
    pixels = torch.from_numpy(image.pixels).permute(2, 0, 1)[None]
    if kind == "resolution":
        eyes = np.linalg.norm(points[0, 1] - points[0, 0])
        factor = min(1.0, level / (eyes / TEMPLATE_EYES * 112))
        size = [max(2, round(s * factor)) for s in pixels.shape[-2:]]
        small = F.interpolate(pixels.float(), size=size, mode="area")
        out = small.round().clamp(0, 255).to(torch.uint8)
        points = points * np.array(size[::-1]) / np.array(pixels.shape[-2:][::-1])
    elif kind == "blur":
        out = degrade(pixels, "blur", level / 6 * 150 / pixels.shape[-1]) if level else pixels
    else:
        out = degrade(pixels, kind, level, rng)
    return LoadedImage(out[0].permute(1, 2, 0).contiguous().numpy(), 1.0), points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-m", "--estimators", default="magface,dlib-norm,baseline")
    parser.add_argument("--kinds", default="blur,resolution,noise,jpeg,occlusion,dark")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--name", default="degradation")
    args = parser.parse_args()
    pairs = read_lfw_pairs(LFW / "pairs.txt", LFW / "images")
    paths = sorted(set(pairs["path_a"]))[:: max(1, len(set(pairs["path_a"])) // args.images)]
    scorer = fiqa.Scorer(args.estimators.split(","), device="cpu")
    images = [fiqa.read_image(p) for p in paths[:args.images]]
    located = scorer.locate(images)
    kept = [i for i, (f, _) in enumerate(located) if len(f)]
    results = {"images": len(kept), "source": "LFW View 2 images (first image of each pair)",
               "estimators": {}}
    for kind in args.kinds.split(","):
        levels = LEVELS_OF.get(kind, LEVELS)
        for level in levels:
            rng = np.random.default_rng(0)
            batch = [degraded(images[i], located[i][1], kind, level, rng) for i in kept]
            measures = scorer.measure([b[0] for b in batch], [located[i][0] for i in kept],
                                      [b[1] for b in batch])
            for estimator in scorer.estimators:
                quality = np.concatenate([m[f"{estimator.name}.quality"] for m in measures])
                raw = np.concatenate([m[estimator.name] for m in measures])
                entry = results["estimators"].setdefault(estimator.name, {}).setdefault(kind, [])
                entry.append({"level": level, "quality_mean": float(np.nanmean(quality)),
                              "quality_ci": float(1.96 * np.nanstd(quality) / np.sqrt(len(kept))),
                              "raw_mean": float(np.nanmean(raw))})
            print(kind, level, {e.name: round(results["estimators"][e.name][kind][-1]
                                              ["quality_mean"], 1) for e in scorer.estimators},
                  flush=True)
    contact_sheet(images[kept[0]], located[kept[0]][1], ROOT / "docs" / "img" / "degradations.png")
    (ROOT / "benchmarks" / "results" / f"{args.name}.json").write_text(
        json.dumps(results, indent=1) + "\n")
    plot(results, ROOT / "docs" / "img" / f"{args.name}.png")


def contact_sheet(image: LoadedImage, points: np.ndarray, path: Path) -> None:
    """One row per degradation kind: the face's 112×112 crop at six levels."""
    rows = []
    for kind in ("blur", "resolution", "noise", "jpeg", "occlusion", "dark"):
        levels = LEVELS_OF.get(kind, LEVELS)
        crops = [fiqa.align(torch.from_numpy(d.pixels).permute(2, 0, 1), p)[0]
                 for d, p in (degraded(image, points, kind, level, np.random.default_rng(0))
                              for level in levels[:6])]
        rows.append(torch.cat(crops, 2))
    Image.fromarray(torch.cat(rows, 1).permute(1, 2, 0).numpy()).save(path)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(next(iter(results["estimators"].values())))
    figure, axes = plt.subplots(1, len(kinds), figsize=(3.6 * len(kinds), 3.4), squeeze=False)
    units = {"blur": "Gaussian σ (image px)", "resolution": "face crop side (px)"}
    for axis, kind in zip(axes[0], kinds, strict=True):
        for name, by_kind in results["estimators"].items():
            rows = by_kind[kind]
            x = [r["level"] for r in rows]
            y = np.array([r["quality_mean"] for r in rows])
            ci = np.array([r["quality_ci"] for r in rows])
            axis.plot(x, y, marker=".", label=name)
            axis.fill_between(x, y - ci, y + ci, alpha=0.2)
        axis.set(title=kind, xlabel=units.get(kind, "level"), ylim=(0, 100))
        if kind == "resolution":
            axis.set_xscale("log", base=2)
            axis.invert_xaxis()
    axes[0][0].set_ylabel("mean quality (0–100)")
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
