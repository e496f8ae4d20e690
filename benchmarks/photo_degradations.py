"""A contact sheet of the photo-level degradation families: docs/img/photo_degradations.png.

    python benchmarks/photo_degradations.py

One LFW photo (the first of tests/conftest.py's deterministic pick), clean and under each family
of fiqa.training.photo_degrade at a strong setting, applied to the whole photo with the face
geometry of its detection.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fiqa.imageio import read_image
from fiqa.pipeline import Scorer
from fiqa.training import photo_degrade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import lfw_images  # noqa: E402

STRONG = {
    "defocus": {"radius": 0.2},
    "motion": {"length": 0.4, "angle": 30},
    "downscale": {"eye_distance": 7, "down": "area"},
    "noise": {"shot": 0.02, "read": 0.01},
    "jpeg": {"quality": 8},
    "exposure": {"stops": -2.5, "gamma": 1.2},
    "white_balance": {"warmth": 1.2, "tint": -0.3},
    "occlusion": {"region": "eyes", "fill": "dark", "shape": "ellipse"},
}


def main() -> None:
    image = read_image(lfw_images(1)[0])
    faces, _ = Scorer((), device="cpu").locate([image])[0]
    face = photo_degrade.FaceGeometry.from_faces(faces, 0, image.scale)
    rng = np.random.default_rng(0)
    tiles = [("clean", image.pixels)] + [
        (name, photo_degrade.FAMILIES[name](image.pixels, rng, face, **params))
        for name, params in STRONG.items()]
    height, width = image.pixels.shape[:2]
    sheet = Image.new("RGB", (3 * width, 3 * height))
    for i, (name, pixels) in enumerate(tiles):
        tile = Image.fromarray(pixels)
        ImageDraw.Draw(tile).text((4, 4), name, fill=(255, 255, 0))
        sheet.paste(tile, ((i % 3) * width, (i // 3) * height))
    sheet.save(ROOT / "docs" / "img" / "photo_degradations.png")


if __name__ == "__main__":
    main()
