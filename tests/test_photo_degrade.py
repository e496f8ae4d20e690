"""Whole-photo degradations (fiqa.training.photo_degrade) on real LFW photos."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import lfw_images
from PIL import Image

from fiqa.crop import align
from fiqa.imageio import LoadedImage, read_image
from fiqa.pipeline import Scorer
from fiqa.training import degrade
from fiqa.training import photo_degrade as pd

# a strong setting of every family
STRONG = {
    "defocus": {"radius": 0.2},
    "motion": {"length": 0.4, "angle": 30.0},
    "downscale": {"eye_distance": 7.0},
    "noise": {"shot": 0.02, "read": 0.01},
    "jpeg": {"quality": 8},
    "exposure": {"stops": -2.5, "gamma": 1.2},
    "white_balance": {"warmth": 1.2, "tint": -0.3},
    "occlusion": {"region": "eyes", "fill": "dark"},
}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    """MTCNN: FaceGeometry's box-to-landmark proportions are MTCNN's (YuNet's boxes are taller)."""
    return Scorer((), device="cpu", detector="mtcnn")


@pytest.fixture(scope="module")
def located(scorer: Scorer) -> list[tuple[np.ndarray, pd.FaceGeometry]]:
    """Four LFW photos (250×250×3 uint8) and their faces, detected on the clean photo."""
    images = [read_image(path) for path in lfw_images(4)]
    return [(image.pixels, pd.FaceGeometry.from_faces(faces, 0, image.scale))
            for image, (faces, _) in zip(images, scorer.locate(images), strict=True)]


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _high_frequency(photo: np.ndarray) -> float:
    """Mean squared Laplacian of the grey photo."""
    g = photo.astype(float).mean(2)
    return float(np.mean((4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1]
                          - g[1:-1, :-2] - g[1:-1, 2:]) ** 2))


@pytest.mark.parametrize("family", sorted(pd.FAMILIES))
def test_every_family_changes_the_photo(located, family: str) -> None:
    assert set(STRONG) == set(pd.FAMILIES)
    photo, face = located[0]
    before = photo.copy()
    out = pd.FAMILIES[family](photo, _rng(), face, **STRONG[family])
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() > 2
    np.testing.assert_array_equal(photo, before)  # the input is left alone


def _resampling_error(photo: np.ndarray, factor: float) -> float:
    """Mean absolute change of ``photo`` resized by ``factor`` (area) and back (bicubic)."""
    height, width = photo.shape[:2]
    again = Image.fromarray(photo).resize((round(width * factor), round(height * factor)),
                                          Image.Resampling.BOX)
    again = again.resize((width, height), Image.Resampling.BICUBIC)
    return float(np.abs(np.asarray(again, dtype=float) - photo).mean())


@pytest.mark.parametrize("eye_distance", [6.0, 12.0])
def test_downscale_reaches_the_requested_face_size(located, eye_distance: float) -> None:
    """The output is best reproduced by resampling it through exactly the requested eye distance:
    coarser probes lose detail it has, finer ones fall off the resize grid."""
    for photo, face in located[:2]:
        out = pd.downscale(photo, _rng(), face, eye_distance=eye_distance)
        error = {k: _resampling_error(out, k * eye_distance / face.unit)
                 for k in (0.8, 0.9, 1, 1.1)}
        assert error[1] < error[0.9] and error[1] < error[1.1]
        assert error[0.8] > 1.5 * error[1]
    photo, face = located[0]
    np.testing.assert_array_equal(pd.downscale(photo, _rng(), face, eye_distance=2 * face.unit),
                                  photo)  # never enlarges


