"""Face ViT, its distillation, the ATTN-FIQA estimator and explanations, on real LFW faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import LFW
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import fiqa
from fiqa import Scorer
from fiqa.cli import app
from fiqa.estimators.attention import AttentionQuality
from fiqa.evaluation.features import _options, model_id
from fiqa.evaluation.protocols import pair_paths
from fiqa.evaluation.report import cosine
from fiqa.explain import explain_images, overlay
from fiqa.recognizers import recognizer
from fiqa.recognizers.face_vit import CROP_SPEC, FaceViT, ViTShape, load_face_vit, save_face_vit
from fiqa.training.degrade import degrade
from fiqa.training.face_vit import ViTConfig, distill, render_batch, teacher_embeddings
from fiqa.verification import read_lfw_pairs

TINY = ViTShape(dim=32, depth=2, heads=2, mlp_ratio=2.0, embedding_dim=16)


def test_fused_and_explicit_attention_agree():
    torch.manual_seed(0)
    model = FaceViT(TINY).eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        fused = model(x)
        explicit, logits = model.forward_with_logits(x)
        block, tokens = model.blocks[-1], model.patches(x).flatten(2).transpose(1, 2)
        tokens = model.blocks[0](tokens + model.position)[0]
        q, k, _ = block.qkv(block.norm1(tokens)).view(3, 196, 3, 2, 16).permute(2, 0, 3, 1, 4)
    assert logits.shape == (3, 2, 196, 196)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, q @ k.transpose(-2, -1) / 4, atol=1e-5, rtol=1e-4)


def test_a_users_own_vit_round_trips_and_scores(tmp_path, lfw_faceset):
    """Another member of the family (other width, depth, input size) saved with save_face_vit
    works with the estimator: its crops follow its size and the score is the map's mean."""
    torch.manual_seed(0)
    mine = FaceViT(dataclasses.replace(TINY, size=96)).eval()
    path = save_face_vit(mine, tmp_path / "mine.safetensors")
    loaded = load_face_vit(path)
    assert loaded.shape == mine.shape
    estimator = AttentionQuality("cpu", model=path, score_range=(-1.0, 1.0))
    assert estimator.crop_spec.size == 96
    crops = lfw_faceset.crops(np.arange(4), estimator.crop_spec)
    maps = estimator.explain(crops)
    assert maps.shape == (4, 12, 12)
    np.testing.assert_allclose(estimator.score(crops), maps.mean((1, 2)), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="expects N×3×96×96"):
        estimator.explain(lfw_faceset.crops(np.arange(1), CROP_SPEC))
    other = FaceViT(dataclasses.replace(TINY, size=96))  # same shape, other weights
    cache_ids = {model_id(e.name, e.provenance(), _options(e))
                 for e in (estimator, AttentionQuality("cpu", model=other))}
    assert len(cache_ids) == 2  # the feature cache keeps their scores apart
    save_file({"w": torch.zeros(1)}, tmp_path / "bare.safetensors")
    with pytest.raises(ValueError, match="vit_shape"):
        load_face_vit(tmp_path / "bare.safetensors")


