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
(the detection, alignment, node run and npz writing are tools/lfw_crops.py's).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tools/, for lfw_crops

from lfw_crops import HUMAN_MODELS, LFW, ROOT, make_fixture  # noqa: E402

from fiqa.recognizers.faceres import FaceRes  # noqa: E402

MODEL = HUMAN_MODELS / "faceres-deep.json"
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
    make_fixture(TARGET, HERE / "make_fixture.mjs", MODEL, matched_pair_images(8),
                 FaceRes.crop_spec, ("embeddings", "age", "gender"), largest=False)


if __name__ == "__main__":
    main()