@pytest.mark.parametrize(("family", "params", "size"), [
    ("defocus", {"psf": "disk"}, "radius"), ("defocus", {"psf": "gaussian"}, "radius"),
    ("motion", {"angle": 0.0}, "length"), ("motion", {"angle": 120.0}, "length"),
])
def test_blur_lowers_high_frequency_energy(located, family: str, params: dict, size: str) -> None:
    for photo, face in located[:2]:
        energy = [_high_frequency(pd.FAMILIES[family](photo, _rng(), face, **params, **{size: s}))
                  for s in (0.1, 0.3)]
        assert energy[1] < energy[0] < 0.5 * _high_frequency(photo)


def test_motion_blur_follows_its_angle(located) -> None:
    """A horizontal streak smooths along x more than along y; a vertical one the reverse."""
    photo, face = located[0]

    def x_over_y(angle: float) -> float:
        out = pd.motion(photo, _rng(), face, length=0.4, angle=angle).astype(float)
        return float(np.abs(np.diff(out, axis=1)).mean() / np.abs(np.diff(out, axis=0)).mean())

    assert x_over_y(0.0) < x_over_y(45.0) < x_over_y(90.0)
    assert x_over_y(0.0) < 0.5 * x_over_y(90.0)


def _blockiness(photo: np.ndarray) -> np.ndarray:
    """By k = 0…7: the mean absolute grey step into columns and rows c ≡ k (mod 8)."""
    g = photo.astype(float).mean(2)
    steps_x = np.abs(np.diff(g, axis=1)).mean(0)  # step i: from column i to i + 1
    steps_y = np.abs(np.diff(g, axis=0)).mean(1)
    return np.array([steps_x[(k - 1) % 8::8].mean() + steps_y[(k - 1) % 8::8].mean()
                     for k in range(8)])


def _peak(blocks: np.ndarray, k: int = 0) -> float:
    """How far phase ``k`` stands out: its blockiness over the mean of the others."""
    return float(blocks[k] / np.delete(blocks, k).mean())


def test_jpeg_blocks_sit_on_the_photo_grid(located) -> None:
    """8×8 block edges at photo columns and rows 0 (or ``offset``) mod 8; after alignment they no
    longer sit on the crop's grid, as they do when the crop itself is encoded (degrade.jpeg).
    The photo is first cropped by (3, 5) px so that the LFW file's own JPEG grid is elsewhere."""
    for photo, face in located[:2]:
        shifted = np.ascontiguousarray(photo[3:, 5:])
        assert np.argmax(_blockiness(shifted)) != 0
        for offset in (0, 4):
            blocks = _blockiness(pd.jpeg(shifted, _rng(), None, quality=10, offset=offset))
            assert np.argmax(blocks) == offset and _peak(blocks, offset) > 1.4
        points = torch.from_numpy(face.landmarks[None])
        photo_level = align(torch.from_numpy(pd.jpeg(photo, _rng(), quality=10)).permute(2, 0, 1),
                            points)
        crop_level = degrade.jpeg(align(torch.from_numpy(photo).permute(2, 0, 1), points), 0.9)
        peaks = [_peak(_blockiness(c[0].permute(1, 2, 0).numpy())) for c in (photo_level,
                                                                             crop_level)]
        assert peaks[0] < 1.15 < 1.4 < peaks[1]


def test_jpeg_chroma_subsampling_halves_colour_detail(located) -> None:
    photo = located[0][0]

    def chroma_detail(subsampling: str) -> float:
        out = pd.jpeg(photo, _rng(), quality=90, subsampling=subsampling)
        ycbcr = np.asarray(Image.fromarray(out).convert("YCbCr"))
        return _high_frequency(ycbcr[..., 1:2]) + _high_frequency(ycbcr[..., 2:3])

    assert chroma_detail("4:2:0") < 0.85 * chroma_detail("4:4:4")


