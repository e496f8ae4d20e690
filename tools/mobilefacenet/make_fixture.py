"""Make tests/fixtures/mobilefacenet_parity.npz: real LFW crops and MobileFaceNet's TF.js outputs.

The images are the first 100 distinct ones of the pairs of LFW View 2 (pairs.txt, fold 1), the
largest face of each detected by our MTCNN and aligned by ``fiqa.crop.align`` to
``MobileFaceNet.crop_spec``. This script writes them in the graph's input layout (N×112×112×3
float32, after ``crop_spec.normalize``), runs ``tools/tfjs_embeddings.mjs`` (the original TF.js
graph model on tfjs's pure-JS CPU backend) on them and stores (compressed, plain arrays, no
pickles):

    crops       N×3×112×112 uint8 RGB (what ``MobileFaceNet.embed`` takes)
    embeddings  N×192 float32 (graph output ``embeddings``, unit length)
    channels, mean, std   the crop spec the inputs were normalised with
    images      the LFW file names

Needs ../shared/data/lfw, node (v20 was used), ``npm ci`` in tools/faceres (its tfjs is used)
and the model files (see scripts/convert_mobilefacenet.py). Run from anywhere:
python tools/mobilefacenet/make_fixture.py (the detection, alignment, node run and npz writing are
tools/lfw_crops.py's).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tools/, for lfw_crops

from lfw_crops import HUMAN_MODELS, LFW, ROOT, make_fixture  # noqa: E402

from fiqa.recognizers.mobilefacenet import MobileFaceNet  # noqa: E402
from fiqa.verification import read_lfw_pairs  # noqa: E402

MODEL = HUMAN_MODELS / "mobilefacenet.json"
TARGET = ROOT / "tests" / "fixtures" / "mobilefacenet_parity.npz"
COUNT = 100


def main() -> None:
    pairs = read_lfw_pairs(LFW / "pairs.txt")
    paths = list(dict.fromkeys(pairs[["path_a", "path_b"]].to_numpy().ravel()))[:COUNT]
    make_fixture(TARGET, HERE.parent / "tfjs_embeddings.mjs", MODEL, paths, MobileFaceNet.crop_spec,
                 ("embeddings",), largest=True)


if __name__ == "__main__":
    main()
