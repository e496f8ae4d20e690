"""MagFace: the loss's magnitude–difficulty trade-off, degradations, training, and the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fiqa
from fiqa.recognizers import recognizer
from fiqa.recognizers.dlib_resnet import DlibResNet
from fiqa.training.degrade import DEGRADATIONS, degrade, random_degradations
from fiqa.training.magface import (
    MagFaceConfig,
    MagFaceLoss,
    finetune,
    pooled_features,
    train_head,
)


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


def test_head_training_learns_identities(lfw_faceset):
    """A few epochs on real degraded views: training accuracy rises, and the log is complete."""
    config = MagFaceConfig(views=4, epochs=25, batch_size=16, lr=3e-3)
    features, labels, severity = pooled_features(lfw_faceset, config, torch.device("cpu"))
    assert features.shape == (48, 256) and len(labels) == len(severity) == 48
    net, history = train_head(features, labels, config, log=lambda row: None)
    assert len(history) == 25 and history[-1]["accuracy"] > history[0]["accuracy"]
    assert history[-1]["ce"] < history[0]["ce"]
    with torch.inference_mode():  # the backbone is dlib's, untouched
        x = torch.randn(2, 3, 150, 150)
        assert torch.allclose(net.backbone(x), recognizer("dlib", "cpu").model(x), atol=1e-5)


def test_finetune_updates_the_backbone(lfw_faceset):
    config = MagFaceConfig(views=1, epochs=1, batch_size=6, lr=1e-3, backbone_lr=1e-3)
    net, history = finetune(lfw_faceset, config, torch.device("cpu"), log=lambda row: None)
    before = recognizer("dlib", "cpu").model.stem.weight
    assert len(history) == 1 and not torch.allclose(net.backbone.stem.weight, before)


def test_magface_magnitude_falls_as_faces_degrade(lfw_faceset):
    """The trained model: real LFW faces (never trained on) score higher clean than degraded."""
    estimator = fiqa.create("magface", device="cpu")
    crops = lfw_faceset.crops(np.arange(12), estimator.crop_spec)
    clean = estimator.score(crops)
    assert np.all((clean > 10) & (clean < 130))
    for kind in ("blur", "resolution", "noise"):
        worse = estimator.score(degrade(crops, kind, 0.9, np.random.default_rng(0)))
        assert np.median(worse) < np.median(clean) and np.mean(worse < clean) >= 0.75, kind
    quality = estimator.to_quality(clean)
    assert np.all((quality >= 0) & (quality <= 100))


def test_magface_recognizer_matches_the_estimator(lfw_faceset):
    model = recognizer("magface", device="cpu")
    crops = lfw_faceset.crops(np.arange(4), model.crop_spec)
    embeddings = model.embed(crops)
    assert embeddings.shape == (4, 512)
    assert np.allclose(embeddings.norm(dim=1).numpy(),
                       fiqa.create("magface", device="cpu").score(crops), rtol=1e-5)
    same = torch.nn.functional.cosine_similarity(embeddings[0], embeddings[1], dim=0)
    other = torch.nn.functional.cosine_similarity(embeddings[0], embeddings[2], dim=0)
    assert same > other  # faces 0 and 1 show the same person
