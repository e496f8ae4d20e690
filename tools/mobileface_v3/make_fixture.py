"""Make tests/fixtures/mobileface_v3_parity.npz: real LFW crops and MobileFace V3's TF.js outputs.

As tools/mobilefacenet/make_fixture.py, for ``MobileFaceV3.crop_spec`` and the graph node
``batchnorm0/add_1`` (the unnormalised 256-d embedding), fed raw 0–255 RGB (the graph's
first ops are the ``(x − 127.5) / 128`` that the crop spec applies in torch): the first 100
distinct images of the pairs of LFW View 2 (fold 1), the largest face of each detected by our
MTCNN, run through models/mobileface.json by tools/tfjs_embeddings.mjs; stored as ``crops``
(N×3×112×112 uint8 RGB), ``embeddings`` (N×256 float32), ``channels``, ``mean`` (0), ``std``
(1) and ``images``.

Needs ../shared/data/lfw, node, ``npm ci`` in tools/faceres and the model files (see
scripts/convert_mobileface_v3.py). Run from anywhere: python tools/mobileface_v3/make_fixture.py
"""

import dataclasses
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tools/, for lfw_crops

from lfw_crops import HUMAN_MODELS, LFW, ROOT, make_fixture  # noqa: E402

from fiqa.recognizers.mobileface_v3 import MobileFaceV3  # noqa: E402
from fiqa.verification import read_lfw_pairs  # noqa: E402

COUNT = 100


def main() -> None:
    pairs = read_lfw_pairs(LFW / "pairs.txt")
    paths = list(dict.fromkeys(pairs[["path_a", "path_b"]].to_numpy().ravel()))[:COUNT]
    make_fixture(ROOT / "tests" / "fixtures" / "mobileface_v3_parity.npz",
                 HERE.parent / "tfjs_embeddings.mjs", HUMAN_MODELS / "mobileface.json", paths,
                 dataclasses.replace(MobileFaceV3.crop_spec, mean=(0.0,) * 3, std=(1.0,) * 3),
                 ("embeddings",), largest=True,
                 script_args=("batchnorm0/add_1",))


if __name__ == "__main__":
    main()