@pytest.mark.parametrize("per_channel", [True, False])
def test_noise_depends_on_the_signal(located, per_channel: bool) -> None:
    """Variance of the added noise (linear light) grows with brightness: shot noise."""
    photo, face = located[0]
    clean = pd.to_linear(photo)
    out = pd.noise(photo, _rng(), face, shot=0.01, read=0.002, per_channel=per_channel)
    added = pd.to_linear(out) - clean
    dark, bright = (clean > 0.02) & (clean < 0.08), (clean > 0.3) & (clean < 0.7)
    assert dark.sum() > 1000 and bright.sum() > 1000
    assert added[bright].var() > 4 * added[dark].var()
    assert abs(added.mean()) < 0.01
    red_blue = np.corrcoef(added[..., 0].ravel(), added[..., 2].ravel())[0, 1]
    if per_channel:
        assert abs(red_blue) < 0.2  # chroma noise
    else:
        assert red_blue > 0.8  # luminance noise


def test_exposure_and_white_balance_work_in_linear_light(located) -> None:
    photo = located[0][0]
    clean = pd.to_linear(photo)
    darker = pd.to_linear(pd.exposure(photo, _rng(), stops=-1.0))
    lit = clean > 0.2
    assert abs(np.median(darker[lit] / clean[lit]) - 0.5) < 0.02  # one stop halves linear light
    brighter = pd.exposure(photo, _rng(), stops=2.0)
    assert (brighter == 255).mean() > (photo == 255).mean() + 0.05  # highlights clip
    warm = pd.white_balance(photo, _rng(), warmth=1.0).astype(float)
    assert warm[..., 0].mean() > photo[..., 0].mean() + 5
    assert warm[..., 2].mean() < photo[..., 2].mean() - 5
    assert abs(warm.mean() - photo.mean()) < 15


@pytest.mark.parametrize("region", ["eyes", "mouth", "left", "right"])
@pytest.mark.parametrize("fill", ["dark", "skin", "light", "patch"])
def test_occlusion_stays_on_the_face(located, region: str, fill: str) -> None:
    for photo, face in located:
        out = pd.occlusion(photo, _rng(), face, region=region, fill=fill, shape="ellipse",
                           extent=1.3)
        changed = np.argwhere(np.any(out != photo, axis=2))
        assert len(changed) > 0.2 * face.unit**2
        x1, y1, x2, y2 = face.box + np.array([-1, -1, 1, 1]) * (face.unit / 2 + 1)
        assert changed[:, 0].min() >= y1 and changed[:, 0].max() <= y2
        assert changed[:, 1].min() >= x1 and changed[:, 1].max() <= x2
    photo = located[0][0]
    np.testing.assert_array_equal(pd.occlusion(photo, _rng(), None, region=region), photo)


def test_occlusion_covers_its_region(located) -> None:
    photo, face = located[0]
    for region, points in (("eyes", [0, 1]), ("mouth", [3, 4]), ("left", [0, 3]),
                           ("right", [1, 4])):
        out = pd.occlusion(photo, _rng(), face, region=region, fill="light")
        for x, y in face.landmarks[points].round().astype(int):
            assert np.abs(out[y, x].astype(int) - photo[y, x]).sum() > 30, (region, points)


def test_face_geometry_from_a_box_or_landmarks(located) -> None:
    """Either is estimated from the other with MTCNN's proportions (the nose moves with yaw)."""
    for _, face in located:
        guessed = pd.FaceGeometry(box=face.box)
        error = np.abs(guessed.landmarks - face.landmarks) / face.unit
        assert error[[0, 1, 3, 4]].max() < 0.35 and error[2].max() < 0.5
        assert abs(guessed.unit / face.unit - 1) < 0.15
        assert np.abs(pd.FaceGeometry(face.landmarks).box - face.box).max() < 0.4 * face.unit
    with pytest.raises(ValueError, match="landmarks, a box"):
        pd.FaceGeometry()


def _every_step(recipe: pd.PhotoDegradation) -> pd.PhotoDegradation:
    return replace(recipe, steps=tuple(replace(s, probability=1.0) for s in recipe.steps))


