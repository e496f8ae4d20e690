"""The Ray engine against the local one on this machine: 1 and 2 local actors, two model sets.

    python benchmarks/ray_engine.py [--photos 500] [--images-per-shard 32] [--repeats 2]

On the speed issue's folder of mixed-size photos (``benchmarks/throughput.py``), for the
``default`` set (``baseline``) and a ``learned`` one (``magface,ri``), each run ``--repeats``
times, interleaved:

* ``local``: the local engine (one Scorer, 2 torch threads, 2 decoding threads, results kept in
  memory: no table is written);
* ``ray_1x2``: one Ray actor reserving 2 CPUs (2 torch threads);
* ``ray_2x1``: two Ray actors reserving 1 CPU each (1 torch thread each).

A Ray run starts its actors (each loads the detector and models) and writes Parquet shards
like ``fiqa score --engine ray``. Reported per run, as medians: the wall seconds for the whole
folder, the seconds until the first shard came back (actor start-up and the first block), and
the steady images/s after it; the local Ray's own start (``ray.init``) once. Results in
``benchmarks/results/ray_engine_cpu.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from throughput import ROOT, mixed_folder

from fiqa import Scorer, ray_engine

SETS = {"default": ("baseline",), "learned": ("magface", "ri")}


def local_run(paths: list[str], methods: tuple[str, ...]) -> dict:
    """The local engine over ``paths``; its model loading is outside the clock, as Ray's is not."""
    torch.set_num_threads(2)
    scorer = Scorer(methods, device="cpu")
    started = time.perf_counter()
    images = sum(1 for _ in scorer.run(paths))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "first_s": 0.0, "steady_images_per_s": images / seconds}


def ray_run(paths: list[str], methods: tuple[str, ...], actors: int, cpus: float,
            images_per_shard: int) -> dict:
    """One Ray run into a fresh shard folder: wall, first shard, steady rate after it."""
    folder = Path(tempfile.mkdtemp()) / "scores.parquet"
    make_scorer = functools.partial(Scorer, methods, (), "cpu")
    todo = list(enumerate(paths))
    started = time.perf_counter()
    times = [time.perf_counter() - started for _ in ray_engine.score(
        todo, str(folder), make_scorer, actors=actors, cpus_per_actor=cpus,
        images_per_shard=images_per_shard)]
    seconds = time.perf_counter() - started
    shutil.rmtree(folder.parent)
    first = times[0]
    after_first = sum(t > first + 0.01 for t in times)  # images of the blocks after the first
    return {"seconds": seconds, "first_s": first,
            "steady_images_per_s": after_first / (seconds - first)}


def median(runs: list[dict]) -> dict:
    return {key: round(float(np.median([run[key] for run in runs])), 2) for key in runs[0]} | {
        "runs_s": [round(run["seconds"], 2) for run in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--images-per-shard", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    paths = [str(p) for p in mixed_folder(args.photos, ROOT / ".fiqa-cache" / "throughput")]
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    ray_engine.connect()
    result = {"photos": len(paths), "cpus": 2, "images_per_shard": args.images_per_shard,
              "ray_init_s": round(time.perf_counter() - started, 2)}
    for name, methods in SETS.items():
        runs: dict[str, list] = {"local": [], "ray_1x2": [], "ray_2x1": []}
        for _ in range(args.repeats):
            runs["local"].append(local_run(paths, methods))
            runs["ray_1x2"].append(ray_run(paths, methods, 1, 2, args.images_per_shard))
            runs["ray_2x1"].append(ray_run(paths, methods, 2, 1, args.images_per_shard))
        result[name] = {"methods": list(methods)} | {k: median(v) for k, v in runs.items()}
        local = result[name]["local"]["seconds"]
        for engine in ("ray_1x2", "ray_2x1"):
            result[name][engine]["wall_over_local"] = round(
                result[name][engine]["seconds"] / local, 2)
        print(json.dumps(result[name], indent=1), flush=True)
    out = ROOT / "benchmarks" / "results" / "ray_engine_cpu.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
