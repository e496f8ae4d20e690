"""MobileFaceNet: parity with the original TF.js graph model on real LFW crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa.recognizers import list_recognizers, recognizer
from fiqa.recognizers.mobilefacenet import MobileFaceNet

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mobilefacenet_parity.npz"


@pytest.fixture(scope="module")
def mobilefacenet() -> MobileFaceNet:
    return recognizer("mobilefacenet", device="cpu")


@pytest.fixture(scope="module")
def parity() -> dict[str, np.ndarray]:
    """Crops and the outputs of the TF.js model on them (tools/mobilefacenet/make_fixture.py)."""
    with np.load(FIXTURE) as data:
        return dict(data)


def test_registered_contract(mobilefacenet: MobileFaceNet) -> None:
    assert "mobilefacenet" in list_recognizers() and mobilefacenet.dim == 192
    assert mobilefacenet.provenance()[0]["licence"] == "MIT (package)"
    with pytest.raises(ValueError, match="112"):
        mobilefacenet.embed(torch.zeros((1, 3, 224, 224), dtype=torch.uint8))


def test_fixture_made_with_this_crop_spec(parity: dict) -> None:
    spec = MobileFaceNet.crop_spec
    assert str(parity["channels"]) == spec.channels and len(parity["crops"]) >= 100
    np.testing.assert_allclose(parity["mean"], spec.mean, rtol=1e-6)
    np.testing.assert_allclose(parity["std"], spec.std, rtol=1e-6)


def test_embeddings_match_tfjs(mobilefacenet: MobileFaceNet, parity: dict) -> None:
    expected = parity["embeddings"]
    got = mobilefacenet.embed(torch.from_numpy(parity["crops"])).numpy()
    cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1)
                                        * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999
    assert np.abs(got - expected).max() <= 1e-5  # both unit length, as the graph normalises

