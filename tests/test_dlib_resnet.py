"""fiqa.recognizers.dlib_resnet: parity with dlib-bin on real LFW chips, and identity sanity."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.recognizers import recognizer

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
PAIRS = 32  # matched and as many mismatched pairs of LFW's first fold: 104 images

dlib = pytest.importorskip("dlib", reason="needs dlib-bin (pip install dlib-bin==20.0.1.post1)")
# Located, not imported: face_recognition_models imports pkg_resources, gone from new setuptools.
_models = importlib.util.find_spec("face_recognition_models")
if _models is None:
    pytest.skip("needs face_recognition_models (pip install face_recognition_models==0.3.0)",
                allow_module_level=True)
DLIB_MODEL = (Path(_models.submodule_search_locations[0]) / "models"
              / "dlib_face_recognition_resnet_model_v1.dat")


def lfw_pairs(count: int) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Images of the first ``count`` matched and mismatched pairs of pairs.txt (fold 1).

    Returns the unique image paths, the pairs as P×2 indices into them and whether each matches.
    """
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW not found at {LFW} (see ../shared/data/README.md)")
    header, *lines = (LFW / "pairs.txt").read_text().splitlines()
    per_fold = int(header.split()[1])  # matched pairs, then as many mismatched, per fold
    pairs = []
    for line in lines[:count] + lines[per_fold : per_fold + count]:
        fields = line.split()  # "name i j" or "name1 i name2 j"
        names = fields[::2] if len(fields) == 4 else fields[:1] * 2
        numbers = fields[1::2] if len(fields) == 4 else fields[1:]
        pairs.append([LFW / "images" / name / f"{name}_{int(n):04d}.jpg"
                      for name, n in zip(names, numbers, strict=True)])
    paths = sorted({path for pair in pairs for path in pair})
    index = {path: k for k, path in enumerate(paths)}
    indices = np.array([[index[path] for path in pair] for pair in pairs])
    return paths, indices, np.arange(len(pairs)) < count


@pytest.fixture(scope="module")
def faces() -> dict:
    """150×150 chips (our MTCNN + align) of the pair images, with both models' embeddings."""
    paths, pairs, same = lfw_pairs(PAIRS)
    model = recognizer("dlib", device="cpu")
    scorer = Scorer(estimators=[], device="cpu")
    images = [read_image(path) for path in paths]
    located = scorer.locate(images)
    found = np.array([len(points) == 1 for _, points in located])
    chips = scorer.crops(images, [points for _, points in located], model.crop_spec)
    ours = torch.cat([model.embed(batch) for batch in chips.split(32)]).numpy()
    pictures = [np.ascontiguousarray(chip.permute(1, 2, 0).numpy()) for chip in chips]
    reference = np.array(dlib.face_recognition_model_v1(str(DLIB_MODEL))
                         .compute_face_descriptor(pictures))
    keep = found[pairs].all(1)  # pairs whose two images both have a face
    row = np.cumsum(found) - 1  # image index → chip index
    return {"ours": ours, "reference": reference, "pairs": row[pairs[keep]], "same": same[keep]}


def test_parity_with_dlib(faces):
    assert len(faces["ours"]) >= 100
    assert faces["ours"].shape == faces["reference"].shape == (len(faces["ours"]), 128)
    assert np.abs(faces["ours"] - faces["reference"]).max() <= 1e-4


def test_same_person_pairs_are_closer(faces):
    unit = faces["ours"] / np.linalg.norm(faces["ours"], axis=1, keepdims=True)
    cosine = (unit[faces["pairs"][:, 0]] * unit[faces["pairs"][:, 1]]).sum(1)
    same, different = cosine[faces["same"]], cosine[~faces["same"]]
    assert len(same) >= PAIRS - 2 and len(different) >= PAIRS - 2
    assert same.mean() > different.mean() + 0.05  # dlib's embeddings share a large mean part
    # dlib's own rule: the same person when the Euclidean distance is below 0.6.
    distance = np.linalg.norm(faces["ours"][faces["pairs"][:, 0]]
                              - faces["ours"][faces["pairs"][:, 1]], axis=1)
    assert ((distance < 0.6) == faces["same"]).mean() >= 0.9


def test_embed_shapes_and_normalisation():
    model = recognizer("dlib", device="cpu")
    crops = torch.zeros((2, 3, 150, 150), dtype=torch.uint8)
    crops[1] = 255
    embeddings = model.embed(crops, normalize=True)
    assert embeddings.shape == (2, 128) and embeddings.dtype == torch.float32
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="150"):
        model.embed(torch.zeros((1, 3, 112, 112), dtype=torch.uint8))
