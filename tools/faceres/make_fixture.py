"""Make tests/fixtures/faceres_parity.npz: real LFW crops and HSE FaceRes's outputs from TF.js.

The images are the first eight distinct ones of the matched pairs of LFW View 2 (pairs.txt; four
people), detected by our MTCNN and aligned by ``fiqa.crop.align`` to ``FaceRes.crop_spec``. This
script writes them in the graph's input layout (N×224×224×3 float32, after
``crop_spec.normalize``), runs ``make_fixture.mjs`` (the original TF.js graph model on tfjs's
pure-JS CPU backend) on them and stores (plain arrays, no pickles):

    crops       N×3×224×224 uint8 RGB (what ``FaceRes.embed`` takes)
    embeddings  N×1024 float32 (graph node global_pooling/Mean)
    age         N×100 float32 (age_pred/Softmax), gender N float32 (gender_pred/Sigmoid)
    channels, mean, std   the crop spec the inputs were normalised with
    images      the LFW file names

Needs ../shared/data/lfw, node (v20 was used), ``npm ci`` in tools/faceres and the model files
(see scripts/convert_faceres.py). Run from anywhere: python tools/faceres/make_fixture.py
"""

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.recognizers.faceres import FaceRes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
MODEL = HERE / "node_modules/.cache/human-models/package/models/faceres-deep.json"
TARGET = ROOT / "tests" / "fixtures" / "faceres_parity.npz"


def matched_pair_images(count: int) -> list[Path]:
    """The first ``count`` distinct images of the matched pairs of pairs.txt, in order."""
    paths: list[Path] = []
    for line in (LFW / "pairs.txt").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            for number in parts[1:]:
                path = LFW / "images" / parts[0] / f"{parts[0]}_{int(number):04d}.jpg"
                if path not in paths:
                    paths.append(path)
        if len(paths) >= count:
            return paths[:count]
    raise ValueError("pairs.txt has too few matched pairs")


def main() -> None:
    paths = matched_pair_images(8)
    images = [read_image(p) for p in paths]
    scorer = Scorer([], device="cpu")
    points = [p for _, p in scorer.locate(images)]
    if any(len(p) != 1 for p in points):
        raise SystemExit("expected exactly one face per image")
    spec = FaceRes.crop_spec
    crops = scorer.crops(images, points, spec)
    graph_input = spec.normalize(crops).permute(0, 2, 3, 1).contiguous().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        input_path, output_path = Path(tmp) / "input.f32", Path(tmp) / "output.json"
        graph_input.astype("<f4").tofile(input_path)
        subprocess.run(["node", "make_fixture.mjs", str(MODEL), str(input_path),
                        str(len(crops)), str(output_path)], cwd=HERE, check=True)
        outputs = json.loads(output_path.read_text())
    TARGET.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        TARGET,
        crops=crops.numpy(),
        embeddings=np.asarray(outputs["embeddings"], np.float32),
        age=np.asarray(outputs["age"], np.float32),
        gender=np.asarray(outputs["gender"], np.float32),
        channels=np.array(spec.channels),
        mean=np.asarray(spec.mean, np.float32),
        std=np.asarray(spec.std, np.float32),
        images=np.array([p.name for p in paths]),
    )
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1024:.0f} KiB; tfjs {outputs['tfjs']}, "
          f"{outputs['backend']} backend)")


if __name__ == "__main__":
    main()
