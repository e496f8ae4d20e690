"""Shared fixtures: real LFW images from ../shared/data (tests skip when the data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"


def lfw_images(count: int, step: int = 37) -> list[Path]:
    """``count`` LFW image paths, the first image of every ``step``-th person (deterministic)."""
    if not (LFW / "images").is_dir():
        pytest.skip(f"LFW not found at {LFW} (see ../shared/data/README.md)")
    people = sorted(p for p in (LFW / "images").iterdir() if p.is_dir())
    return [sorted(person.glob("*.jpg"))[0] for person in people[::step][:count]]


@pytest.fixture(scope="session")
def lfw_paths() -> list[Path]:
    """Twenty real LFW images of different people."""
    return lfw_images(20)


@pytest.fixture(scope="session")
def lfw_face() -> np.ndarray:
    """One real LFW image as H×W×3 uint8 RGB."""
    return np.array(Image.open(lfw_images(1)[0]).convert("RGB"))
