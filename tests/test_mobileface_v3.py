"""MobileFace V3: parity with the original TF.js graph model, and it tells people apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fiqa.estimators import create
from fiqa.recognizers import list_recognizers, recognizer
from fiqa.recognizers.mobileface_v3 import MobileFaceV3

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mobileface_v3_parity.npz"


@pytest.fixture(scope="module")
def mobileface() -> MobileFaceV3:
    return recognizer("mobileface-v3", device="cpu")


@pytest.fixture(scope="module")
def parity() -> dict[str, np.ndarray]:
    """Crops and the outputs of the TF.js model on them (tools/mobileface_v3/make_fixture.py)."""
    with np.load(FIXTURE) as data:
        return dict(data)


def test_registered_contract(mobileface: MobileFaceV3) -> None:
    assert "mobileface-v3" in list_recognizers() and mobileface.dim == 256
    assert mobileface.provenance()[0]["licence"].startswith("MIT (package)")
    with pytest.raises(ValueError, match="112"):
        mobileface.embed(torch.zeros((1, 3, 224, 224), dtype=torch.uint8))


def test_fixture_fed_the_graph_raw_pixels(parity: dict) -> None:
    """The graph scales its input itself (its first ops are the crop spec's (x − 127.5) / 128),
    so the fixture's crops went in as 0–255 RGB."""
    assert str(parity["channels"]) == MobileFaceV3.crop_spec.channels == "RGB"
    assert len(parity["crops"]) >= 100
    np.testing.assert_array_equal(parity["mean"], 0.0)
    np.testing.assert_array_equal(parity["std"], 1.0)


def test_embeddings_match_tfjs(mobileface: MobileFaceV3, parity: dict) -> None:
    expected = parity["embeddings"]
    got = mobileface.embed(torch.from_numpy(parity["crops"])).numpy()
    cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1)
                                        * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999
    scale = np.linalg.norm(expected, axis=1, keepdims=True)  # unnormalised: norms 50–100
    assert (np.abs(got - expected) / scale).max() <= 1e-5


def test_it_tells_people_apart(mobileface: MobileFaceV3, parity: dict) -> None:
    """Unlike MobileFaceNet's file: over every pair of the fixture's 100 LFW faces (genuine pairs
    of View 2, so about 50 people with two photos each), same-person cosines rank above
    different-person ones."""
    unit = mobileface.embed(torch.from_numpy(parity["crops"]), normalize=True).numpy()
    people = np.array([name.rsplit("_", 1)[0] for name in parity["images"]])
    upper = np.triu_indices(len(unit), 1)
    same = (people[:, None] == people[None])[upper]
    assert same.sum() >= 40
    assert roc_auc_score(same, (unit @ unit.T)[upper]) >= 0.95


def test_norm_estimator_reads_it(parity: dict) -> None:
    estimator = create("mobileface-v3-norm", "cpu")
    expected = np.linalg.norm(parity["embeddings"][:8], axis=1)
    np.testing.assert_allclose(estimator.score(torch.from_numpy(parity["crops"][:8])), expected,
                               rtol=1e-5)
