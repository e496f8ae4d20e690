"""Shared backbone passes (fiqa.backbones): one SFace pass per batch, the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import lfw_images

import fiqa
from fiqa import Scorer
from fiqa.backbones import list_backbones, shared_backbone
from fiqa.imageio import read_image
from fiqa.recognizers import recognizer
from fiqa.recognizers.sface import CROP_SPEC, SFaceStemPass, SFaceTrunk

SFACE_READERS = {"magface": {}, "ri": {}, "sface-norm": {}, "ri-proximity": {"recognizer": "sface"}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_one_pass_per_batch_gives_each_model_its_own_numbers(monkeypatch):
    """Four estimators and two recognizers on SFace: one backbone pass per batch of faces, and
    every column equal to that model's output when it runs alone."""
    paths = lfw_images(10)
    readers = [fiqa.create(name, device="cpu", **options)
               for name, options in SFACE_READERS.items()]
    scorer = Scorer([*readers, "baseline"], ["sface", "magface"], device="cpu", batch_size=4)
    calls = []
    forward = SFaceTrunk.forward
    monkeypatch.setattr(SFaceTrunk, "forward", lambda self, x: calls.append(len(x))
                        or forward(self, x))
    rows = [row for image_rows in scorer.run(paths) for row in image_rows]
    assert calls == [4, 4, 2]  # 10 faces in batches of 4, one pass each
    images = [read_image(path) for path in paths]
    crops = scorer.crops(images, [points for _, points in scorer.locate(images)],
                         fiqa.create("ri", device="cpu").crop_spec)
    # alone, in the run's batches: a CPU's float kernels may round differently per batch size
    batches = [crops[first:first + 4] for first in range(0, len(crops), 4)]
    for name, options in SFACE_READERS.items():
        model = fiqa.create(name, device="cpu", **options)
        alone = np.concatenate([model.score(batch) for batch in batches])
        assert np.allclose([row[model.name] for row in rows], alone, rtol=1e-6), model.name
    for name in ("sface", "magface"):
        model = recognizer(name, "cpu")
        alone = np.concatenate([model.embed(batch).numpy() for batch in batches])
        table = np.array([[row[f"{name}.{i}"] for i in range(alone.shape[1])] for row in rows])
        assert np.allclose(table, alone, rtol=1e-5, atol=1e-6), name


def test_sface_and_the_vit_share_sfaces_stem(monkeypatch):
    """``-m magface,attention -r sface,vit``: SFace's first 23 convolutions run once per batch
    for both networks (declared: both continue from ``sface-stem``), and every column equals the
    model's own output: SFace's embedding that of the whole SFaceNet, the ViT's score that of
    the whole FaceViT (its own frozen stem)."""
    paths = lfw_images(6)
    scorer = Scorer(["magface", "attention"], ["sface", "vit"], device="cpu", batch_size=4)
    calls = []
    forward = SFaceStemPass.forward
    monkeypatch.setattr(SFaceStemPass, "forward", lambda self, x: calls.append(len(x))
                        or forward(self, x))
    rows = [row for image_rows in scorer.run(paths) for row in image_rows]
    assert calls == [4, 2]
    images = [read_image(path) for path in paths]
    crops = scorer.crops(images, [points for _, points in scorer.locate(images)])
    x = CROP_SPEC.normalize(crops)
    with torch.inference_mode():
        whole_sface = shared_backbone("sface", "cpu").net(x).numpy()
        vit = shared_backbone("vit", "cpu").net
        whole_vit, logits = vit.forward_with_logits(x)
    for name, whole in (("sface", whole_sface), ("vit", whole_vit.numpy())):
        table = np.array([[row[f"{name}.{i}"] for i in range(whole.shape[1])] for row in rows])
        assert np.allclose(table, whole, rtol=1e-4, atol=1e-5), name
    assert np.allclose([row["attention"] for row in rows], logits.mean((1, 2, 3)), atol=1e-5)


def test_models_share_one_network_per_device():
    assert "sface" in list_backbones()
    trunk = shared_backbone("sface", "cpu")
    assert trunk is shared_backbone("sface", "cpu")
    assert recognizer("sface", "cpu").model is trunk.net
    assert recognizer("magface", "cpu").model.backbone is trunk.net
    assert shared_backbone("sface", "cpu", "bf16") is not trunk
    with pytest.raises(ValueError, match="unknown backbone"):
        shared_backbone("nonesuch", "cpu")
