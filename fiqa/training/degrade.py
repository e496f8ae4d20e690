"""Synthetic capture degradations of aligned face crops, for training and for stress plots.

Every function takes N×3×S×S uint8 crops and a strength ``level`` in [0, 1] (0 leaves the crop
unchanged, 1 is the most severe) and returns new uint8 crops of the same shape:

========== ==================================================================================
blur       Gaussian blur, σ = 6·level px at 150 px (scaled with the crop)
resolution down to side S·(8/S)^level (so 8 px at level 1), then bilinear back to S
noise      additive Gaussian noise, σ = 50·level grey levels
jpeg       JPEG round trip at quality 95·(2/95)^level (95 → 14 at 0.5 → 2)
occlusion  a grey or black rectangle over 60·level % of the crop, placed on the face
dark       illumination: gain 1 − 0.9·level, gamma 1 + 1.5·level, and a side shadow
========== ==================================================================================
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..crop import resize_crops, to_uint8

Rng = np.random.Generator | None  # randomness of noise, occlusion and shadow placement


def blur(crops: torch.Tensor, level: float, rng: Rng = None) -> torch.Tensor:
    sigma = 6.0 * level * crops.shape[-1] / 150
    if sigma < 0.3:
        return crops.clone()
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=crops.device)
    kernel = torch.exp(-x**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)
    padded = F.pad(crops.float(), (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(F.conv2d(padded, kernel.view(3, 1, 1, -1), groups=3),
                   kernel.view(3, 1, -1, 1), groups=3)
    return to_uint8(out)


def resolution(crops: torch.Tensor, level: float,
               rng: Rng = None) -> torch.Tensor:
    size = crops.shape[-1]
    side = max(2, round(size * (8 / size) ** level))
    if side >= size:
        return crops.clone()
    small = F.interpolate(crops.float(), size=(side, side), mode="area")
    return resize_crops(small, size)


def noise(crops: torch.Tensor, level: float, rng: Rng = None) -> torch.Tensor:
    rng = rng or np.random.default_rng()
    sigma = 50.0 * level
    values = torch.from_numpy(rng.standard_normal(crops.shape, dtype=np.float32)).to(crops.device)
    return to_uint8(crops.float() + sigma * values)


def jpeg(crops: torch.Tensor, level: float, rng: Rng = None) -> torch.Tensor:
    quality = round(95 * (2 / 95) ** level)
    out = []
    for crop in crops.permute(0, 2, 3, 1).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(crops.device)


def occlusion(crops: torch.Tensor, level: float,
              rng: Rng = None) -> torch.Tensor:
    rng = rng or np.random.default_rng()
    out = crops.clone()
    size = crops.shape[-1]
    area = 0.6 * level * size * size
    for crop in out:
        if area < 1:
            break
        aspect = rng.uniform(0.4, 2.5)  # width / height
        width = min(size, round(math.sqrt(area * aspect)))
        height = min(size, round(area / max(width, 1)))
        # centred somewhere on the inner face (the middle half of the crop)
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        x0 = int(np.clip(cx - width / 2, 0, size - width))
        y0 = int(np.clip(cy - height / 2, 0, size - height))
        crop[:, y0:y0 + height, x0:x0 + width] = int(rng.choice([0, 64, 128]))
    return out


def dark(crops: torch.Tensor, level: float, rng: Rng = None) -> torch.Tensor:
    rng = rng or np.random.default_rng()
    size = crops.shape[-1]
    ramp = torch.linspace(0, 1, size, device=crops.device).expand(len(crops), 1, 1, size)
    flip = torch.from_numpy(rng.random(len(crops)) < 0.5).to(crops.device).view(-1, 1, 1, 1)
    ramp = torch.where(flip, ramp.flip(-1), ramp)  # shadow from the left or the right
    shadow = 1 - 0.7 * level * ramp
    x = (crops.float() / 255) ** (1 + 1.5 * level) * (1 - 0.9 * level) * shadow
    return to_uint8(x * 255)


DEGRADATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "blur": blur, "resolution": resolution, "noise": noise, "jpeg": jpeg,
    "occlusion": occlusion, "dark": dark,
}


def degrade(crops: torch.Tensor, kind: str, level: float,
            rng: Rng = None) -> torch.Tensor:
    """``crops`` degraded by ``kind`` (a key of :data:`DEGRADATIONS`) at ``level`` in [0, 1]."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {sorted(DEGRADATIONS)}")
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    return DEGRADATIONS[kind](crops, level, rng)


def random_degradations(crops: torch.Tensor, rng: np.random.Generator,
                        clean: float = 0.25, most: int = 2) -> tuple[torch.Tensor, np.ndarray]:
    """Each crop degraded by 1–``most`` random kinds at uniform random levels, or left clean with
    probability ``clean``. Returns (uint8 crops, N summed levels: 0 for clean crops)."""
    out, severity = crops.clone(), np.zeros(len(crops))
    kinds = list(DEGRADATIONS)
    for i in range(len(crops)):
        if rng.random() < clean:
            continue
        for kind in rng.choice(kinds, size=rng.integers(1, most + 1), replace=False):
            level = rng.random()
            out[i:i + 1] = DEGRADATIONS[kind](out[i:i + 1], level, rng)
            severity[i] += level
    return out, severity
