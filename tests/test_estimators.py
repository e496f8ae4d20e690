"""The estimator registry and the baseline estimator on real faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fiqa
from fiqa import onnx_export
from fiqa.estimators import QualityEstimator, estimator_class, register


@pytest.fixture(scope="module")
def lfw_faces(lfw_paths):
    """Aligned 112×112 crops and metadata of real LFW faces."""
    scorer = fiqa.Scorer(["baseline"], device="cpu")
    images = [fiqa.read_image(p) for p in lfw_paths]
    faces, points = zip(*scorer.locate(images), strict=True)
    return scorer.crops(images, list(points)), fiqa.Faces.concat(list(faces))


def test_registry_lists_and_creates():
    assert "baseline" in fiqa.list_estimators()
    estimator = fiqa.create("baseline", device="cpu", max_yaw=45)
    assert isinstance(estimator, QualityEstimator) and estimator.max_yaw == 45
    assert estimator.score_range == (0.0, 1.0) and estimator.provenance() == []
    with pytest.raises(ValueError, match="available: .*baseline"):
        fiqa.create("no-such-estimator")


def test_variants_set_the_declared_option(lfw_faces):
    """``name:value`` is the estimator with its declared option set, in its own column; an
    estimator without one, or an empty value, is refused with a clear message."""
    crops, _ = lfw_faces
    variant = fiqa.create("ri-proximity:sface", device="cpu")
    explicit = fiqa.create("ri-proximity", device="cpu", recognizer="sface")
    assert variant.name == explicit.name == "ri-proximity:sface"
    assert variant.crop_spec.geometry == fiqa.DEFAULT_CROP.geometry  # the crops at hand
    np.testing.assert_array_equal(variant.score(crops), explicit.score(crops))
    assert fiqa.create("ri:ri_head_without_jpeg", device="cpu").name == "ri:ri_head_without_jpeg"
    default = fiqa.create("ri-proximity:dlib", device="cpu")  # the default value, named anyway
    plain = fiqa.create("ri-proximity", device="cpu")
    assert default.name == "ri-proximity:dlib" and plain.name == "ri-proximity"
    assert torch.equal(default.centre, plain.centre) and default.crop_spec == plain.crop_spec
    with pytest.raises(ValueError, match="same column"):
        fiqa.Scorer(["ri-proximity:sface", explicit], device="cpu")
    assert onnx_export.load("ri-proximity:sface").name == "ri-proximity:sface"
    with pytest.raises(ValueError, match="baseline takes no ':' variant .*ri-proximity:"):
        fiqa.create("baseline:x", device="cpu")
    with pytest.raises(ValueError, match="nothing after ':'"):
        fiqa.create("ri:", device="cpu")


def test_a_new_estimator_registers_without_touching_fiqa():
    @register
    class Brightness(QualityEstimator):
        name = "test-brightness"
        description = "mean crop brightness"
        score_range = (0.0, 255.0)

        def measure(self, crops, faces):
            return {"score": crops.float().mean((1, 2, 3)).cpu().numpy()}

    estimator = fiqa.create("test-brightness", device="cpu")
    crops = torch.full((2, 3, 112, 112), 51, dtype=torch.uint8)
    assert np.allclose(estimator.score(crops), 51) and np.allclose(estimator.to_quality([51]), 20)
    with pytest.raises(ValueError, match="112×112"):
        estimator.score(torch.zeros((1, 3, 64, 64), dtype=torch.uint8))


def test_baseline_needs_landmarks():
    with pytest.raises(ValueError, match="landmarks"):
        blank = torch.zeros((1, 3, 112, 112), dtype=torch.uint8)
        fiqa.create("baseline", device="cpu").score(blank)


def test_baseline_on_real_faces(lfw_faces):
    crops, faces = lfw_faces
    result = fiqa.create("baseline", device="cpu")(crops, faces)
    assert set(result) == {"score", *estimator_class("baseline").components}
    assert ((result["score"] > 0) & (result["score"] <= 1)).all()
    # LFW faces are roughly frontal, 30–60 px between the eyes, and evenly lit. (These 20 have a
    # median |yaw| of 13.8° by MTCNN's landmarks, 17.2° by YuNet's; pitch near 0 with each
    # detector's mean face.)
    assert np.median(np.abs(result["yaw"])) < 20 and np.median(np.abs(result["roll"])) < 10
    assert abs(np.median(result["pitch"])) < 10
    assert 25 < np.median(result["inter_eye_px"]) < 60
    assert 0.25 < np.median(result["brightness"]) < 0.75


def _blur(crops: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    out = crops.float()
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel, groups=3)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"),
                   kernel.transpose(2, 3), groups=3)
    return out.round().clamp(0, 255).to(torch.uint8)


def test_baseline_falls_with_blur_darkness_and_resolution(lfw_faces):
    crops, faces = lfw_faces
    baseline = fiqa.create("baseline", device="cpu")
    clean = baseline.score(crops, faces)
    blurred = baseline.score(_blur(crops, 2.5), faces)
    dark = baseline.score((crops.float() * 0.15).to(torch.uint8), faces)
    small = fiqa.Faces(faces.boxes / 6, faces.scores, faces.landmarks / 6, faces.image_sizes)
    low_res = baseline.score(crops, small)
    for degraded in (blurred, dark, low_res):
        assert (degraded < clean).mean() >= 0.9


def test_detection_confidence_orders_by_detector_probability(lfw_faces):
    crops, faces = lfw_faces
    estimator = fiqa.create("detection", device="cpu")
    scores = estimator.score(crops, faces)
    assert (np.diff(scores[np.argsort(faces.scores)]) >= 0).all()  # monotonic in the probability
    assert (estimator.to_quality(scores) > 50).all()  # every detected LFW face is likely a face
