"""Recognizability index: unrecognisable views, the UI centre, the RI target, both estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PHOTO_DEGRADATIONS

import fiqa
from fiqa.estimators.ri_proximity import RIProximity
from fiqa.recognizers import recognizer
from fiqa.recognizers.dlib_resnet import DlibResNet
from fiqa.recognizers.sface import HEAD_INPUTS
from fiqa.training.degrade import degrade
from fiqa.training.face_vit import teacher_embeddings
from fiqa.training.ri import ri_targets, standardised_margins, train_ri_head
from fiqa.training.unrecognisable import NON_FACE, UNRECOGNISABLE, ui_centre, unrecognisable_views
from fiqa.weights import provenance


def test_unrecognisable_views_cover_every_kind(lfw_faceset):
    crops, kinds = unrecognisable_views(lfw_faceset, np.arange(12).repeat(3),
                                        DlibResNet.crop_spec, np.random.default_rng(0))
    assert crops.shape == (36, 3, 150, 150) and crops.dtype == torch.uint8
    assert set(kinds) == {*UNRECOGNISABLE, NON_FACE}


def test_ui_centre_sits_with_unrecognisable_faces(lfw_faceset):
    """Real faces point further from the UI centre than their unrecognisable versions do, also
    for held-out views made with another seed."""
    model = recognizer("dlib", "cpu")
    centre = ui_centre(model, lfw_faceset, views=96)
    assert centre.shape == (128,) and torch.isclose(centre.norm(), torch.tensor(1.0))
    estimator = RIProximity(device="cpu", recognizer=model, centre=centre)
    clean = estimator.score(lfw_faceset.crops(np.arange(12), model.crop_spec))
    lost, _ = unrecognisable_views(lfw_faceset, np.arange(12), model.crop_spec,
                                   np.random.default_rng(7))
    assert np.median(clean) > np.median(estimator.score(lost)) + 3


def test_ri_proximity_stored_centres_and_errors(lfw_faceset):
    estimator = fiqa.create("ri-proximity", device="cpu")
    crops = lfw_faceset.crops(np.arange(12), estimator.crop_spec)
    clean = estimator.score(crops)
    tiny = estimator.score(degrade(crops, "resolution", 0.95))
    assert np.mean(tiny < clean) >= 0.9
    # the 0–100 anchors: unrecognisable views sit near 0, clean faces well above them
    assert np.median(estimator.to_quality(tiny)) < 10 < 30 < np.median(estimator.to_quality(clean))
    for name in ("sface", "mobilefacenet", "faceres", "magface", "mobileface-v3", "vit"):
        other = fiqa.create("ri-proximity", device="cpu", recognizer=name)
        assert other.crop_spec == recognizer(name, "cpu").crop_spec
        assert other.name == f"ri-proximity:{name}"  # its own column beside dlib's
    with pytest.raises(ValueError, match="shape"):
        RIProximity(device="cpu", recognizer="dlib", centre=torch.ones(5))


def test_ri_target_rewards_the_own_class():
    """Views near their own prototype and far from the UI centre get the highest index."""
    centre = torch.tensor([1.0, 0, 0, 0])
    prototypes = torch.eye(4)[1:]  # classes 0, 1, 2 along axes 1, 2, 3
    labels = np.array([0, 0, 1, 1, 2, 2, 0])
    images = np.arange(7)
    views = prototypes[labels].clone()
    views[-1] = torch.tensor([0.9, 0.3, 0.1, 0.0])  # class 0, but close to the UI centre
    targets = ri_targets(views + 0.01 * torch.randn(7, 4), labels, images,
                         np.array([1, 1, 1, 1, 1, 1, 0], bool), centre)
    assert np.argmin(targets["ri"]) == 6 and targets["proximity"][6] < 30
    assert np.all(targets["margin"][:6] > 0.5)


def test_margins_of_another_teacher(photo_views, tmp_path):
    """SFace's standardised margins are its RI at proximity weight 0; FaceRes's, from its own
    embeddings of the view crops, are standardised the same way, missing where SFace's are,
    and also rank the clean views of real photos above their photo-degraded ones."""
    clean = photo_views.view == 0
    sface = ri_targets(photo_views.embeddings, photo_views.labels, photo_views.image, clean,
                       torch.ones(128), proximity_weight=0.0)["ri"]
    np.testing.assert_allclose(standardised_margins(photo_views.embeddings, photo_views), sface,
                               rtol=1e-6)
    faceres = standardised_margins(teacher_embeddings(photo_views, "faceres", tmp_path),
                                   photo_views)
    assert np.array_equal(np.isnan(faceres), np.isnan(sface))
    assert abs(np.nanmean(faceres)) < 1e-6 and abs(np.nanstd(faceres) - 1) < 1e-6
    assert np.nanmean(faceres[clean]) > np.nanmean(faceres[~clean]) + 0.25
    assert 0.3 < np.corrcoef(faceres[~np.isnan(faceres)], sface[~np.isnan(sface)])[0, 1] < 0.999


def test_ri_head_fits_its_target():
    torch.manual_seed(0)
    features = torch.randn(512, HEAD_INPUTS)
    target = (features[:, :8].sum(1) / 3).numpy()
    head, history = train_ri_head(features, target, epochs=15, log=lambda row: None)
    with torch.inference_mode():
        predicted = head(features).numpy()
    assert history[-1]["mse"] < 0.3 * history[0]["mse"]
    assert np.corrcoef(predicted, target)[0, 1] > 0.9


@pytest.mark.parametrize("family", sorted(PHOTO_DEGRADATIONS))
def test_ri_estimator_prefers_clean_photos(lfw_photo_pairs, family):
    """LFW View 2 people (no LFW image was trained on), whole photos degraded by settings of the
    evaluation recipe and detected again: the clean face gets the higher index."""
    estimator = fiqa.create("ri", device="cpu")
    clean, degraded = lfw_photo_pairs[family]
    assert np.mean(estimator.score(degraded) < estimator.score(clean)) >= 0.75


def test_ri_with_other_head_weights(lfw_photo_pairs):
    """A head trained without one degradation family is its own estimator (name, provenance),
    and still ranks clean photos above the degraded ones."""
    variant = fiqa.create("ri", device="cpu", head="ri_head_without_jpeg")
    assert variant.name == "ri:ri_head_without_jpeg"
    assert [entry["sha256"] for entry in variant.provenance()] == [
        provenance("sface")["sha256"], provenance("ri_head_without_jpeg")["sha256"]]
    assert fiqa.create("ri", device="cpu").provenance()[1]["sha256"] == provenance("ri_head")[
        "sha256"]
    clean, degraded = lfw_photo_pairs["defocus"]
    assert np.mean(variant.score(degraded) < variant.score(clean)) >= 0.75
    with pytest.raises(KeyError, match="no weights named"):
        fiqa.create("ri", device="cpu", head="nonesuch")
