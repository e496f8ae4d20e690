"""YuNet face detector (OpenCV Zoo, 2023mar) with five landmarks, batched, in plain torch.

Reproduces OpenCV's ``FaceDetectorYN`` on the Zoo's block-int8 model (weights dequantised once by
scripts/convert_yunet.py): the image, as BGR 0–255 (``YuNet`` swaps its first filters to read RGB),
padded bottom/right with zeros to a multiple of 32, goes through a depthwise-separable backbone, a
top-down neck and, at strides 8, 16 and 32, one anchor-free head per cell (class and objectness
scores, box, landmarks; the four heads of a level run as one fused pair of convolutions). Scores
are sqrt(class × objectness); candidates at or above ``score_threshold`` go through OpenCV's NMS
(on boxes truncated to integers, at most ``top_k`` candidates per image). YuNet's landmarks (the
subject's right eye, left eye, nose tip, right and left mouth corners) are already MTCNN's order:
image-left first for an upright face.

Images larger than ``max_side`` are scaled down for detection and their results mapped back.
Images of equal padded size go through the network together; see ``YuNet.detect``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_device, to_device
from .imageio import pixel_tensor
from .mtcnn import Detections, _nms
from .weights import load_weights

STRIDES = (8, 16, 32)


class ConvDPUnit(nn.Module):
    """1×1 convolution, then depthwise 3×3 convolution (batch norm folded in), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        return F.relu(x) if self.relu else x


class ConvHead(nn.Module):
    """Stem: 3×3 convolution at stride 2 and ReLU, then a ConvDPUnit."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, stride=2, padding=1)
        self.conv2 = ConvDPUnit(mid_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class Conv4LayerBlock(nn.Module):
    """Two ConvDPUnits: in → in → out channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvDPUnit(in_channels, in_channels)
        self.conv2 = ConvDPUnit(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Backbone(nn.Module):
    """Features at strides 8, 16 and 32, 64 channels each."""

    def __init__(self) -> None:
        super().__init__()
        self.model0 = ConvHead(3, 16, 16)
        self.model1 = Conv4LayerBlock(16, 32)
        self.model2 = Conv4LayerBlock(32, 64)
        self.model3 = Conv4LayerBlock(64, 64)
        self.model4 = Conv4LayerBlock(64, 64)
        self.model5 = Conv4LayerBlock(64, 64)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(self.model0(x), 2)
        x = F.max_pool2d(self.model2(self.model1(x)), 2)
        stride8 = self.model3(x)
        stride16 = self.model4(F.max_pool2d(stride8, 2))
        stride32 = self.model5(F.max_pool2d(stride16, 2))
        return [stride8, stride16, stride32]


class Neck(nn.Module):
    """Top-down: each level plus the coarser level upsampled ×2 (nearest), then a ConvDPUnit."""

    def __init__(self) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvDPUnit(64, 64) for _ in STRIDES)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [self.lateral_convs[-1](features[-1])]
        for level in reversed(range(len(features) - 1)):
            coarser = F.interpolate(out[0], scale_factor=2.0, mode="nearest")
            out.insert(0, self.lateral_convs[level](features[level] + coarser))
        return out