def test_distillation_learns_and_resumes(tmp_path, lfw_faceset):
    """A tiny student gets closer to the teacher on the training faces, and a second call with
    the same configuration resumes from the checkpoint instead of training again."""
    targets = teacher_embeddings(lfw_faceset, "dlib", torch.device("cpu"))
    assert targets.shape == (12, 128)
    torch.testing.assert_close(targets.norm(dim=1), torch.ones(12))
    config = ViTConfig(dim=32, depth=2, heads=2, epochs=6, batch_size=6, lr=3e-3, clean=1.0,
                       jitter=0.0, warmup=0.2)
    checkpoint = tmp_path / "run.pt"
    student, history = distill(lfw_faceset, targets, config, torch.device("cpu"), checkpoint,
                               log=lambda row: None)
    assert len(history) == 6 and history[-1]["cosine"] > history[0]["cosine"] + 0.1
    rows = []
    again, resumed = distill(lfw_faceset, targets, config, torch.device("cpu"), checkpoint,
                             log=rows.append)
    assert rows == [{"resumed_after_epoch": 6}] and resumed == history
    for a, b in zip(student.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_training_views_are_degraded_and_flipped(lfw_faceset):
    config = ViTConfig(clean=0.0, jitter=0.0)
    index = np.arange(12)
    plain = lfw_faceset.crops(index, CROP_SPEC)
    views = render_batch(lfw_faceset, index, config, np.random.default_rng(0))
    assert views.shape == (12, 3, 112, 112) and views.dtype == torch.uint8
    differences = (views.float() - plain.float()).abs().mean((1, 2, 3))
    assert (differences > 1).all()


def test_overlay_colours_follow_the_map(lfw_faceset):
    crop = lfw_faceset.crops(np.arange(1), CROP_SPEC)[0].permute(1, 2, 0).numpy()
    heatmap = np.zeros((14, 14), np.float32)
    heatmap[:, 7:] = 1.0
    picture = overlay(crop, heatmap, (0.0, 1.0), alpha=1.0)
    assert picture.shape == crop.shape and picture.dtype == np.uint8
    np.testing.assert_array_equal(picture[50, 5], [68, 1, 84])  # low end of the scale
    np.testing.assert_array_equal(picture[50, 110], [253, 231, 37])  # high end


# With our trained weights (weights/face_vit.safetensors).


@pytest.fixture(scope="module")
def attention() -> AttentionQuality:
    return fiqa.create("attention", device="cpu")


def test_attention_is_lower_for_strongly_degraded_faces(attention, lfw_faceset):
    """Blur σ 4.3 px, a 9-px face and 57 % occlusion lower the median score of held-out LFW
    faces (darkness, noise and JPEG do not: docs/attention.md); the score is the map's mean."""
    crops = lfw_faceset.crops(np.arange(12), CROP_SPEC)
    clean = attention.score(crops)
    np.testing.assert_allclose(clean, attention.explain(crops).mean((1, 2)), rtol=1e-4, atol=1e-5)
    for kind in ("blur", "resolution", "occlusion"):
        worse = attention.score(degrade(crops, kind, 0.95, np.random.default_rng(0)))
        assert np.median(worse) < np.median(clean), kind


def test_student_separates_held_out_pairs():
    """On the first 60 genuine and 60 impostor pairs of LFW View 2 (people never trained on),
    genuine pairs are clearly more similar than impostor pairs."""
    pairs = read_lfw_pairs(LFW / "pairs.txt", LFW / "images")
    pairs = pd.concat([pairs[pairs["same"]].head(60), pairs[~pairs["same"]].head(60)])
    student = recognizer("vit", device="cpu")
    assert student.dim == 128
    encoder = Scorer((), [student], device="cpu")
    paths = pair_paths(pairs)
    rows = {row[0]["path"]: row[0] for row in encoder.run(paths)}
    vectors = {path: np.array([row.get(f"vit.{i}", np.nan) for i in range(128)])
               for path, row in rows.items()}
    similarity = np.array([cosine(vectors[a][None], vectors[b][None])[0]
                           for a, b in zip(pairs["path_a"], pairs["path_b"], strict=True)])
    same = pairs["same"].to_numpy()
    known = ~np.isnan(similarity)
    assert np.mean(similarity[same & known]) > np.mean(similarity[~same & known]) + 0.2
    assert roc_auc_score(same[known], similarity[known]) > 0.7


def test_explain_cli_writes_heatmaps(tmp_path, lfw_paths):
    blank, broken = tmp_path / "blank.png", tmp_path / "broken.jpg"
    Image.new("RGB", (120, 120), "gray").save(blank)
    broken.write_text("not an image")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(lfw_paths[0]), str(lfw_paths[1]), str(blank),
                                      str(broken), "-m", "attention", "-o", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    pictures = sorted(out.glob("*.png"))
    assert [p.stem for p in pictures] == sorted(p.stem for p in lfw_paths[:2])
    assert Image.open(pictures[0]).size == (448, 224)
    table = (out / "explanations.csv").read_text()
    assert "no_face" in table and "unreadable" in table
    items = list(explain_images([lfw_paths[0]], "attention", "cpu"))
    assert items[0].heatmap.shape == (14, 14) and items[0].crop.shape == (112, 112, 3)
    refused = CliRunner().invoke(app, ["explain", str(lfw_paths[0]), "-m", "baseline",
                                       "-o", str(out)])
    assert refused.exit_code == 2 and "no per-patch map" in refused.output
