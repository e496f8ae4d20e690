"""End-to-end throughput of `fiqa score` on a folder of mixed-size photos, three ways.

    python benchmarks/throughput.py [--photos 500] [--device cpu] [--threads 2] [--repeats 3]
                                    [--precisions fp32,bf16] [--workers 2]

The folder: ``--photos`` LFW and CelebA photos, each resized by a seeded factor of 0.5–3
(125–750 px a side) and written once to ``.fiqa-cache/throughput/`` (JPEG, quality 92). Then, on
the same folder, in one run:

* ``default``: what ``fiqa score <folder>`` runs (the Scorer with the ``baseline`` estimator, the
  default detector, batches of 32, two decoding threads), faces/s end to end;
* ``learned``: the same with every learned estimator together (``magface,ri,ri-proximity,
  landmarks,attention``);
* ``reference``: the learned estimators in a loop written as reference repositories score: per
  photo decode, detect, align, then each model on its own at batch 1;
* ``default_processes``: the default run decoding in ``--workers`` spawned processes instead of
  threads (their start inside the clock);
* ``magface`` end to end, and ``magface_model_only``: the network alone on the same faces
  already aligned and on the device (the bound the speed issue compares a GPU run with);
* ``learned`` and ``magface`` again under each other ``--precisions`` (``_bf16``: autocast).

The process retains freed memory as ``fiqa``'s commands do (``--system-allocator``: not).
Each run is repeated ``--repeats`` times, interleaved, and reported by its median (single runs on
the shared 2-core machine vary by ±15 %), with every run's seconds kept. Reported as faces/s, the
ratios the speed issue asks for (learned / default, learned / reference, magface / its model-only
bound), and the peak resident memory of the process, in
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
from fiqa.device import resolve_device, retain_freed_memory
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


def scorer_run(paths: list[Path], scorer: Scorer, workers: int = 2, processes: bool = False
               ) -> tuple[int, float]:
    """(faces, seconds) of the Scorer over ``paths``, decoding in ``workers`` threads (or
    processes, started inside the clock)."""
    started = time.perf_counter()
    faces = sum(row.get("status") == "ok"
                for rows in scorer.run(paths, workers, processes) for row in rows)
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


def aligned(paths: list[Path], locator: Scorer) -> torch.Tensor:
    """The faces of ``paths`` aligned to magface's crops, on the locator's device."""
    images = [read_image(path) for path in paths]
    points = [points for _, points in locator.locate(images)]
    return locator.crops(images, points, fiqa.estimator_class("magface").crop_spec)


def model_only_run(crops: torch.Tensor, model, batch_size: int) -> tuple[int, float]:
    """(faces, seconds) of ``model`` alone on crops already aligned and on its device: the bound
    an end-to-end run approaches when decoding, detection and alignment cost nothing."""
    started = time.perf_counter()
    for start in range(0, len(crops), batch_size):
        model.score(crops[start:start + batch_size])
    if crops.device.type == "cuda":
        torch.cuda.synchronize()
    return len(crops), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="precisions of the learned and magface runs (the default run and "
                        "the reference loop are fp32)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads or processes")
    parser.add_argument("--system-allocator", action="store_true",
                        help="leave malloc as it is instead of retaining freed memory as fiqa's "
                        "commands do (fiqa.device.retain_freed_memory); written to "
                        "throughput_<device>_system_allocator.json")
    parser.add_argument("--folder", type=Path, default=ROOT / ".fiqa-cache" / "throughput",
                        help="where the mixed folder is written once; a machine without the data "
                        "(the GPU's) reads the photos already there")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retained = not args.system_allocator and retain_freed_memory()
    paths = (mixed_folder(args.photos, args.folder) if DATA.is_dir()
             else sorted(args.folder.glob("*.jpg"))[:args.photos])
    sizes = [Image.open(p).size for p in paths]
    device = resolve_device(args.device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "cpu": platform.processor() or platform.machine(), "threads": args.threads,
        "photos": len(paths), "sides_px": [min(min(s) for s in sizes), max(max(s) for s in sizes)],
        "retained_freed_memory": retained,
    }
    precisions = args.precisions.split(",")
    scorers = {"default": Scorer(("baseline",), device=device)}
    for precision in precisions:
        suffix = "" if precision == "fp32" else f"_{precision}"
        scorers[f"learned{suffix}"] = Scorer(LEARNED, device=device, precision=precision)
        scorers[f"magface{suffix}"] = Scorer(("magface",), device=device, precision=precision)
    locator, models = Scorer((), device=device), [fiqa.create(n, device) for n in LEARNED]
    crops = torch.cat([aligned(paths[i:i + 32], locator) for i in range(0, len(paths), 32)])
    magface = {precision: fiqa.create("magface", device, precision=precision)
               for precision in precisions}
    for scorer in scorers.values():
        list(scorer.run(paths[:8]))  # warm-up; models are built before the clock starts
    runs: dict[str, list] = {name: [] for name in
                             [*scorers, "default_processes", "reference",
                              *[f"magface_model_only_{p}" for p in precisions]]}
    for _ in range(args.repeats):
        for name, scorer in scorers.items():
            runs[name].append(scorer_run(paths, scorer, args.workers))
        runs["default_processes"].append(scorer_run(paths, scorers["default"], args.workers,
                                                    processes=True))
        runs["reference"].append(reference_run(paths, locator, models))
        for precision, model in magface.items():
            runs[f"magface_model_only_{precision}"].append(model_only_run(crops, model, 32))
    result.update({name: measured(values) for name, values in runs.items()})
    rate = {name: result[name]["faces_per_s"] for name in runs}
    for name in runs:
        if name.startswith("learned"):
            result[f"{name}_over_default"] = round(rate[name] / rate["default"], 3)
            result[f"{name}_over_reference"] = round(rate[name] / rate["reference"], 2)
        if name.startswith("magface") and "model_only" not in name:
            precision = name.partition("_")[2] or "fp32"
            result[f"{name}_over_model_only"] = round(
                rate[name] / rate[f"magface_model_only_{precision}"], 3)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=1))
    suffix = "_system_allocator" if args.system_allocator else ""
    out = ROOT / "benchmarks" / "results" / f"throughput_{device.type}{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
