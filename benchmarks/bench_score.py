"""Faces/s of detection + alignment + baseline scoring, batch sizes swept.

    python benchmarks/bench_score.py [--device cpu|cuda] [--images 256] [--batch-sizes 1,8,32,64]

Images are decoded once beforehand, so the figures are compute only (decoding runs in parallel
threads in `fiqa score`). Writes benchmarks/results/speed_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import fiqa

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-sizes", default="1,8,32,64")
    args = parser.parse_args()
    paths = sorted((args.lfw / "images").rglob("*.jpg"))[:: 13][: args.images]
    images = [fiqa.read_image(p) for p in paths]
    results = []
    for batch_size in map(int, args.batch_sizes.split(",")):
        scorer = fiqa.Scorer(["baseline"], device=args.device, batch_size=batch_size)
        scorer.score_images(images[:batch_size])  # warm-up
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        faces = 0
        for i in range(0, len(images), batch_size):
            faces += sum(len(f) for f, _ in scorer.score_images(images[i:i + batch_size]))
        if scorer.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        results.append({"batch_size": batch_size, "images": len(images), "faces": faces,
                        "seconds": round(seconds, 2), "faces_per_s": round(faces / seconds, 1)})
        print(results[-1])
    cuda = args.device.startswith("cuda")
    device = torch.cuda.get_device_name() if cuda else platform.processor()
    report = {"device": args.device, "hardware": device or platform.machine(),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "results": results}
    out = ROOT / "benchmarks" / "results" / f"speed_{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
