"""Throughput of the landmark-regression estimators once faces are detected: faces/s.

    python benchmarks/landmarks_speed.py [--images 256] [--faces 20000] [--batch-sizes 1,64,1024]

``landmarks``: real LFW detections (MTCNN, done beforehand) tiled to ``--faces`` faces, scored in
batches: features (Procrustes, pose, size, confidence) + the forest in numpy; its crops are not
read, so placeholders stand in. ``landmarks68`` (when dlib is installed): the same on real
150×150 dlib chips, dlib's 68-point predictor included. CPU only; writes
benchmarks/results/landmarks_speed_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

import fiqa

ROOT = Path(__file__).resolve().parents[1]


def faces_per_second(estimator: fiqa.QualityEstimator, crops: torch.Tensor, faces: fiqa.Faces,
                     batch_size: int, repeat: int = 3) -> dict:
    """Best of ``repeat`` passes over all faces, in batches of ``batch_size``."""
    estimator(crops[:batch_size], faces[:batch_size])  # warm-up
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(0, len(faces), batch_size):
            estimator(crops[i:i + batch_size], faces[i:i + batch_size])
        best = min(best, time.perf_counter() - start)
    return {"batch_size": batch_size, "faces": len(faces), "seconds": round(best, 3),
            "per_s": round(len(faces) / best, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--images", type=int, default=256, help="LFW images detected")
    parser.add_argument("--faces", type=int, default=20000, help="faces scored by `landmarks`")
    parser.add_argument("--batch-sizes", default="1,64,1024")
    args = parser.parse_args()
    torch.set_num_threads(2)
    paths = sorted((args.lfw / "images").rglob("*.jpg"))[::13][: args.images]
    images = [fiqa.read_image(p) for p in paths]
    scorer = fiqa.Scorer(estimators=(), device="cpu")
    located = [(image, faces, points) for image, (faces, points)
               in zip(images, scorer.locate(images), strict=True) if len(faces)]
    detected = fiqa.Faces.concat([faces for _, faces, _ in located])
    tiled = detected[np.resize(np.arange(len(detected)), args.faces)]
    placeholder = torch.zeros((1, 3, 112, 112), dtype=torch.uint8).expand(args.faces, -1, -1, -1)
    report = {"device": "cpu", "threads": torch.get_num_threads(),
              "hardware": platform.processor() or platform.machine(),
              "numpy": np.__version__, "landmarks": [], "landmarks68": []}
    estimator = fiqa.create("landmarks", device="cpu")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        faces = tiled if batch_size > 1 else tiled[: min(len(tiled), 2000)]
        report["landmarks"].append(faces_per_second(estimator, placeholder, faces, batch_size))
        print("landmarks", report["landmarks"][-1])

    if find_spec("dlib") and find_spec("face_recognition_models"):
        estimator = fiqa.create("landmarks68", device="cpu")
        chips = scorer.crops([image for image, _, _ in located],
                             [points for _, _, points in located], estimator.crop_spec)
        report["landmarks68"].append(faces_per_second(estimator, chips, detected, 64))
        print("landmarks68", report["landmarks68"][-1])
    target = ROOT / "benchmarks" / "results" / "landmarks_speed_cpu.json"
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
