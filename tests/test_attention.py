"""Face ViT, its distillation, the ATTN-FIQA estimator and explanations, on real LFW faces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import LFW, PHOTO_DEGRADATIONS
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

import fiqa
from fiqa import Scorer
from fiqa.backbones import shared_backbone
from fiqa.cli import app
from fiqa.estimators.attention import AttentionQuality
from fiqa.evaluation.features import _options, model_id
from fiqa.evaluation.protocols import pair_paths
from fiqa.evaluation.report import cosine
from fiqa.explain import explain_images, overlay
from fiqa.recognizers import recognizer
from fiqa.recognizers.face_vit import CROP_SPEC, FaceViT, ViTShape, load_face_vit, save_face_vit
from fiqa.recognizers.sface import SFaceStem
from fiqa.training.face_vit import (
    ViTConfig,
    clean_targets,
    distill,
    evaluate_held_out,
    stem_maps,
    student_outputs,
    teacher_recognisability,
    teachers_recognisability,
    view_embeddings,
)
from fiqa.verification import read_lfw_pairs

TINY = ViTShape(dim=32, depth=2, heads=2, mlp_ratio=2.0, embedding_dim=16)


def test_fused_and_explicit_attention_agree():
    torch.manual_seed(0)
    model = FaceViT(TINY).eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        fused = model(x)
        explicit, logits = model.forward_with_logits(x)
        _, mean = model.encode(model.stem(x), "mean")  # from the mean query and key
        block = model.blocks[-1]
        tokens = model.patches(model.stem(x)).flatten(2).transpose(1, 2)
        tokens = model.blocks[0](tokens + model.position)[0]
        q, k, _ = block.qkv(block.norm1(tokens)).view(3, 196, 3, 2, 16).permute(2, 0, 3, 1, 4)
    assert logits.shape == (3, 2, 196, 196)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, q @ k.transpose(-2, -1) / 4, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mean, logits.mean((1, 2, 3)), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="keep must be"):
        model.encode(model.stem(x), "all")


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


def test_hybrid_vit_reads_sface_frozen_first_layers():
    """stem_layers=23: SFace's layers down to 1/8 scale make the 14×14 grid, frozen; a stem of
    another stride is refused."""
    model = FaceViT(dataclasses.replace(TINY, stem_layers=23, flatten=True))
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.patches.parameters())
    stem = SFaceStem.pretrained(23).eval()
    sface = recognizer("sface", "cpu").model
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        prefix = x
        for layer, activation in list(zip(sface.layers, sface.activations, strict=True))[:23]:
            prefix = activation(layer(prefix))
        torch.testing.assert_close(stem(x), prefix)
        assert model(x).shape == (2, 16)
    with pytest.raises(ValueError, match="stride 4"):
        FaceViT(dataclasses.replace(TINY, stem_layers=11))


def test_targets_are_the_clean_views_of_each_photo(photo_views):
    targets = clean_targets(photo_views)
    torch.testing.assert_close(targets.norm(dim=1), torch.ones(len(photo_views)))
    for image in range(12):
        views = np.flatnonzero(photo_views.image == image)
        assert len(views) >= 2 and (targets[views] == targets[views[0]]).all()
    first, other = (np.flatnonzero(photo_views.image == i)[0] for i in (0, 2))  # two people
    assert cosine(targets[[first]].numpy(), targets[[other]].numpy())[0] < 0.9


def test_teacher_recognisability_leaves_the_photo_itself_out(tmp_path, photo_views):
    """Each view against the clean view of its person's other photo (two photos a person here):
    SFace's cosine, never the view's own clean photo; the trainer averages it with FaceRes's."""
    quality = teacher_recognisability(photo_views)
    unit = torch.nn.functional.normalize(photo_views.embeddings, dim=1)
    labels = photo_views.labels
    for v in range(len(photo_views)):
        other = np.flatnonzero((labels == labels[v]) & (photo_views.image != photo_views.image[v])
                               & (photo_views.view == 0))
        expected = torch.nn.functional.cosine_similarity(unit[v], unit[other].sum(0), dim=0)
        torch.testing.assert_close(quality[v], expected, atol=1e-5, rtol=1e-5)
    assert (quality[photo_views.view == 0] < 0.99).all()  # not the photo against itself
    config = ViTConfig(dim=32, depth=1, heads=2, epochs=1, batch_size=6, holdout=0,
                       attention_target="teacher")
    _, history = distill(photo_views, config, torch.device("cpu"), cache=tmp_path,
                         log=lambda row: None)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    with pytest.raises(ValueError, match="attention_target"):
        distill(photo_views, dataclasses.replace(config, attention_target="oracle"),
                torch.device("cpu"))


