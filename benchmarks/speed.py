"""Throughput, batch sizes swept: faces/s of detection + alignment + baseline, embeddings/s,
and scores/s of chosen estimators on aligned crops.

    python benchmarks/speed.py [--device cpu|cuda] [--images 256] [--batch-sizes 1,8,32,64]
                               [--recognizers dlib,faceres] [--precisions fp32,fp16,bf16]
                               [--estimators attention,magface]

Images are decoded (and, for recognizers, aligned) beforehand, so the figures are compute only;
`fiqa score` decodes in parallel threads. Writes benchmarks/results/speed_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

import fiqa
from fiqa.recognizers import recognizer

ROOT = Path(__file__).resolve().parents[1]


def rate(work: Callable[[int, int], int], total: int, batch_size: int, device: str) -> dict:
    """Items per second of ``work(start, stop)`` (returning items done) over ``total`` items."""
    work(0, batch_size)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, done = time.perf_counter(), 0
    for i in range(0, total, batch_size):
        done += work(i, min(i + batch_size, total))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"batch_size": batch_size, "items": done, "seconds": round(seconds, 2),
            "per_s": round(done / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    parser.add_argument("--recognizers", default="dlib,faceres")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--estimators", default="", help="also time these on aligned crops")
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    paths = sorted((args.lfw / "images").rglob("*.jpg"))[::13][: args.images]
    images = [fiqa.read_image(p) for p in paths]
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "hardware": torch.cuda.get_device_name() if args.device.startswith("cuda")
              else platform.processor() or platform.machine(), "score": [], "embed": {},
              "measure": {}}

    for batch_size in batch_sizes:  # detection + alignment + baseline, per face
        scorer = fiqa.Scorer(["baseline"], device=args.device, batch_size=batch_size)
        result = rate(lambda a, b, s=scorer: sum(len(f) for f, _ in s.score_images(images[a:b])),
                      len(images), batch_size, args.device)
        report["score"].append(result)
        print("score", result)

    scorer = fiqa.Scorer((), device=args.device)
    located = scorer.locate(images)
    points, faces = [p for _, p in located], fiqa.Faces.concat([f for f, _ in located])
    for name in args.recognizers.split(","):
        for precision in args.precisions.split(","):
            model = recognizer(name, device=args.device, precision=precision)
            crops = scorer.crops(images, points, model.crop_spec)
            for batch_size in batch_sizes:
                result = rate(lambda a, b, m=model, c=crops: len(m.embed(c[a:b])), len(crops),
                              batch_size, args.device)
                report["embed"].setdefault(f"{name} {precision}", []).append(result)
                print(name, precision, result)
    for name in filter(None, args.estimators.split(",")):
        estimator = fiqa.create(name, device=args.device)
        crops = scorer.crops(images, points, estimator.crop_spec)
        for batch_size in batch_sizes:
            result = rate(lambda a, b, e=estimator, c=crops: len(e.score(c[a:b], faces[a:b])),
                          len(crops), batch_size, args.device)
            report["measure"].setdefault(name, []).append(result)
            print(name, result)
    out = ROOT / "benchmarks" / "results" / f"speed_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
