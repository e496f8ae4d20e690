"""Make tests/fixtures/mobilefacenet_parity.npz: real LFW crops and MobileFaceNet's TF.js outputs.

The images are the first 100 distinct ones of the pairs of LFW View 2 (pairs.txt, fold 1), the
largest face of each detected by our MTCNN and aligned by ``fiqa.crop.align`` to
``MobileFaceNet.crop_spec``. This script writes them in the graph's input layout (N×112×112×3
float32, after ``crop_spec.normalize``), runs ``make_fixture.mjs`` (the original TF.js graph
model on tfjs's pure-JS CPU backend) on them and stores (compressed, plain arrays, no pickles):

    crops       N×3×112×112 uint8 RGB (what ``MobileFaceNet.embed`` takes)
    embeddings  N×192 float32 (graph output ``embeddings``, unit length)
    channels, mean, std   the crop spec the inputs were normalised with
    images      the LFW file names

Needs ../shared/data/lfw, node (v20 was used), ``npm ci`` in tools/faceres (its tfjs is used)
and the model files (see scripts/convert_mobilefacenet.py). Run from anywhere:
python tools/mobilefacenet/make_fixture.py
"""

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.recognizers.mobilefacenet import MobileFaceNet
from fiqa.verification import read_lfw_pairs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw"
MODEL = ROOT / "tools/faceres/node_modules/.cache/human-models/package/models/mobilefacenet.json"
TARGET = ROOT / "tests" / "fixtures" / "mobilefacenet_parity.npz"
COUNT = 100


def main() -> None:
    pairs = read_lfw_pairs(LFW / "pairs.txt")
    paths = list(dict.fromkeys(pairs[["path_a", "path_b"]].to_numpy().ravel()))[:COUNT]
    images = [read_image(p) for p in paths]
    scorer = Scorer([], device="cpu")
    points = [p[:1] for _, p in scorer.locate(images)]
    if any(len(p) != 1 for p in points):
        raise SystemExit("a face was missed")
    spec = MobileFaceNet.crop_spec
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
        channels=np.array(spec.channels),
        mean=np.asarray(spec.mean, np.float32),
        std=np.asarray(spec.std, np.float32),
        images=np.array([Path(p).name for p in paths]),
    )
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1024:.0f} KiB; tfjs {outputs['tfjs']}, "
          f"{outputs['backend']} backend)")


if __name__ == "__main__":
    main()
