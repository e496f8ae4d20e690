"""MTCNN face detector (Zhang et al. 2016) with five landmarks, batched, in plain torch.

Reproduces facenet-pytorch's ``MTCNN.detect`` (same weights, same arithmetic) without torchvision:
the image pyramid of equal-sized images goes through P-Net together, the R-Net/O-Net crops of all
images are cut in one go from integral images, and NMS runs per image in torch. Candidates whose
box lies wholly outside the image are dropped (facenet-pytorch then misaligns its crops).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device, to_device
from .weights import load_weights

_BATCH_PIXELS = 1 << 22  # images of one size go through together, this many pixels at a time
_CROP_PIXELS = 2048 * 24 * 24  # R-Net/O-Net crops per forward pass: 2048 at 24², 512 at 48²


@dataclass
class Detections:
    """Faces of one image, sorted by detection score, descending."""

    boxes: np.ndarray  # K×4 float32: x1, y1, x2, y2 in image pixels
    scores: np.ndarray  # K float32 in [0, 1]
    landmarks: np.ndarray  # K×5×2 float32 (x, y): eyes, nose, mouth corners; image-left first


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12×12 windows at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N×3×H×W → box offsets N×4×h×w, face probability N×h×w."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)[:, 1]


class RNet(nn.Module):
    """Refinement network on 24×24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N×3×24×24 → box offsets N×4, face probability N."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)  # TF flattening order
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)[:, 1]


