"""HSE FaceRes: parity with the original TF.js graph model, and identity on real LFW pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.recognizers import list_recognizers, recognizer
from fiqa.recognizers.faceres import FaceRes

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "faceres_parity.npz"
LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


@pytest.fixture(scope="module")
def faceres() -> FaceRes:
    return recognizer("faceres", device="cpu")


@pytest.fixture(scope="module")
def parity() -> dict[str, np.ndarray]:
    """Crops and the outputs of the TF.js model on them (tools/faceres/make_fixture.py)."""
    with np.load(FIXTURE) as data:
        return dict(data)


def test_registered_contract(faceres: FaceRes) -> None:
    assert "faceres" in list_recognizers() and faceres.dim == 1024
    assert faceres.provenance()[0]["licence"] == "MIT (package)"
    with pytest.raises(ValueError, match="224"):
        faceres.embed(torch.zeros((1, 3, 112, 112), dtype=torch.uint8))


def test_fixture_made_with_this_crop_spec(parity: dict) -> None:
    spec = FaceRes.crop_spec
    assert str(parity["channels"]) == spec.channels
    np.testing.assert_allclose(parity["mean"], spec.mean, rtol=1e-6)
    np.testing.assert_allclose(parity["std"], spec.std, rtol=1e-6)


def test_embeddings_match_tfjs(faceres: FaceRes, parity: dict) -> None:
    expected = parity["embeddings"]
    got = faceres.embed(torch.from_numpy(parity["crops"])).numpy()
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    cosine = (got * expected).sum(1) / norms
    assert cosine.min() >= 0.9999
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    unit = faceres.embed(torch.from_numpy(parity["crops"]), normalize=True)
    np.testing.assert_allclose(unit.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_age_gender_heads_match_tfjs(faceres: FaceRes, parity: dict) -> None:
    with torch.inference_mode():
        age, gender = faceres.model.attributes(faceres.embed(torch.from_numpy(parity["crops"])))
    np.testing.assert_allclose(age.numpy(), parity["age"], atol=1e-5)
    np.testing.assert_allclose(gender.numpy(), parity["gender"], atol=1e-5)


def lfw_pairs(count: int) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """The first ``count`` matched and mismatched pairs of LFW View 2 (fold 1)."""
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW not found at {LFW} (see ../shared/data/README.md)")

    def path(name: str, number: str) -> Path:
        return LFW / "images" / name / f"{name}_{int(number):04d}.jpg"

    same, different = [], []
    for line in (LFW / "pairs.txt").read_text().splitlines()[1:601]:
        parts = line.split()
        if len(parts) == 3:
            same.append((path(parts[0], parts[1]), path(parts[0], parts[2])))
        else:
            different.append((path(parts[0], parts[1]), path(parts[2], parts[3])))
    return same[:count], different[:count]


def test_same_person_pairs_are_closer_on_lfw(faceres: FaceRes) -> None:
    same, different = lfw_pairs(12)
    paths = [p for pair in same + different for p in pair]
    images = [read_image(p) for p in paths]
    scorer = Scorer([], device="cpu")
    points = [p[:1] for _, p in scorer.locate(images)]
    assert all(len(p) == 1 for p in points), "a face was missed"
    embeddings = faceres.embed(scorer.crops(images, points, faceres.crop_spec), normalize=True)
    cosine = (embeddings[0::2] * embeddings[1::2]).sum(1).numpy()
    genuine, impostor = cosine[: len(same)], cosine[len(same):]
    assert genuine.mean() > impostor.mean() + 0.2
    assert (genuine[:, None] > impostor[None, :]).mean() > 0.9  # AUC over these pairs
