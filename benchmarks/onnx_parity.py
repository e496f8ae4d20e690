"""ONNX parity of every exportable model on real aligned LFW crops, and file sizes.

    python benchmarks/onnx_parity.py [--images 32]

Each model is exported by ``fiqa.onnx_export.export`` and run in onnxruntime (CPU) on ``--images``
LFW photos detected and aligned by fiqa; reported per model: max |ONNX − torch|, the scale it is
judged against (an estimator's score range, a recognizer's largest embedding value) and their
ratio (the parity test in tests/test_onnx_export.py asks ≤ 1e-4), the file's size, and the
seconds per face of both runtimes at that batch. Results in
``benchmarks/results/onnx_parity.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from fiqa import Scorer, read_image
from fiqa import onnx_export as ox

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    paths = sorted(LFW.glob("*/*.jpg"))[:: 97][: args.images]
    scorer = Scorer((), device="cpu")
    images = [read_image(p) for p in paths]
    points = [p for _, p in scorer.locate(images)]
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for kind, name in ox.exportable():
            model = ox.load(name, kind)
            crops = scorer.crops(images, points, model.crop_spec)
            path = ox.export(model, Path(folder) / f"{name}.onnx")
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            started = time.perf_counter()
            got = session.run(None, {"crops": crops.numpy()})[0]
            onnx_s = time.perf_counter() - started
            started = time.perf_counter()
            expected = (model.embed(crops) if kind == "recognizer"
                        else model.network_score(crops)).numpy()
            torch_s = time.perf_counter() - started
            scale = (float(np.abs(expected).max()) if kind == "recognizer"
                     else float(np.subtract(*model.score_range[::-1])))
            difference = float(np.abs(got - expected).max())
            results.append({"kind": kind, "name": name, "max_abs_diff": difference,
                            "scale": round(scale, 4), "ratio": difference / scale,
                            "mb": round(path.stat().st_size / 1e6, 1),
                            "onnx_ms_per_face": round(1000 * onnx_s / len(crops), 2),
                            "torch_ms_per_face": round(1000 * torch_s / len(crops), 2)})
            print(json.dumps(results[-1]), flush=True)
    out = ROOT / "benchmarks" / "results" / "onnx_parity.json"
    out.write_text(json.dumps({"faces": len(paths), "threads": 2, "models": results},
                              indent=1) + "\n")


if __name__ == "__main__":
    main()