def test_recipes_reproduce_from_a_seed(located) -> None:
    photo, face = located[0]
    for recipe in (pd.training_recipe(), pd.evaluation_recipe()):
        a, record_a = recipe(photo, 7, face)
        b, record_b = recipe(photo, np.random.default_rng(7), face)
        np.testing.assert_array_equal(a, b)
        assert record_a == record_b
        outputs = {recipe(photo, seed, face)[0].tobytes() for seed in range(6)}
        assert len(outputs) >= 5


def test_records_and_leave_one_family_out(located) -> None:
    photo, face = located[0]
    recipe = _every_step(pd.training_recipe())
    out, record = recipe(photo, 3, face)
    assert [a.family for a in record] == [s.family for s in recipe.steps]
    quality = record[-1].params["quality"]
    assert isinstance(quality, int) and 15 <= quality <= 90
    assert record[1].params.keys() == {"stops", "gamma"}
    without, rest = recipe(photo, 3, face, exclude={"jpeg"})
    assert rest == record[:-1]  # the other steps drew the same values
    assert not np.array_equal(without, out)
    _, just = recipe(photo, 3, face, families={"noise", "downscale"})
    assert just == [a for a in record if a.family in {"noise", "downscale"}]
    _, faceless = recipe(photo, 3, None)
    assert "occlusion" not in [a.family for a in faceless]  # skipped and not recorded
    with pytest.raises(ValueError, match="unknown families"):
        recipe(photo, 3, face, exclude={"blur"})
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        recipe(photo.astype(float), 3, face)


def test_steps_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        pd.Step("sharpen")
    with pytest.raises(ValueError, match="not \\['sigma'\\]"):
        pd.Step("defocus", {"sigma": 2.0})
    with pytest.raises(ValueError, match="probability"):
        pd.Step("jpeg", probability=1.5)


def test_training_and_test_recipes_differ() -> None:
    train, test = pd.training_recipe(), pd.evaluation_recipe()
    order = {r.name: [s.family for s in r.steps] for r in (train, test)}
    assert order["training"] != order["test"]
    assert order["training"].index("defocus") < order["training"].index("noise")
    assert order["test"].index("noise") < order["test"].index("defocus")
    assert order["training"].count("jpeg") == 1 and order["test"].count("jpeg") == 2
    assert set(order["training"]) == set(order["test"]) == set(pd.FAMILIES)
    params = {r.name: {s.family: s.params for s in r.steps} for r in (train, test)}
    for family in pd.FAMILIES:
        assert params["training"][family] != params["test"][family], family


def _chain(defocus: float, shot: float, eye_distance: float, quality: int) -> pd.PhotoDegradation:
    return pd.PhotoDegradation("chain", (
        pd.Step("defocus", {"radius": defocus}), pd.Step("noise", {"shot": shot, "read": shot}),
        pd.Step("downscale", {"eye_distance": eye_distance}), pd.Step("jpeg", {"quality": quality}),
    ))


def test_faces_are_found_after_light_degradation_not_after_heavy(located, scorer: Scorer) -> None:
    light, heavy = _chain(0.03, 0.002, 25.0, 60), _chain(0.4, 0.03, 4.0, 5)
    found = scorer.locate([LoadedImage(heavy(photo, i, face)[0])
                           for i, (photo, face) in enumerate(located)])
    assert sum(len(faces) for faces, _ in found) < len(located)  # heavy: some faces are lost
    photos = [light(photo, i, face)[0] for i, (photo, face) in enumerate(located)]
    for (faces, _), (_, face) in zip(scorer.locate([LoadedImage(p) for p in photos]), located,
                                     strict=True):
        assert len(faces) == 1
        box = faces.boxes[0]
        overlap = np.prod(np.clip(np.minimum(box[2:], face.box[2:])
                                  - np.maximum(box[:2], face.box[:2]), 0, None))
        union = np.prod(box[2:] - box[:2]) + np.prod(face.box[2:] - face.box[:2]) - overlap
        assert overlap / union > 0.8