class Head(nn.Module):
    """Per level: class and objectness logits, box (4) and landmark (10) offsets, no ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.multi_level_cls = nn.ModuleList(ConvDPUnit(64, 1, False) for _ in STRIDES)
        self.multi_level_bbox = nn.ModuleList(ConvDPUnit(64, 4, False) for _ in STRIDES)
        self.multi_level_obj = nn.ModuleList(ConvDPUnit(64, 1, False) for _ in STRIDES)
        self.multi_level_kps = nn.ModuleList(ConvDPUnit(64, 10, False) for _ in STRIDES)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Levels N×64×h×w → N×A×16 (A cells, stride 8 first, each row-major): class and
        objectness probabilities, box offsets (cx, cy, log w, log h), landmark offsets (x, y)×5."""
        levels = []
        for i, x in enumerate(features):  # the four heads of a level as one 64 → 16 ConvDPUnit
            units = [head[i] for head in (self.multi_level_cls, self.multi_level_obj,
                                          self.multi_level_bbox, self.multi_level_kps)]
            x = F.conv2d(x, torch.cat([u.conv1.weight for u in units]),
                         torch.cat([u.conv1.bias for u in units]))
            x = F.conv2d(x, torch.cat([u.conv2.weight for u in units]),
                         torch.cat([u.conv2.bias for u in units]), padding=1, groups=x.shape[1])
            levels.append(x.flatten(2))
        out = torch.cat(levels, 2).transpose(1, 2)
        return torch.cat([out[..., :2].sigmoid(), out[..., 2:]], 2)


