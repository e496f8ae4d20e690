"""Alignment: the warp puts the five landmarks on the crop spec's template."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import lfw_images
from scipy import ndimage

from fiqa import Scorer
from fiqa.crop import DEFAULT_CROP, CropSpec, _warp, align, similarity_transform
from fiqa.imageio import read_image


def _planted(points: np.ndarray, shape: tuple[int, int], radius: int) -> torch.Tensor:
    """A black 3×H×W uint8 image with a white square of ``radius`` at each point."""
    image = np.zeros((*shape, 3), np.uint8)
    for x, y in np.round(points).astype(int):
        image[y - radius:y + radius + 1, x - radius:x + radius + 1] = 255
    return torch.from_numpy(image).permute(2, 0, 1)


def _blob_centres(crop: torch.Tensor) -> np.ndarray:
    mask = crop[0].numpy() > 60
    labels, count = ndimage.label(mask)
    centres = ndimage.center_of_mass(crop[0].numpy().astype(float), labels, range(1, count + 1))
    return np.array([(x, y) for y, x in centres])


# The second case shrinks the face 14× and so takes the box-filter path.
@pytest.mark.parametrize("scale, radius", [(2.3, 2), (14.0, 12)])
@pytest.mark.parametrize("spec", [DEFAULT_CROP, CropSpec(size=150, padding=0.25)])
def test_landmarks_land_on_template(spec, scale, radius):
    angle = np.radians(20)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = np.asarray(DEFAULT_CROP.template) @ rotation.T + [60, 40]
    points = np.round(points)  # the planted squares sit on whole pixels
    height, width = (points.max(0) + 80).astype(int)[::-1]
    crop = align(_planted(points, (height, width), radius), points[None], spec)
    assert crop.shape == (1, 3, spec.size, spec.size) and crop.dtype == torch.uint8
    found = _blob_centres(crop[0])
    assert len(found) == 5
    template = spec.landmarks()
    errors = [np.min(np.linalg.norm(found - t, axis=1)) for t in template]
    assert max(errors) < 0.6, errors


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    true = np.array([[0.8, -0.6, 5.0], [0.6, 0.8, -3.0]]) * [[1.5], [1.5]]
    true[:, 2] /= 1.5
    dst = src @ true[:, :2].T + true[:, 2]
    assert np.allclose(similarity_transform(src, dst), true, atol=1e-9)


def test_spec_normalisation():
    crops = torch.tensor([[[[0]], [[128]], [[255]]]], dtype=torch.uint8)
    spec = CropSpec(channels="BGR", mean=(127.5,) * 3, std=(127.5,) * 3)
    assert torch.allclose(spec.normalize(crops).flatten(), torch.tensor([1.0, 0.5 / 127.5, -1.0]))
    assert align(crops, np.zeros((0, 5, 2))).shape == (0, 3, 112, 112)


@pytest.mark.parametrize("scale, offset, inside", [
    (1.0, (20, 30), True), (0.9, (-40, -25), True), (6.0, (400, 350), True),
    (1.0, (1200, 1100), False)])
def test_warp_from_the_footprint_equals_the_whole_photo(lfw_face, scale, offset, inside):
    """Each face is warped from only the pixels its crop samples; the crop is the one warped from
    the whole photo (a 1000×1000 upscaled LFW photo; faces partly or wholly outside it, and one
    that takes the box-filter path), within one level of rounding."""
    photo = torch.from_numpy(np.ascontiguousarray(np.kron(lfw_face, np.ones((4, 4, 1), np.uint8))))
    photo = photo.permute(2, 0, 1)
    points = (np.asarray(DEFAULT_CROP.template) * scale + offset)[None]
    crop = align(photo, points)
    matrix = similarity_transform(points[0], DEFAULT_CROP.landmarks())
    shrink = max(1, int(1 / np.sqrt(abs(np.linalg.det(matrix[:, :2])))))
    source = torch.nn.functional.avg_pool2d(photo.float()[None], shrink, ceil_mode=True)
    pooled = matrix @ np.array([[shrink, 0, (shrink - 1) / 2], [0, shrink, (shrink - 1) / 2],
                                [0, 0, 1.0]])
    expected = _warp([source[0]], pooled[None], DEFAULT_CROP.size).round().clamp(0, 255)
    assert (crop.float() - expected).abs().max() <= 1
    assert (crop.max() > 0) == inside


def test_a_crop_does_not_depend_on_its_batch(monkeypatch):
    """Faces of LFW photos aligned together equal each aligned alone, exactly; and models whose
    crop specs differ only in normalisation (magface's, baseline's) share one alignment."""
    images = [read_image(path) for path in lfw_images(6)]
    scorer = Scorer(["magface", "baseline"], device="cpu")
    located = scorer.locate(images)
    points = [p for _, p in located]
    together = scorer.crops(images, points)
    alone = torch.cat([scorer.crops([image], [p]) for image, p in zip(images, points, strict=True)])
    assert len(together) == 6 and torch.equal(together, alone)
    assert scorer.estimators[0].crop_spec != scorer.estimators[1].crop_spec
    calls = []
    crops = Scorer.crops
    monkeypatch.setattr(Scorer, "crops", lambda self, images, points, spec=DEFAULT_CROP:
                        calls.append(spec) or crops(self, images, points, spec))
    scorer.measure(images, [f for f, _ in located], points)
    assert len(calls) == 1
