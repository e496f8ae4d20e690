"""Detection speed of every detector (with fiqa's orientation retry), on LFW and on mixed sizes.

    python benchmarks/detection_speed.py [--images 256] [--threads 2] [--device cpu]

Two sets of decoded photos, both held in memory so the figure is the detector's: ``lfw`` (LFW
images, all 250×250) and ``mixed`` (a third each of LFW, CelebA and FIW photos, of which every
fourth is enlarged to one of 640×480, 1024×768, 1600×1200 or 480×640: 112 to 1600 px sides).
Each detector runs ``fiqa.orientation.detect_upright`` over batches of 32, after one warm-up
batch. Then YuNet on benchmarks/throughput.py's folder (500 photos of continuous sizes, 125–750
px) at each ``--pad-to`` (images padded to that multiple, so more sizes share a pass): images/s,
network passes (with this device's pixel budget per pass, and with a GPU's), and how far the best
face's landmarks move from those at 32 (OpenCV's padding), in eye distances. Writes
benchmarks/results/detection_speed.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from throughput import mixed_folder  # benchmarks/ is on sys.path

from fiqa import read_image
from fiqa.detectors import DETECTORS, create_detector
from fiqa.orientation import detect_upright
from fiqa.yunet import YuNet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SIZES = ((640, 480), (1024, 768), (1600, 1200), (480, 640))


def photo_sets(count: int) -> dict[str, list[np.ndarray]]:
    """``count`` LFW photos, and ``count`` photos of mixed sources and sizes (seeded)."""
    def pick(pattern: str, n: int) -> list[Path]:
        paths = sorted(DATA.glob(pattern))
        return [paths[i] for i in np.random.default_rng(0).choice(len(paths), n, replace=False)]

    lfw = [read_image(p).pixels for p in pick("lfw/images/*/*.jpg", count)]
    third = count // 3
    mixed = [read_image(p).pixels for pattern in ("lfw/images/*/*.jpg", "celeba/*/*.jpg",
                                                  "fiw/images/*/*.jpg")
             for p in pick(pattern, third)]
    for i in range(0, len(mixed), 4):
        size = SIZES[(i // 4) % len(SIZES)]
        mixed[i] = np.asarray(Image.fromarray(mixed[i]).resize(size, Image.Resampling.BICUBIC))
    order = np.random.default_rng(1).permutation(len(mixed))
    return {"lfw": lfw, "mixed": [mixed[i] for i in order]}


def throughput(detector, images: list[np.ndarray], batch: int = 32) -> dict:
    detect_upright(detector, images[:batch])  # warm-up
    start = time.perf_counter()
    found = []
    for i in range(0, len(images), batch):
        found += detect_upright(detector, images[i:i + batch])
    elapsed = time.perf_counter() - start
    return {"images": len(images), "seconds": round(elapsed, 2),
            "images_per_s": round(len(images) / elapsed, 1),
            "with_face": sum(len(d.scores) > 0 for d, _ in found),
            "turned_upright": sum(turn != 0 for _, turn in found)}


def padding_sweep(images: list[np.ndarray], pads: list[int], device: str) -> dict:
    """YuNet at each ``pads`` value: throughput, passes, landmark drift from padding to 32."""
    results, reference = {}, None
    for pad in pads:
        detector = YuNet(device, pad_to=pad)
        result = throughput(detector, images)
        for key, budget in (("passes", detector.batch_pixels), ("passes_gpu_budget", 1 << 24)):
            detector.batch_pixels, passes = budget, []
            hook = detector.net.register_forward_pre_hook(
                lambda _m, x, passes=passes: passes.append(len(x[0])))
            found = [d for i in range(0, len(images), 32)
                     for d in detector.detect(images[i:i + 32])]
            hook.remove()
            result[key] = len(passes)
        best = [d.landmarks[d.scores.argmax()] if len(d.scores) else None for d in found]
        reference = reference or best
        drift = [np.abs(b - r).max() / np.linalg.norm(r[0] - r[1])
                 for b, r in zip(best, reference, strict=True) if b is not None and r is not None]
        result.update(landmark_drift_eyes={
            "median": round(float(np.median(drift)), 4),
            "p99": round(float(np.percentile(drift, 99)), 4), "max": round(float(max(drift)), 4)})
        results[str(pad)] = result
        print("pad_to", pad, result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pad-to", default="32,64,128,256", help="YuNet pad_to values to sweep")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = photo_sets(args.images)
    results = {"threads": args.threads, "device": args.device, "batch": 32,
               "command": f"python benchmarks/detection_speed.py --images {args.images} "
                          f"--threads {args.threads} --device {args.device} --pad-to {args.pad_to}",
               "detectors": {}}
    for name in DETECTORS:
        detector = create_detector(name, args.device)
        results["detectors"][name] = {key: throughput(detector, images)
                                      for key, images in sets.items()}
        print(name, results["detectors"][name])
    pads = [int(pad) for pad in args.pad_to.split(",")]
    folder = [read_image(path).pixels
              for path in mixed_folder(500, ROOT / ".fiqa-cache" / "throughput")]
    results["yunet_pad_to"] = padding_sweep(folder, pads, args.device)
    out = ROOT / "benchmarks" / "results" / "detection_speed.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
