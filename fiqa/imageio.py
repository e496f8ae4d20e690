"""Finding and decoding images: any file Pillow reads becomes an H×W×3 uint8 RGB array.

Failures raise :class:`ImageReadError` with a short reason, which the pipeline turns into an
``unreadable: <reason>`` status on the image's row.
"""

from __future__ import annotations

import glob
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm",
}
LIST_SUFFIXES = {".txt", ".lst"}
DEFAULT_MAX_PIXELS = 150_000_000  # decompression-bomb guard: refuse larger images
DEFAULT_MAX_SIDE = 4096  # larger images are decoded reduced (boxes stay in original pixels)


class ImageReadError(Exception):
    """An image that cannot be used; ``str(error)`` is the reason shown on its row."""


@dataclass
class LoadedImage:
    """pixels: H×W×3 uint8 RGB, possibly reduced; scale: pixels per original pixel (≤ 1)."""

    pixels: np.ndarray
    scale: float = 1.0

    @property
    def original_size(self) -> tuple[int, int]:
        """(height, width) of the file before any reduction."""
        height, width = self.pixels.shape[:2]
        return round(height / self.scale), round(width / self.scale)


def pixel_tensor(pixels: np.ndarray) -> torch.Tensor:
    """An array as a tensor of the same shape, sharing its memory unless it must be copied
    (read-only, not C-contiguous, or a negative stride, which numpy allows on a dimension of size
    1)."""
    flags = pixels.flags
    if not (flags.c_contiguous and flags.writeable) or min(pixels.strides, default=0) < 0:
        pixels = np.array(pixels, order="C")
    return torch.from_numpy(pixels)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (recursive, image suffixes only), globs and .txt/.lst lists → paths.

    A named file is always kept (an unreadable one gets its status later); a list's relative
    paths are relative to the list; a file reached twice is kept once, where first met. Raises
    FileNotFoundError for an argument that matches nothing: a missing path, a folder without
    images, a glob that matches no file.
    """
    paths: list[Path] = []
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            if not (found := folder_images(path)):
                raise FileNotFoundError(f"no images in folder {item} (searched recursively for "
                                        f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = (line.strip() for line in path.read_text().splitlines())
            paths += [path.parent / line for line in lines if line and not line.startswith("#")]
        elif path.is_file():
            paths.append(path)
        elif files := [Path(m) for m in sorted(glob.glob(item, recursive=True))
                       if Path(m).is_file()]:
            paths += files
        else:
            raise FileNotFoundError(f"no such file, folder or glob match: {item}")
    return list({_identity(path): path for path in reversed(paths)}.values())[::-1]


def folder_images(folder: Path) -> list[Path]:
    """The image files (by suffix) anywhere under ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _identity(path: Path) -> str:
    """What makes two spellings of a path the same file: its absolute, normalised form."""
    return os.path.normcase(os.path.abspath(path))


def identity_folders(folder: str | Path) -> dict[str, list[Path]]:
    """``folder``'s sub-folders (one per identity) → their images (searched recursively)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    people = {sub.name: folder_images(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    people = {name: paths for name, paths in people.items() if paths}
    if not people:
        raise ValueError(f"{folder} holds no sub-folder with images (one per identity)")
    return people


def read_image(
    path: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> LoadedImage:
    """Decode ``path`` (a file name, or an open binary file such as ``io.BytesIO(encoded)``) to
    RGB uint8, honouring EXIF orientation.

    Grayscale, palette, alpha (composited on white), 16-bit and CMYK images become RGB. Images over
    ``max_pixels`` are refused (that limit replaces Pillow's own); images with a side over
    ``max_side`` are reduced to fit.
    """
    if max_pixels < 1 or max_side < 1:
        raise ValueError(f"max_pixels and max_side must be positive, got {max_pixels}, {max_side}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb warning: our own limit decides
            with _open_unlimited(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        f"image too large ({width}×{height} = {width * height / 1e6:.1f} MP "
                        f"> the {max_pixels / 1e6:.1f} MP limit of --max-pixels)"
                    )
                scale = min(1.0, max_side / max(width, height))
                if scale < 1:  # JPEG decodes at 1/2, 1/4, 1/8 for free
                    image.draft("RGB", (int(width * scale), int(height * scale)))
                image = _to_rgb(ImageOps.exif_transpose(image))
                if max(image.size) > max_side:
                    factor = max_side / max(image.size)
                    width_height = (image.width * factor, image.height * factor)
                    size = tuple(max(1, round(side)) for side in width_height)
                    image = image.resize(size, Image.Resampling.BOX)
                pixels = np.array(image, dtype=np.uint8)  # a writable copy
                scale = max(pixels.shape[:2]) / max(width, height)  # EXIF may swap the sides
                return LoadedImage(pixels, scale)
    except ImageReadError:
        raise
    except UnidentifiedImageError:  # Pillow names the source; the row already does
        raise ImageReadError("cannot identify image file") from None
    except Exception as error:  # noqa: BLE001 - any reading or decoder failure is a row status
        raise ImageReadError(read_failure(error)) from None


def decode_or_status(source: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS,
                     max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage | str:
    """:func:`read_image`, or the ``unreadable: <reason>`` status of a file it refuses: what one
    decoding worker (a thread or a process) hands back."""
    try:
        return read_image(source, max_pixels, max_side)
    except ImageReadError as error:
        return f"unreadable: {error}"


def read_failure(error: Exception) -> str:
    """The short reason shown for a file that cannot be read or decoded: ``file not found``, or
    the error's first line (its type where it has no message)."""
    if isinstance(error, FileNotFoundError):
        return "file not found"
    return str(error).split("\n")[0] or type(error).__name__


_PILLOW_LIMIT = threading.Lock()


def _open_unlimited(path: str | Path | BinaryIO) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb check (it only reads the header; the
    caller applies its own ``max_pixels``). Pillow's global limit is restored at once."""
    with _PILLOW_LIMIT:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB (16/32-bit gray scaled to 8 bits, alpha composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / peak * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