def test_second_teacher_reads_the_training_crops(tmp_path, photo_views, lfw_faceset):
    """FaceRes embeds the 112-px training crops, resized to its 224 px, close to its own crops of
    the photos; its recognisability ranks the degraded views below the clean ones, like SFace's;
    the attention target standardises each teacher's and averages them. dlib's padded crop
    cannot come from the training crops."""
    rows = torch.from_numpy(np.array(view_embeddings(photo_views.crops, "faceres", tmp_path)))
    assert rows.shape == (len(photo_views), 1024)
    again = view_embeddings(photo_views.crops, "faceres", tmp_path)  # from the cache
    np.testing.assert_array_equal(again, rows.half().numpy())
    faceres = recognizer("faceres", "cpu")
    clean = np.flatnonzero(photo_views.view == 0)
    direct = faceres.embed(lfw_faceset.crops(photo_views.image[clean], faceres.crop_spec))
    agreement = torch.nn.functional.cosine_similarity(rows[clean], direct, dim=1)
    assert agreement.min() > 0.98, agreement
    quality = {name: teacher_recognisability(photo_views, embeddings)
               for name, embeddings in (("sface", None), ("faceres", rows))}
    degraded = torch.from_numpy(photo_views.view > 0)
    for values in quality.values():
        assert values[degraded].mean() < values[~degraded].mean()

    def standardised(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean()) / x.std()

    both = teachers_recognisability(photo_views, "sface,faceres", tmp_path)
    torch.testing.assert_close(both, (standardised(quality["sface"])
                                      + standardised(quality["faceres"])) / 2)
    # the student's own embeddings stand in for "student", which is left out until it has some
    own = teachers_recognisability(photo_views, "sface,student", tmp_path, student=rows)
    torch.testing.assert_close(own, both)
    alone = teachers_recognisability(photo_views, "sface,student", tmp_path)
    torch.testing.assert_close(alone, standardised(quality["sface"]))
    with pytest.raises(ValueError, match="besides student"):  # nothing to learn from at first
        teachers_recognisability(photo_views, "student", tmp_path, student=rows)
    with pytest.raises(ValueError, match="ArcFace template"):
        view_embeddings(photo_views.crops, "dlib", tmp_path)


