"""Crop specifications and five-point alignment (similarity transform, batched in torch).

A model declares a :class:`CropSpec`; :func:`align` warps each face so that its five landmarks
land on the spec's template. Landmark order everywhere: left eye, right eye, nose, left mouth
corner, right mouth corner (image-left first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The standard five-point template of ArcFace/InsightFace crops, in pixels of a 112×112 crop.
ARCFACE_112_TEMPLATE = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


@dataclass(frozen=True)
class CropSpec:
    """What a model wants to be fed.

    size: side of the square crop in pixels.
    template: the five landmark positions in a ``template_size`` × ``template_size`` crop.
    padding: extra context on each side as a fraction of the template crop (dlib-style; 0.25 adds
        a quarter on every side, so the face shrinks by 1.5×).
    channels: ``"RGB"`` or ``"BGR"``.
    mean, std: per-channel normalisation applied to 0–255 values: ``(x - mean) / std``.
    """

    size: int = 112
    template: tuple[tuple[float, float], ...] = ARCFACE_112_TEMPLATE
    template_size: float = 112.0
    padding: float = 0.0
    channels: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def landmarks(self) -> np.ndarray:
        """The template in output-crop pixels, 5×2 float64."""
        unit = np.asarray(self.template, dtype=np.float64) / self.template_size
        return (unit + self.padding) / (1 + 2 * self.padding) * self.size

    @property
    def geometry(self) -> tuple[int, tuple[tuple[float, float], ...], float, float]:
        """What the aligned uint8 crops depend on (not channels, mean or std: :meth:`normalize`
        applies those): specs of equal geometry share their crops."""
        return self.size, self.template, self.template_size, self.padding

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        """N×3×H×W uint8 RGB crops → float tensor in this spec's channel order and scale."""
        x = crops.float()
        if self.channels == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


DEFAULT_CROP = CropSpec()


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    """Float pixels in 0–255 (any shape) rounded and clamped to uint8; rounds in place."""
    return pixels.round_().clamp_(0, 255).to(torch.uint8)


def resize_crops(crops: torch.Tensor, size: int) -> torch.Tensor:
    """N×3×size×size uint8: N×3×H×W crops (uint8, or float in 0–255) resized bilinearly."""
    return to_uint8(F.interpolate(crops.float(), size=(size, size), mode="bilinear",
                                  align_corners=False))


def check_crops(crops: torch.Tensor, spec: CropSpec, user: str) -> None:
    """ValueError naming ``user`` unless ``crops`` is N×3×size×size uint8 for ``spec``."""
    expected = (3, spec.size, spec.size)
    if crops.dtype != torch.uint8 or crops.ndim != 4 or tuple(crops.shape[1:]) != expected:
        raise ValueError(f"{user} expects N×3×{spec.size}×{spec.size} uint8 crops (its crop_spec),"
                         f" got {tuple(crops.shape)} {crops.dtype}")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src → dst points.

    src, dst: K×2. Returns the 2×3 matrix ``A`` with ``dst ≈ A @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_c.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def alignment_matrices(landmarks: np.ndarray, spec: CropSpec) -> np.ndarray:
    """N×5×2 image landmarks → N×2×3 matrices mapping image pixels to crop pixels."""
    template = spec.landmarks()
    return np.stack([similarity_transform(points, template) for points in landmarks])


def align(
    image: torch.Tensor, landmarks: np.ndarray, spec: CropSpec = DEFAULT_CROP
) -> torch.Tensor:
    """Warp the faces of one image to ``spec``.

    image: 3×H×W uint8 RGB tensor (any device). landmarks: N×5×2 in image pixels.
    Returns N×3×size×size uint8 crops on the image's device; outside the image is black.
    Faces much larger than the crop are box-filtered first, so downscaling does not alias.
    """
    if len(landmarks) == 0:
        return torch.empty((0, 3, spec.size, spec.size), dtype=torch.uint8, device=image.device)
    return align_faces([image] * len(landmarks), landmarks, spec)