class YuNetNetwork(nn.Module):
    """The network: N×3×H×W float BGR 0–255, H and W multiples of 32 → N×A×16 (``Head``)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone, self.neck, self.bbox_head = Backbone(), Neck(), Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bbox_head(self.neck(self.backbone(x)))


class YuNet:
    """YuNet detector: ``detect`` faces in images of any sizes; ``net`` is the network.

    score_threshold defaults to 0.7, not OpenCV's 0.9: at 0.9 YuNet drops the poor faces a
    quality tool exists to score (it found 8 of the 12 example photos, 257 of 300 FIW faces;
    at 0.7, 12 and 299, MTCNN 12 and 294; docs/detection.md).
    """

    trusted_score = 0.90  # upright LFW faces score ≥ 0.905 (1st percentile), turned ones ≤ 0.90

    def __init__(
        self,
        device: str | torch.device = "auto",
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        max_side: int | None = 640,
        pad_to: int = 32,
    ) -> None:
        if pad_to <= 0 or pad_to % 32:
            raise ValueError(f"pad_to must be a positive multiple of 32, got {pad_to}")
        self.device = resolve_device(device)
        self.net = YuNetNetwork()
        state = load_weights("yunet")
        first = "backbone.model0.conv1.weight"
        state[first] = state[first].flip(1)  # BGR filters read RGB: no channel swap per image
        self.net.load_state_dict(state)
        self.net.to(self.device, memory_format=torch.channels_last).eval()  # 2× faster on CPU
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.max_side, self.pad_to = max_side, pad_to
        # padded pixels per forward pass: cache-sized on the CPU (fastest on one thread there)
        self.batch_pixels = 1 << 19 if self.device.type == "cpu" else 1 << 24
        self._priors: dict[tuple[int, int], torch.Tensor] = {}

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        """images: H×W×3 uint8 RGB arrays, any sizes; one Detections per image, in its pixels.

        Each image is scaled down to fit ``max_side`` (when larger), padded with zeros to a
        multiple of ``pad_to`` (32: OpenCV's) and goes through the network with the other images
        of the same padded size. At 32 a batch gives the same detections as one image at a time;
        a larger ``pad_to`` puts more mixed sizes in one batch (fewer, larger passes, for an
        accelerator) at the cost of padding, and moves detections slightly (docs/benchmarks.md).
        """
        inputs, sizes, by_shape = [], [], {}
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {i} is {image.shape} {image.dtype}, not H×W×3 uint8")
            pixels = self._prepare(image)
            inputs.append(pixels)
            sizes.append(pixels.shape[:2])
            padded = tuple(-(-side // self.pad_to) * self.pad_to for side in pixels.shape[:2])
            by_shape.setdefault(padded, []).append(i)
        results: dict[int, Detections] = {}
        for (height, width), indices in by_shape.items():
            step = max(1, self.batch_pixels // (height * width))
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                batch = torch.zeros(len(chunk), height, width, 3, device=self.device)
                for slot, i in enumerate(chunk):
                    batch[slot, : sizes[i][0], : sizes[i][1]] = inputs[i]
                scale = torch.tensor(
                    [[images[i].shape[1] / sizes[i][1], images[i].shape[0] / sizes[i][0]]
                     for i in chunk], device=self.device)
                found = self._decode(self.net(batch.permute(0, 3, 1, 2)), height, width, scale)
                for i, faces in zip(chunk, found, strict=True):
                    results[i] = faces
        return [results[i] for i in range(len(images))]

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        """H×W×3 uint8 RGB → h×w×3 RGB 0–255 tensor: the image, scaled down (bilinear,
        antialiased) to fit max_side when larger; uint8 on the CPU (5× faster than float there,
        within one level), float elsewhere."""
        pixels = to_device(pixel_tensor(image), self.device)
        height, width = image.shape[:2]
        if self.max_side is None or max(height, width) <= self.max_side:
            return pixels
        ratio = self.max_side / max(height, width)
        size = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        source = pixels.permute(2, 0, 1)[None]
        if self.device.type != "cpu":
            source = source.float()
        return F.interpolate(source, size, mode="bilinear", antialias=True)[0].permute(1, 2, 0)

    def _grid(self, height: int, width: int) -> torch.Tensor:
        """A×3 cells of a padded height × width input: column, row, stride (float)."""
        if (height, width) not in self._priors:
            cells = []
            for stride in STRIDES:
                rows, cols = torch.meshgrid(torch.arange(height // stride),
                                            torch.arange(width // stride), indexing="ij")
                cell = torch.stack([cols, rows, torch.full_like(rows, stride)], 2)
                cells.append(cell.flatten(0, 1))
            self._priors[height, width] = torch.cat(cells).float().to(self.device)
        return self._priors[height, width]

    def _decode(
        self, out: torch.Tensor, height: int, width: int, scale: torch.Tensor
    ) -> list[Detections]:
        """Output N×A×16 of a padded height × width batch → detections, mapped to the original
        pixels by ``scale`` N×2 (original / network x and y sizes), pixel centres at integers."""
        score = (out[..., 0] * out[..., 1]).sqrt()  # N×A; sigmoids lie in [0, 1] already
        image, cell = (score >= self.score_threshold).nonzero(as_tuple=True)
        score = score[image, cell]
        # OpenCV's top_k: the best candidates of each image (stable, by descending score)
        order = score.argsort(descending=True, stable=True)
        order = order[image[order].argsort(stable=True)]
        grouped = image[order]
        rank = torch.arange(len(order), device=out.device) - torch.searchsorted(grouped, grouped)
        order = order[rank < self.top_k]
        image, cell, score = image[order], cell[order], score[order]
        raw, grid = out[image, cell], self._grid(height, width)[cell]
        position, stride = grid[:, None, :2], grid[:, None, 2:]
        centre = (position[:, 0] + raw[:, 2:4]) * stride[:, 0]
        size = raw[:, 4:6].exp() * stride[:, 0]
        corner = centre - size / 2
        points = (raw[:, 6:].view(-1, 5, 2) + position) * stride  # K×5×2
        opencv_boxes = torch.cat([corner.trunc(), corner.trunc() + size.trunc()], 1)
        keep = _nms(opencv_boxes, score, image, self.nms_threshold)
        image, score = image[keep], score[keep]
        factor = scale[image][:, None]  # K×1×2
        boxes = torch.stack([corner[keep], corner[keep] + size[keep]], 1)
        boxes = ((boxes + 0.5) * factor - 0.5).flatten(1)
        points = (points[keep] + 0.5) * factor - 0.5
        bounds = np.cumsum(torch.bincount(image, minlength=len(out)).tolist())[:-1]
        boxes, score, points = (t.cpu().numpy() for t in (boxes, score, points))
        parts = (np.split(boxes, bounds), np.split(score, bounds), np.split(points, bounds))
        return [Detections(*faces) for faces in zip(*parts, strict=True)]