def test_distillation_learns_and_resumes(tmp_path, photo_views):
    """A tiny hybrid student gets closer to the teacher on real photo views, reports the held-out
    people, resumes from its checkpoint; the cached stem maps are the stem's own outputs; the
    on-device path and the precomputed one with flips (mirrored maps cached too) train too."""
    config = ViTConfig(dim=32, depth=1, heads=2, epochs=5, batch_size=6, lr=3e-3, warmup=0.2,
                       holdout=1)
    checkpoint = tmp_path / "run.pt"
    student, history = distill(photo_views, config, torch.device("cpu"), checkpoint, tmp_path,
                               log=lambda row: None)
    assert len(history) == 5 and history[-1]["cosine"] > history[0]["cosine"] + 0.1
    held_out = {key: value for key, value in history[-1].items() if key.startswith("held_out")}
    assert {"held_out_clean", "held_out_degraded", "held_out_pauc_clean_vit",
            "held_out_pauc_mixed_sface", "held_out_pauc_clean_faceres"} <= set(held_out)
    # one held-out person of two photos: no genuine errors at FNMR 10 %, so the pAUCs are NaN
    again = evaluate_held_out(student, photo_views, config, tmp_path)  # the returned student
    assert again.keys() == held_out.keys()
    np.testing.assert_allclose(list(again.values()), list(held_out.values()), rtol=1e-5)
    assert 0 <= again["held_out_attention_auc"] <= 1
    rows = []
    again, resumed = distill(photo_views, config, torch.device("cpu"), checkpoint, tmp_path,
                             log=rows.append)
    assert rows == [{"resumed_after_epoch": 5}] and repr(resumed) == repr(history)  # NaN too
    for a, b in zip(student.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    maps = stem_maps(photo_views.crops, student.stem, tmp_path)
    with torch.inference_mode():
        direct = student.stem(CROP_SPEC.normalize(photo_views.crops[:4]))
    torch.testing.assert_close(torch.from_numpy(np.array(maps[:4])).float(), direct, atol=0.05,
                               rtol=0.01)
    for flipped in (dataclasses.replace(config, precompute=False, flips=True, epochs=1),
                    dataclasses.replace(config, flips=True, epochs=1)):
        _, history = distill(photo_views, flipped, torch.device("cpu"), cache=tmp_path,
                             log=lambda row: None)
        assert len(history) == 1 and 0 < history[0]["cosine"] < 1
    own = dataclasses.replace(config, teachers="sface,student", epochs=2)  # its own, from epoch 2
    _, history = distill(photo_views, own, torch.device("cpu"), cache=tmp_path,
                         log=lambda row: None)
    assert len(history) == 2 and np.isfinite([row["loss"] for row in history]).all()
    mirrored = stem_maps(photo_views.crops.flip(-1), student.stem, tmp_path)  # cached by the run
    assert len(list(tmp_path.glob("vit-stem-*.done"))) == 2
    with torch.inference_mode():
        direct = student.stem(CROP_SPEC.normalize(photo_views.crops[:4].flip(-1)))
    torch.testing.assert_close(torch.from_numpy(np.array(mirrored[:4])).float(), direct,
                               atol=0.05, rtol=0.01)
    bare = dataclasses.replace(photo_views, crops=None)
    with pytest.raises(ValueError, match="crops=True"):
        distill(bare, config, torch.device("cpu"))


def test_student_outputs_of_views_are_the_estimators_scores(photo_views):
    """The training side's scores of photo views (benchmarks/held_out_scores.py reads them) are
    the ``attention`` estimator's raw scores and the ``vit`` recognizer's embeddings of the
    same crops."""
    estimator, index = AttentionQuality(device="cpu"), np.array([0, 4, 7, 11])
    embeddings, scores = student_outputs(estimator.model, photo_views, index)
    crops = photo_views.crops[torch.from_numpy(index)]
    torch.testing.assert_close(scores.float(), estimator.network_score(crops).float(),
                               atol=1e-4, rtol=1e-4)
    expected = recognizer("vit", "cpu").embed(crops)
    assert F.cosine_similarity(embeddings.float(), torch.as_tensor(expected).float()).min() > 0.999


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


@pytest.mark.parametrize("family", sorted(PHOTO_DEGRADATIONS))
def test_attention_falls_on_degraded_photos(attention, lfw_photo_pairs, family):
    """Whole LFW View 2 photos (people never trained on) degraded by evaluation-recipe settings,
    detected again: the clean faces score higher; the score is the mean of the map."""
    clean, degraded = lfw_photo_pairs[family]
    before, after = attention.score(clean), attention.score(degraded)
    np.testing.assert_allclose(before, attention.explain(clean).mean((1, 2)), rtol=1e-4,
                               atol=1e-5)
    assert np.median(after) < np.median(before) and np.mean(after < before) >= 0.75


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
    assert np.mean(similarity[same & known]) > np.mean(similarity[~same & known]) + 0.4
    assert roc_auc_score(same[known], similarity[known]) > 0.97


def test_vit_models_read_one_shared_pass(attention, lfw_faceset):
    """vit, vit-norm and attention read the trunk's one pass (embedding, then score) and give
    what the network gives on its own: the explicit last-block logits' mean, its embedding."""
    crops = lfw_faceset.crops(np.arange(6), CROP_SPEC)
    trunk = shared_backbone("vit", "cpu")
    student = recognizer("vit", device="cpu")
    assert student.model is trunk.net and attention.model is trunk.net
    with torch.inference_mode():
        embeddings, logits = trunk.net.forward_with_logits(CROP_SPEC.normalize(crops))
    features = trunk.features(crops)
    torch.testing.assert_close(student.embed_features(features), embeddings)
    np.testing.assert_allclose(attention.score(crops), logits.mean((1, 2, 3)).numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(fiqa.create("vit-norm", device="cpu").score(crops),
                               embeddings.norm(dim=1).numpy(), rtol=1e-5)


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