def align_faces(images: list[torch.Tensor], landmarks: np.ndarray,
                spec: CropSpec = DEFAULT_CROP) -> torch.Tensor:
    """One face per image: ``images[i]`` (3×H×W uint8) at ``landmarks[i]`` (5×2) → N×3×S×S uint8,
    as :func:`align`. Each face is warped from the part of its image the crop samples (a large
    photo is never converted whole; the images share a device)."""
    matrices = alignment_matrices(landmarks, spec)
    sources, warps = [], []
    for image, matrix in zip(images, matrices, strict=True):
        shrink = max(1, math.floor(1 / np.sqrt(abs(np.linalg.det(matrix[:, :2])))))
        top, bottom, left, right = _footprint(matrix, spec.size, image.shape[-2:], shrink)
        region = image[:, top:bottom, left:right].float()
        if region.numel() == 0:  # the crop lies wholly outside the image: black
            region = image.new_zeros(3, 1, 1, dtype=torch.float32)
        if shrink > 1:  # area-average by the integer factor, then warp what remains
            region = F.avg_pool2d(region[None], shrink, ceil_mode=True)[0]
        offset = (shrink - 1) / 2  # pooled pixel p is centred on pixel left + k·p + offset
        to_image = np.array([[shrink, 0, left + offset], [0, shrink, top + offset], [0, 0, 1.0]])
        sources.append(region)
        warps.append(matrix @ to_image)
    # Each face warps from its own region (beyond it lies only what is outside the photo: the
    # zeros of grid_sample's padding), so its crop never depends on the others in the batch.
    return to_uint8(_warp(sources, np.stack(warps), spec.size))


def _footprint(matrix: np.ndarray, size: int, shape: tuple[int, int], shrink: int
               ) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the image pixels that a size×size crop by the image→crop
    ``matrix`` samples, with a margin, starts a multiple of ``shrink``, clipped to ``shape``."""
    square = np.vstack([matrix, [0, 0, 1.0]])
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1],
                        [size - 0.5, size - 0.5, 1]])
    points = (np.linalg.inv(square) @ corners.T)[:2]  # 2×4 image (x, y)
    margin = 2 * shrink
    low = np.floor(points.min(1) - margin) // shrink * shrink
    high = np.ceil(points.max(1) + margin)
    high = low + np.ceil((high - low) / shrink) * shrink
    (left, top), (right, bottom) = np.maximum(low, 0).astype(int), high.astype(int)
    height, width = shape
    top, left = min(top, height), min(left, width)
    return top, max(top, min(bottom, height)), left, max(left, min(right, width))


def _warp(sources: list[torch.Tensor], matrices: np.ndarray, size: int) -> torch.Tensor:
    """Bilinear warp of each 3×H×W float ``sources[i]`` (sizes may differ) by its image→crop
    ``matrices[i]`` (N×2×3) → N×3×size×size float; zeros outside each source."""
    square = np.concatenate([matrices, np.tile([[[0, 0, 1.0]]], (len(matrices), 1, 1))], 1)
    inverse = np.linalg.inv(square)  # crop pixel → image pixel
    # grid_sample works in [-1, 1] coordinates with align_corners=False.
    sizes = np.array([source.shape[-2:] for source in sources], dtype=np.float64)  # N×(H, W)
    to_norm_image = np.zeros((len(sources), 2, 3))
    to_norm_image[:, 0, 0], to_norm_image[:, 1, 1] = 2 / sizes[:, 1], 2 / sizes[:, 0]
    to_norm_image[:, :, 2] = 1 / sizes[:, ::-1] - 1
    half = size / 2
    from_norm_crop = np.array([[half, 0, half - 0.5], [0, half, half - 0.5], [0, 0, 1]])
    theta = torch.tensor(to_norm_image @ inverse @ from_norm_crop, dtype=torch.float32,
                         device=sources[0].device)
    grids = F.affine_grid(theta, [len(sources), 3, size, size], align_corners=False)
    return torch.cat([F.grid_sample(source[None], grid[None], mode="bilinear",
                                    padding_mode="zeros", align_corners=False)
                      for source, grid in zip(sources, grids, strict=True)])
