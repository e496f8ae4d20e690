"""MagFace: the loss's magnitude–difficulty trade-off, photo views, training, and the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import PHOTO_DEGRADATIONS

import fiqa
from fiqa.recognizers import recognizer
from fiqa.recognizers.dlib_resnet import DlibResNet
from fiqa.recognizers.sface import HEAD_INPUTS, SFace
from fiqa.training import photo_views as photo_views_module
from fiqa.training.degrade import DEGRADATIONS, degrade, random_degradations
from fiqa.training.magface import (
    MagFaceConfig,
    MagFaceLoss,
    finetune,
    train_head,
    train_on_views,
)
from fiqa.training.photo_views import cached_photo_views


def test_loss_lets_easy_faces_keep_larger_magnitudes():
    """The magnitude that minimises the loss grows as the face gets closer to its class centre."""
    config = MagFaceConfig()
    loss = MagFaceLoss(classes=3, config=config, dim=3)
    with torch.no_grad():
        loss.weight.copy_(torch.eye(3))
    best = []
    for angle in (0.2, 0.5, 0.8):  # radians from the own class centre, towards class 1
        direction = torch.tensor([math.cos(angle), math.sin(angle), 0.0])
        magnitudes = torch.linspace(config.l_a, config.u_a, 201)
        totals = [loss(direction[None] * a, torch.tensor([0]))["loss"].item() for a in magnitudes]
        best.append(magnitudes[int(np.argmin(totals))].item())
    assert best[0] > best[1] > best[2], best
    assert best[0] == pytest.approx(config.u_a, abs=1)  # an easy face goes to the upper bound


def test_loss_margin_penalises_the_target_class():
    loss = MagFaceLoss(classes=4, config=MagFaceConfig(), dim=8)
    features = torch.randn(16, 8) * 30
    labels = torch.randint(0, 4, (16,))
    with torch.no_grad():
        parts = {key: value.item() for key, value in loss(features, labels).items()}
        plain = torch.nn.functional.cross_entropy(
            64 * torch.nn.functional.linear(torch.nn.functional.normalize(features),
                                            torch.nn.functional.normalize(loss.weight)), labels)
    assert parts["ce"] > plain
    assert parts["loss"] == pytest.approx(parts["ce"] + 35 * parts["g"])


def test_degradations_grow_with_level(lfw_faceset):
    crops = lfw_faceset.crops(np.arange(4), DlibResNet.crop_spec)
    for kind in DEGRADATIONS:
        errors = [(degrade(crops, kind, level, np.random.default_rng(0)).float()
                   - crops.float()).abs().mean().item() for level in (0.0, 0.3, 0.6, 1.0)]
        assert errors[0] < 1.5, kind  # level 0: (nearly) unchanged; JPEG at 95 moves a little
        assert errors[1] < errors[2] < errors[3], (kind, errors)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(crops, "fog", 0.5)
    out, severity = random_degradations(crops.repeat(5, 1, 1, 1), np.random.default_rng(0))
    assert out.shape == (20, 3, 150, 150) and (severity == 0).any() and (severity > 0).any()
    assert torch.equal(out[severity == 0], crops.repeat(5, 1, 1, 1)[severity == 0])


def test_jitter_moves_the_crop(lfw_faceset):
    spec = DlibResNet.crop_spec
    still = lfw_faceset.crops(np.arange(3), spec)
    assert torch.equal(still, lfw_faceset.crops(np.arange(3), spec))
    moved = lfw_faceset.crops(np.arange(3), spec, jitter=0.1, generator=np.random.default_rng(0))
    assert (moved.float() - still.float()).abs().mean() > 5


def test_photo_views_are_sface_inputs_of_real_photos(photo_views, lfw_faceset):
    """Clean views carry exactly SFace's embedding of the photo's aligned face; degraded views
    were degraded as photos and detected again, and the families they got are recorded."""
    assert photo_views.features.shape[1] == HEAD_INPUTS
    assert photo_views.features.dtype == torch.float16
    clean = photo_views.view == 0
    assert np.array_equal(photo_views.image[clean], np.arange(12))
    assert len(photo_views) + photo_views.lost.sum() == 36
    sface = recognizer("sface", "cpu").embed(lfw_faceset.crops(np.arange(12), SFace.crop_spec))
    stored = photo_views.embeddings[clean]
    assert torch.allclose(stored, sface, atol=0.02, rtol=0.01)
    assert (photo_views.families[~clean] > 0).mean() > 0.5
    assert np.array_equal(photo_views.labels, lfw_faceset.labels[photo_views.image])
    crops = photo_views.crops
    assert crops.shape == (len(photo_views), 3, 112, 112) and crops.dtype == torch.uint8
    again = recognizer("sface", "cpu").embed(crops)  # the crops are the views the features read
    assert torch.allclose(photo_views.embeddings, again, atol=0.02, rtol=0.01)


def test_photo_views_resume_from_saved_chunks(photo_views, tmp_path, monkeypatch):
    """A run saves each chunk as it finishes; a later run renders only the chunks missing and
    gives the same views."""
    monkeypatch.setattr(photo_views_module, "CHUNK", 4)
    images = photo_views.images[:8]
    first = cached_photo_views(images, views=1, cache=tmp_path, workers=1)
    (chunks,) = (tmp_path / "train").iterdir()
    assert sorted(p.name for p in chunks.iterdir()) == [
        "000000.crops.npy", "000000.npz", "000004.crops.npy", "000004.npz"]
    (chunks / "000004.npz").unlink()
    (chunks / "000000.crops.npy").unlink()
    again = cached_photo_views(images, views=1, cache=tmp_path, workers=1)
    assert torch.equal(first.features, again.features) and again.crops is None
    assert not (chunks / "000000.crops.npy").exists()  # features alone need no crops
    with_crops = cached_photo_views(images, views=1, cache=tmp_path, workers=1, crops=True)
    assert torch.equal(first.features, with_crops.features) and len(with_crops.crops) == len(first)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.view, again.view)


def test_head_training_learns_identities(photo_views):
    """A few epochs on real photo views: training accuracy rises, and the backbone stays SFace."""
    config = MagFaceConfig(epochs=25, batch_size=8, lr=3e-3)
    net, history = train_head(photo_views.features, photo_views.labels, config,
                              log=lambda row: None)
    assert len(history) == 25 and history[-1]["accuracy"] > history[0]["accuracy"]
    assert history[-1]["ce"] < history[0]["ce"]
    with torch.inference_mode():
        x = torch.randn(2, 3, 112, 112)
        assert torch.allclose(net.backbone(x), recognizer("sface", "cpu").model(x), atol=1e-4)


def test_training_on_views_leaves_the_held_out_people_out(photo_views):
    """train_on_views on all but one person, with the pairwise term (which reads each degraded
    view's clean partner), is train_head on those people's views alone, labels renumbered 0…4
    and partners found among them: the same head to the last weight."""
    config = MagFaceConfig(epochs=3, batch_size=8, lr=3e-3, pairwise=1.0)
    train = photo_views.labels != photo_views.labels[0]
    net, history = train_on_views(photo_views, train, config, log=lambda row: None)
    views = np.flatnonzero(train)
    labels = np.searchsorted(np.unique(photo_views.labels[train]), photo_views.labels[train])
    image, view = photo_views.image[views], photo_views.view[views]
    partners = np.array([np.flatnonzero((image == i) & (view == 0))[0] for i in image])
    alone, _ = train_head(photo_views.features[torch.from_numpy(train)], labels, config,
                          log=lambda row: None, clean_rows=partners)
    assert len(history) == 3 and labels.max() == 4 and (partners < len(views)).all()
    for a, b in zip(net.head.state_dict().values(), alone.head.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)


def test_pairwise_term_ranks_degraded_views_below_their_clean_view(photo_views):
    """With the pairwise term, more degraded training views get a smaller magnitude than their
    own photo's clean view than without it."""
    partners = photo_views.clean_partners(np.ones(len(photo_views), bool))
    degraded = np.flatnonzero((partners >= 0) & (photo_views.view > 0))
    below = {}
    for weight in (0.0, 3.0):
        config = MagFaceConfig(epochs=25, batch_size=8, lr=3e-3, pairwise=weight)
        net, history = train_head(photo_views.features, photo_views.labels, config,
                                  log=lambda row: None, clean_rows=partners)
        with torch.inference_mode():
            magnitude = net.head(photo_views.features.float()).norm(dim=1).numpy()
        below[weight] = np.mean(magnitude[degraded] < magnitude[partners[degraded]])
    assert history[-1]["pairwise"] < history[0]["pairwise"]
    assert below[3.0] > below[0.0] and below[3.0] >= 0.85
    with pytest.raises(ValueError, match="clean_rows"):
        train_head(photo_views.features, photo_views.labels, config)
    with pytest.raises(ValueError, match="cached views"):
        finetune(photo_views.images[:4], config, torch.device("cpu"))


def test_finetune_updates_the_backbone(photo_views, tmp_path):
    config = MagFaceConfig(views=1, epochs=1, batch_size=4, lr=1e-3, backbone_lr=1e-3)
    images = photo_views.images[:4]
    net, history = finetune(images, config, torch.device("cpu"), cache=tmp_path,
                            log=lambda row: None)
    before = recognizer("sface", "cpu").model.layers[0].weight
    assert len(history) == 1 and not torch.allclose(net.backbone.layers[0].weight, before)


@pytest.mark.parametrize("family", sorted(PHOTO_DEGRADATIONS))
def test_magface_magnitude_falls_on_degraded_photos(lfw_photo_pairs, family):
    """The trained model on LFW View 2 people (no LFW image was trained on), whole photos degraded
    by settings of the evaluation recipe, detected again: clean faces score higher."""
    estimator = fiqa.create("magface", device="cpu")
    clean, degraded = lfw_photo_pairs[family]
    assert len(clean) >= 8, "the detector lost most degraded faces"
    before, after = estimator.score(clean), estimator.score(degraded)
    assert np.median(after) < np.median(before) and np.mean(after < before) >= 0.75
    quality = estimator.to_quality(before)
    assert np.all((quality >= 0) & (quality <= 100))


def test_magface_recognizer_matches_the_estimator(lfw_faceset):
    model = recognizer("magface", device="cpu")
    crops = lfw_faceset.crops(np.arange(4), model.crop_spec)
    embeddings = model.embed(crops)
    assert embeddings.shape == (4, 128)
    direction = recognizer("sface", device="cpu").embed(crops, normalize=True)
    assert torch.allclose(torch.nn.functional.normalize(embeddings, dim=1), direction, atol=1e-5)
    assert np.allclose(embeddings.norm(dim=1).numpy(),
                       fiqa.create("magface", device="cpu").score(crops), rtol=1e-5)
    same = torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0)
    other = torch.nn.functional.cosine_similarity(embeddings[0], embeddings[2], dim=0)
    assert same > other  # faces 0 and 1 show the same person
