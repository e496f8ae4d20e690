"""Copy a handful of LFW images into examples/ and make degraded variants of them.

    python scripts/make_examples.py [--lfw ../shared/data/lfw]

Writes examples/lfw/*.jpg (unchanged LFW deep-funneled images) and examples/degraded/*.jpg (the
same faces blurred, downscaled, darkened, noised, over-compressed and occluded). Seeded.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PEOPLE = ["Aaron_Eckhart_0001", "Angelina_Jolie_0002", "Colin_Powell_0001",
          "Serena_Williams_0001", "Junichiro_Koizumi_0001", "Gloria_Macapagal_Arroyo_0001"]


def degrade(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One named degradation of a 250×250 RGB image."""
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(4))
    if kind == "lowres":
        return image.resize((40, 40), Image.Resampling.BOX).resize(image.size)
    if kind == "dark":
        return Image.fromarray((np.asarray(image) * 0.15).astype(np.uint8))
    if kind == "noise":
        noisy = np.asarray(image) + rng.normal(0, 40, np.asarray(image).shape)
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    if kind == "occluded":
        occluded = image.copy()
        ImageDraw.Draw(occluded).rectangle((70, 95, 180, 125), fill=(20, 20, 20))
        return occluded
    raise ValueError(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--lfw", type=Path, default=root.parent / "shared" / "data" / "lfw")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    (root / "examples" / "lfw").mkdir(parents=True, exist_ok=True)
    (root / "examples" / "degraded").mkdir(parents=True, exist_ok=True)
    kinds = ["blur", "lowres", "dark", "noise", "occluded", "jpeg"]
    for i, stem in enumerate(PEOPLE):
        source = args.lfw / "images" / stem.rsplit("_", 1)[0] / f"{stem}.jpg"
        shutil.copy(source, root / "examples" / "lfw" / source.name)
        kind = kinds[i % len(kinds)]
        image = Image.open(source).convert("RGB")
        target = root / "examples" / "degraded" / f"{stem}_{kind}.jpg"
        if kind == "jpeg":
            image.save(target, quality=3)
        else:
            degrade(image, kind, rng).save(target, quality=92)


if __name__ == "__main__":
    main()
