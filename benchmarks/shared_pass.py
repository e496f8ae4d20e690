"""Shared backbone passes: models reading SFace, scored together, against one pass per model.

    OMP_NUM_THREADS=1 python benchmarks/shared_pass.py [--faces 64] [--threads 1]

Times the Scorer's ``measure`` (alignment and every model; detection excluded) on LFW faces for
``-m magface,ri,sface-norm -r sface``, then the same four models run one by one on the same crops,
and writes faces/s of both to benchmarks/results/shared_pass.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import fiqa
from fiqa import Scorer
from fiqa.imageio import read_image
from fiqa.recognizers import recognizer

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS, RECOGNIZERS = ("magface", "ri", "sface-norm"), ("sface",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted((args.lfw / "images").glob("*/*_0001.jpg"))[::11][:args.faces]
    images = [read_image(path) for path in paths]
    scorer = Scorer(ESTIMATORS, RECOGNIZERS, device="cpu", batch_size=32)
    located = scorer.locate(images)
    faces, points = [f for f, _ in located], [p for _, p in located]
    scorer.measure(images, faces, points)  # warm-up
    started = time.perf_counter()
    scorer.measure(images, faces, points)
    shared = time.perf_counter() - started
    models = [fiqa.create(name, device="cpu") for name in ESTIMATORS]
    models += [recognizer(name, "cpu") for name in RECOGNIZERS]
    crops = scorer.crops(images, points, models[0].crop_spec)
    started = time.perf_counter()
    for model in models:
        for i in range(0, len(crops), 32):
            batch = crops[i:i + 32]
            model.embed(batch) if hasattr(model, "embed") else model.score(batch)
    separate = time.perf_counter() - started
    result = {"faces": len(crops), "threads": args.threads, "models": [*ESTIMATORS, *RECOGNIZERS],
              "shared_faces_per_s": round(len(crops) / shared, 1),
              "one_pass_per_model_faces_per_s": round(len(crops) / separate, 1),
              "speed_up": round(separate / shared, 2)}
    print(json.dumps(result, indent=1))
    out = ROOT / "benchmarks" / "results" / "shared_pass.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