class ONet(nn.Module):
    """Output network on 48×48 crops, with the five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """N×3×48×48 → box offsets N×4, landmarks N×10 (5 x then 5 y), face probability N."""
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(1)[:, 1]


class MTCNN(nn.Module):
    """Three-stage cascade: P-Net proposals over a pyramid, R-Net, then O-Net with landmarks."""

    trusted_score = 0.97  # upright LFW faces score ≥ 0.99; below it, an orientation retry

    def __init__(
        self,
        device: str | torch.device = "auto",
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.load_state_dict(load_weights("mtcnn"))
        self.device = resolve_device(device)
        self.to(self.device).eval()
        self.min_face_size = min_face_size
        self.thresholds = tuple(thresholds)
        self.factor = factor

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """images: H×W×3 uint8 RGB arrays, any sizes; one Detections per image."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {i} is {image.shape} {image.dtype}, not H×W×3 uint8")
            by_shape.setdefault(image.shape, []).append(i)
        results: dict[int, Detections] = {}
        for (height, width, _), indices in by_shape.items():
            step = max(1, _BATCH_PIXELS // (height * width))
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                stacked = torch.from_numpy(np.stack([images[i] for i in chunk]))
                batch = to_device(stacked, self.device)
                for i, found in zip(chunk, self._detect_batch(batch), strict=True):
                    results[i] = found
        return [results[i] for i in range(len(images))]

    def _detect_batch(self, batch: torch.Tensor) -> list[Detections]:
        """B×H×W×3 uint8 images of one size → their detections."""
        integral = _integral_image(batch)
        boxes, image = self._propose(batch.permute(0, 3, 1, 2).float())

        boxes, image, (offsets, score) = _classify(self.rnet, integral, boxes, image, 24)
        passed = score > self.thresholds[1]
        boxes, image, offsets, score = boxes[passed], image[passed], offsets[passed], score[passed]
        keep = _nms(boxes, score, image, 0.7)
        boxes, image = _square(_regress(boxes[keep], offsets[keep])), image[keep]

        boxes, image, (offsets, marks, score) = _classify(self.onet, integral, boxes, image, 48)
        passed = score > self.thresholds[2]
        boxes, image, offsets, score = boxes[passed], image[passed], offsets[passed], score[passed]
        marks = marks[passed].view(-1, 2, 5).transpose(1, 2)  # K×5×2, in box units
        points = (boxes[:, 2:] - boxes[:, :2] + 1)[:, None] * marks + boxes[:, None, :2] - 1
        boxes = _regress(boxes, offsets)
        keep = _nms(boxes, score, image, 0.7, min_area=True)

        bounds = np.cumsum(torch.bincount(image[keep], minlength=len(batch)).tolist())[:-1]
        boxes, score, points = (t[keep].cpu().numpy() for t in (boxes, score, points))
        parts = (np.split(boxes, bounds), np.split(score, bounds), np.split(points, bounds))
        return [Detections(*faces) for faces in zip(*parts, strict=True)]

    def _propose(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid of B×3×H×W float images: square candidates and their image."""
        height, width = images.shape[2:]
        none = torch.empty(0, dtype=torch.long, device=images.device)
        found = [(images.new_empty(0, 4), images.new_empty(0), images.new_empty(0, 4), none)]
        for scale in _scales(height, width, self.min_face_size, self.factor):
            size = (int(height * scale + 1), int(width * scale + 1))
            offsets, prob = self.pnet(_normalize(F.interpolate(images, size=size, mode="area")))
            image, y, x = (prob >= self.thresholds[0]).nonzero(as_tuple=True)
            corner = torch.stack([x, y], 1).to(images.dtype)  # 12×12 window at 2·corner
            boxes = torch.cat([(2 * corner + 1) / scale, (2 * corner + 12) / scale], 1).floor()
            score = prob[image, y, x]
            keep = _nms(boxes, score, image, 0.5)
            found.append((boxes[keep], score[keep], offsets[image, :, y, x][keep], image[keep]))
        boxes, score, offsets, image = (torch.cat(t) for t in zip(*found, strict=True))
        keep = _nms(boxes, score, image, 0.7)
        boxes, offsets = boxes[keep], offsets[keep]
        return _square(boxes + offsets * (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)), image[keep]


def _scales(height: int, width: int, min_face_size: int, factor: float) -> list[float]:
    """Pyramid scales mapping faces of ``min_face_size`` px and up to P-Net's 12 px window."""
    scale = 12.0 / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    return scales


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares around the same centre (side = the longer side)."""
    size = boxes[:, 2:] - boxes[:, :2]
    side = size.max(1, keepdim=True).values
    corner = boxes[:, :2] + size * 0.5 - side * 0.5
    return torch.cat([corner, corner + side], 1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Boxes moved by offsets given in box sizes (sizes counted inclusive, +1)."""
    return boxes + offsets * (boxes[:, 2:] - boxes[:, :2] + 1).repeat(1, 2)


def _integral_image(batch: torch.Tensor) -> torch.Tensor:
    """B×H×W×3 uint8 → B×(H+1)×(W+1)×3 int64 sums of the pixels above and left of each corner."""
    sums = batch.long().cumsum(1).cumsum(2)
    return F.pad(sums, (0, 0, 1, 0, 1, 0))


def _crops(
    integral: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised size×size crops of the boxes, clipped to the image, resized by area averaging.

    The box is cut like the original (truncated corners, 1-based, clipped) and averaged over the
    bins of ``interpolate(mode="area")``, i.e. adaptive average pooling. Returns the crops
    (K×3×size×size) and the mask of the boxes kept: those whose clipped region is not empty.
    """
    height, width = integral.shape[1] - 1, integral.shape[2] - 1
    corners = boxes.trunc().long()
    start = (corners[:, :2].clamp(min=1) - 1).flip(1)  # top, left
    stop = torch.minimum(corners[:, 2:], corners.new_tensor([width, height])).flip(1)
    valid = (stop > start).all(1)
    start, stop, image = start[valid], stop[valid], image[valid]
    extent = (stop - start)[:, :, None]  # K×2×1: rows, columns
    bins = torch.arange(size, device=boxes.device)
    low = start[:, :, None] + bins * extent // size  # K×2×size: floor(i·n/size)
    high = start[:, :, None] + ((bins + 1) * extent + size - 1) // size  # ceil((i+1)·n/size)
    flat = integral.flatten(0, 2)
    base = image[:, None, None] * (height + 1) * (width + 1)
    row_low, row_high = low[:, 0, :, None] * (width + 1), high[:, 0, :, None] * (width + 1)
    col_low, col_high = low[:, 1, None, :], high[:, 1, None, :]
    total = (
        flat[base + row_high + col_high]
        - flat[base + row_low + col_high]
        - flat[base + row_high + col_low]
        + flat[base + row_low + col_low]
    )  # K×size×size×3
    rows, cols = (high - low).float().unbind(1)
    mean = total.float() / rows[:, :, None, None] / cols[:, None, :, None]  # torch's rounding
    return _normalize(mean.permute(0, 3, 1, 2)), valid


def _classify(
    net: nn.Module, integral: torch.Tensor, boxes: torch.Tensor, image: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run R-Net or O-Net on the boxes' crops, in chunks: kept boxes, their images, net outputs."""
    chunk = _CROP_PIXELS // (size * size)
    kept_boxes, kept_images, outputs = [boxes[:0]], [image[:0]], []
    for start in range(0, len(boxes), chunk):
        part, part_image = boxes[start : start + chunk], image[start : start + chunk]
        crops, valid = _crops(integral, part, part_image, size)
        kept_boxes.append(part[valid])
        kept_images.append(part_image[valid])
        outputs.append(net(crops))
    if not outputs:
        outputs.append(net(boxes.new_empty(0, 3, size, size)))
    outputs = [torch.cat(t) for t in zip(*outputs, strict=True)]
    return torch.cat(kept_boxes), torch.cat(kept_images), tuple(outputs)


def _nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    threshold: float,
    min_area: bool = False,
) -> torch.Tensor:
    """Greedy NMS within each group: kept indices, by group, then by descending score.

    Overlap is IoU with areas x2 - x1 by y2 - y1 (torchvision's; of tied scores the first box
    wins), or with ``min_area`` intersection over the smaller area with sizes counted inclusive
    (+1; of tied scores the last box wins), as the original's last stage (numpy, facenet's
    ``nms_numpy``). All groups advance together: a step keeps the best remaining box of each.
    """
    if len(boxes) == 0:
        return groups[:0]
    if min_area:
        order = scores.argsort(stable=True).flip(0)
    else:
        order = scores.argsort(descending=True, stable=True)
    order = order[groups[order].argsort(stable=True)]
    _, counts = groups[order].unique_consecutive(return_counts=True)
    rows = torch.arange(len(counts), device=boxes.device)
    rank = torch.arange(len(order), device=boxes.device)
    rank -= torch.repeat_interleave(counts.cumsum(0) - counts, counts)  # position in its group
    slots = order.new_full((len(counts), int(counts.max())), -1)
    slots[torch.repeat_interleave(rows, counts), rank] = order
    alive = slots >= 0
    grid = boxes[slots.clamp(min=0)]  # G×M×4, sorted by score within each group
    pad = 1.0 if min_area else 0.0
    area = (grid[..., 2] - grid[..., 0] + pad) * (grid[..., 3] - grid[..., 1] + pad)
    keep = torch.zeros_like(alive)
    while alive.any():
        best = alive.to(torch.uint8).argmax(1)  # first alive = best remaining of each group
        keep[rows, best] |= alive[rows, best]
        alive[rows, best] = False
        current = grid[rows, best, None]  # G×1×4
        low = torch.maximum(current[..., :2], grid[..., :2])
        inter = (torch.minimum(current[..., 2:], grid[..., 2:]) - low + pad).clamp(min=0).prod(-1)
        current_area = area[rows, best, None]
        if min_area:
            overlap = inter / torch.minimum(current_area, area)
        else:
            overlap = inter / (current_area + area - inter)
        alive &= ~(overlap > threshold)  # NaN (empty boxes) suppresses nothing, as torchvision
    return slots[keep]
