"""Capture-condition baseline: resolution, head pose, sharpness and exposure, no training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..faces import Faces
from ..pose import head_pose
from . import register
from .base import QualityEstimator

# Face region of the 112×112 ArcFace crop (eyebrows to chin, cheek to cheek) used for pixels.
FACE_ROWS, FACE_COLS = slice(36, 104), slice(28, 84)
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
# Immerkær (1996) fast noise estimation: this mask cancels image structure up to second order.
NOISE_MASK = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@register
class BaselineEstimator(QualityEstimator):
    """Five capture measures, each mapped to a desirability in [0, 1], combined by geometric mean.

    - resolution: inter-eye distance in original pixels, log-scaled from ``eye_px`` (low, high);
    - pose: 1 − (|yaw| / max_yaw)² times 1 − (|pitch| / max_pitch)² (roll is undone by alignment);
    - sharpness: standard deviation of the Laplacian of the aligned face (0–255 gray), mapped by
      1 − exp(−s / sharpness_scale);
    - noise: Immerkær's noise standard deviation (0–255 gray), desirable below ``noise_levels[0]``,
      undesirable above ``noise_levels[1]`` (noise also inflates the sharpness measure);
    - exposure: mean face brightness near mid-gray and contrast of at least ``min_contrast``.

    Score in [0, 1]; components: inter_eye_px, yaw, pitch, roll (degrees), sharpness, noise,
    brightness, contrast (0–1).
    """

    name = "baseline"
    description = "capture measures (inter-eye pixels, pose, sharpness, exposure); no weights"
    needs = frozenset({"landmarks"})
    score_range = (0.0, 1.0)
    components = ("inter_eye_px", "yaw", "pitch", "roll", "sharpness", "noise", "brightness",
                  "contrast")

    def __init__(
        self,
        device: str | torch.device = "auto",
        eye_px: tuple[float, float] = (10.0, 60.0),
        max_yaw: float = 60.0,
        max_pitch: float = 45.0,
        sharpness_scale: float = 8.0,
        noise_levels: tuple[float, float] = (2.0, 8.0),
        min_contrast: float = 0.1,
        precision: str = "fp32",
    ) -> None:
        super().__init__(device, precision)
        self.eye_px, self.max_yaw, self.max_pitch = eye_px, max_yaw, max_pitch
        self.sharpness_scale, self.noise_levels = sharpness_scale, noise_levels
        self.min_contrast = min_contrast

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        landmarks = faces.landmarks
        inter_eye = np.linalg.norm(landmarks[:, 1] - landmarks[:, 0], axis=1)
        yaw, pitch, roll = head_pose(landmarks, faces.detector).T
        sharpness, noise, brightness, contrast = self.pixel_measures(crops)

        low, high = np.log(self.eye_px)
        resolution = np.clip((np.log(np.maximum(inter_eye, 1e-6)) - low) / (high - low), 0, 1)
        pose = np.clip(1 - (yaw / self.max_yaw) ** 2, 0, 1) * np.clip(
            1 - (pitch / self.max_pitch) ** 2, 0, 1
        )
        focus = 1 - np.exp(-sharpness / self.sharpness_scale)
        quiet_level, noisy_level = self.noise_levels
        quiet = np.clip((noisy_level - noise) / (noisy_level - quiet_level), 0, 1)
        exposure = np.clip(1 - ((brightness - 0.5) / 0.45) ** 2, 0, 1) * np.clip(
            contrast / self.min_contrast, 0, 1
        )
        desirabilities = np.stack([resolution, pose, focus, quiet, exposure])
        score = np.exp(np.log(np.maximum(desirabilities, 1e-2)).mean(0))
        return {
            "score": score, "inter_eye_px": inter_eye, "yaw": yaw, "pitch": pitch, "roll": roll,
            "sharpness": sharpness, "noise": noise, "brightness": brightness, "contrast": contrast,
        }

    @staticmethod
    def pixel_measures(crops: torch.Tensor) -> tuple[np.ndarray, ...]:
        """N×3×112×112 uint8 crops → sharpness (Laplacian std), noise σ, brightness, contrast."""
        gray = (crops.float() * LUMA.to(crops.device)).sum(1, keepdim=True)
        face = gray[..., FACE_ROWS, FACE_COLS]
        laplacian = F.conv2d(face, LAPLACIAN.to(crops.device))
        sharpness = laplacian.flatten(1).std(1)
        noise_response = F.conv2d(face, NOISE_MASK.to(crops.device)).abs().flatten(1).mean(1)
        noise = noise_response * (np.pi / 2) ** 0.5 / 6
        brightness = face.flatten(1).mean(1) / 255
        contrast = face.flatten(1).std(1) / 255
        return tuple(t.double().cpu().numpy() for t in (sharpness, noise, brightness, contrast))
