"""Reading images: modes, orientation, guards and input expansion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fiqa.imageio import ImageReadError, expand_inputs, read_image


@pytest.fixture()
def rgb(lfw_face: np.ndarray) -> Image.Image:
    return Image.fromarray(lfw_face)


def test_modes_become_rgb(tmp_path, rgb):
    gray = rgb.convert("L")
    cases = {
        "gray.png": gray,
        "palette.png": rgb.quantize(256),
        "alpha.png": rgb.convert("RGBA"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "gray16.png": Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        loaded = read_image(tmp_path / name)
        assert loaded.pixels.shape == (*np.asarray(gray).shape, 3), name
        assert loaded.pixels.dtype == np.uint8
        # Same picture: luminance within JPEG/palette error of the source.
        luma = loaded.pixels.astype(float) @ [0.299, 0.587, 0.114]
        assert np.abs(luma - np.asarray(gray, dtype=float)).mean() < 8, name


def test_transparent_pixels_composite_on_white(tmp_path):
    image = Image.new("RGBA", (20, 20), (10, 20, 30, 0))
    image.save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png").pixels == 255).all()


def test_exif_orientation_is_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    wide = rgb.resize((300, 200))
    wide.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(tmp_path / "rotated.jpg").pixels.shape == (300, 200, 3)


def test_large_images_are_reduced_and_bombs_refused(tmp_path, rgb):
    rgb.resize((2000, 1600)).save(tmp_path / "big.jpg")
    loaded = read_image(tmp_path / "big.jpg", max_side=500)
    assert max(loaded.pixels.shape[:2]) == 500
    assert loaded.original_size == (1600, 2000)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "big.jpg", max_pixels=1_000_000)


@pytest.mark.parametrize("content, reason", [
    (b"", "cannot identify"), (b"hello, I am text", "cannot identify"),
])
def test_unreadable_files_raise_with_reason(tmp_path, content, reason):
    (tmp_path / "bad.jpg").write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        read_image(tmp_path / "bad.jpg")


def test_truncated_jpeg_is_unreadable(tmp_path, rgb):
    rgb.save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_expand_inputs(tmp_path, rgb):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.jpg", "a/b/2.PNG", "a/notes.dat", "3.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# a comment\na/1.jpg\n\nmissing.jpg\n")
    assert expand_inputs([tmp_path / "a"]) == [tmp_path / "a/1.jpg", tmp_path / "a/b/2.PNG"]
    assert expand_inputs([f"{tmp_path}/**/*.jpg"]) == [tmp_path / "3.jpg", tmp_path / "a/1.jpg"]
    assert expand_inputs([tmp_path / "list.txt"]) == [tmp_path / "a/1.jpg",
                                                      tmp_path / "missing.jpg"]
    assert expand_inputs([tmp_path / "a/notes.dat"]) == [tmp_path / "a/notes.dat"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        expand_inputs([tmp_path / "nothing-here"])
    (tmp_path / "empty" / "inner").mkdir(parents=True)
    (tmp_path / "empty" / "readme.md").write_text("no photos here")
    with pytest.raises(FileNotFoundError, match="no images in folder .*empty"):
        expand_inputs([tmp_path / "a", tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="glob match"):  # matches a folder, no file
        expand_inputs([f"{tmp_path}/emp*"])
