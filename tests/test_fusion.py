"""The fused estimator on real LFW faces: what it averages, one shared pass, degraded photos."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PHOTO_DEGRADATIONS

import fiqa
from fiqa.backbones import shared_backbone
from fiqa.weights import load_weights


@pytest.fixture(scope="module")
def fusion():
    return fiqa.create("fusion", device="cpu")


def test_fusion_is_the_mean_of_standardised_members(fusion, lfw_photo_pairs):
    """On real crops: the mean over magface and attention of (score − mean) / std, with the
    mean and std of each member over the stored reference photos."""
    crops = lfw_photo_pairs["defocus"][0]
    reference = load_weights("fusion_reference")
    expected = np.mean([(fiqa.create(name, device="cpu").score(crops)
                         - reference[name].double().mean().item())
                        / reference[name].double().std(correction=0).item()
                        for name in ("magface", "attention")], axis=0)
    np.testing.assert_allclose(fusion.score(crops), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fusion.network_score(crops).numpy(), expected, atol=1e-4)
    fused = fusion.fuse(np.stack([reference[n].double().numpy() for n in ("magface", "attention")]))
    assert fusion.score_range == pytest.approx(tuple(np.percentile(fused, [1, 99])))


def test_members_share_one_stem_pass(fusion, lfw_photo_pairs, monkeypatch):
    """magface (SFace) and attention (the ViT) both continue from SFace's stem: one pass."""
    stem = shared_backbone("sface-stem", fusion.device, fusion.precision)
    calls = []
    forward = stem.forward
    monkeypatch.setattr(stem, "forward", lambda x: calls.append(len(x)) or forward(x))
    crops = lfw_photo_pairs["noise"][0]
    fusion.score(crops)
    assert calls == [len(crops)]


@pytest.mark.parametrize("family", sorted(PHOTO_DEGRADATIONS))
def test_fusion_falls_on_degraded_photos(fusion, lfw_photo_pairs, family):
    """Whole LFW View 2 photos (people never trained on) degraded by evaluation-recipe settings,
    detected again: the clean faces score higher."""
    clean, degraded = lfw_photo_pairs[family]
    before, after = fusion.score(clean), fusion.score(degraded)
    assert np.median(after) < np.median(before) and np.mean(after < before) >= 0.75


def test_other_members_and_refusals():
    three = fiqa.create("fusion:magface+attention+sface-norm", device="cpu")
    assert three.name == "fusion:magface+attention+sface-norm"
    assert [m.name for m in three.members] == ["magface", "attention", "sface-norm"]
    assert set(three.weights) == {"fusion_reference", "sface", "magface", "face_vit"}
    with pytest.raises(ValueError, match="no reference scores for dlib-norm"):
        fiqa.create("fusion:magface+dlib-norm", device="cpu")
    with pytest.raises(ValueError, match="two or more different members"):
        fiqa.create("fusion:magface+magface", device="cpu")
