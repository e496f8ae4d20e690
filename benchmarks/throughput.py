"""End-to-end throughput of `fiqa score` on a folder of mixed-size photos, three ways.

    python benchmarks/throughput.py [--photos 500] [--device cpu] [--threads 2] [--repeats 3]

The folder: ``--photos`` LFW and CelebA photos, each resized by a seeded factor of 0.5–3
(125–750 px a side) and written once to ``.fiqa-cache/throughput/`` (JPEG, quality 92). Then, on
the same folder, in one run:

* ``default``: what ``fiqa score <folder>`` runs (the Scorer with the ``baseline`` estimator, the
  default detector, batches of 32, two decoding threads), faces/s end to end;
* ``learned``: the same with every learned estimator together (``magface,ri,ri-proximity,
  landmarks,attention``);
* ``reference``: the learned estimators in a loop written as reference repositories score: per
  photo decode, detect, align, then each model on its own at batch 1.

Each run is repeated ``--repeats`` times, interleaved, and reported by its median (single runs on
the shared 2-core machine vary by ±15 %), with every run's seconds kept. Reported as faces/s, the
ratios the speed issue asks for (learned / default, learned / reference), and the peak resident
memory of the process, in
``benchmarks/results/throughput_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import fiqa
from fiqa import Scorer
from fiqa.imageio import read_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
LEARNED = ("magface", "ri", "ri-proximity", "landmarks", "attention")


def mixed_folder(count: int, folder: Path, seed: int = 0) -> list[Path]:
    """``count`` LFW and CelebA photos resized by a seeded factor of 0.5–3, written once."""
    sources = sorted((DATA / "lfw" / "images").glob("*/*.jpg"))[::7]
    sources += sorted((DATA / "celeba").glob("*/*.jpg"))[::7]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sources), size=count, replace=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, factor in zip(chosen, rng.uniform(0.5, 3.0, count), strict=True):
        target = folder / f"{index:06d}_{factor:.2f}.jpg"
        if not target.is_file():
            with Image.open(sources[index]) as image:
                size = (round(image.width * factor), round(image.height * factor))
                image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target,
                                                                                 quality=92)
        paths.append(target)
    return paths


def scorer_run(paths: list[Path], scorer: Scorer) -> tuple[int, float]:
    """(faces, seconds) of the Scorer over ``paths``."""
    started = time.perf_counter()
    faces = sum(row.get("status") == "ok" for rows in scorer.run(paths) for row in rows)
    return faces, time.perf_counter() - started


def reference_run(paths: list[Path], locator: Scorer, models: list) -> tuple[int, float]:
    """Per photo: decode, detect, align, then each learned estimator alone at batch 1."""
    started, faces = time.perf_counter(), 0
    for path in paths:
        image = read_image(path)
        found, points = locator.locate([image])[0]
        if len(found) == 0:
            continue
        for model in models:
            crop = locator.crops([image], [points], model.crop_spec)
            model.score(crop, found)
        faces += 1
    return faces, time.perf_counter() - started


def measured(runs: list[tuple[int, float]]) -> dict:
    """Faces, the median run's seconds and faces/s, and every run's seconds."""
    faces, seconds = runs[0][0], float(np.median([s for _, s in runs]))
    return {"faces": faces, "seconds": round(seconds, 2), "faces_per_s": round(faces / seconds, 1),
            "runs_s": [round(s, 2) for _, s in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = mixed_folder(args.photos, ROOT / ".fiqa-cache" / "throughput")
    sizes = [Image.open(p).size for p in paths]
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "threads": args.threads,
        "photos": len(paths), "sides_px": [min(min(s) for s in sizes), max(max(s) for s in sizes)],
    }
    default = Scorer(("baseline",), device=args.device)
    learned = Scorer(LEARNED, device=args.device)
    locator, models = Scorer((), device=args.device), [fiqa.create(n, args.device) for n in LEARNED]
    for scorer in (default, learned):
        list(scorer.run(paths[:8]))  # warm-up; models are built before the clock starts
    runs: dict[str, list] = {"default": [], "learned": [], "reference": []}
    for _ in range(args.repeats):
        runs["default"].append(scorer_run(paths, default))
        runs["learned"].append(scorer_run(paths, learned))
        runs["reference"].append(reference_run(paths, locator, models))
    result.update({name: measured(values) for name, values in runs.items()})
    result["learned_over_default"] = round(result["learned"]["faces_per_s"]
                                           / result["default"]["faces_per_s"], 3)
    result["learned_over_reference"] = round(result["learned"]["faces_per_s"]
                                             / result["reference"]["faces_per_s"], 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=1))
    out = ROOT / "benchmarks" / "results" / f"throughput_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
