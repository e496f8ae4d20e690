"""MobileFace V3 (becauseofAI MobileFace_Identification_V3): 256-d face descriptor, in torch."""

from __future__ import annotations

import torch
from torch import nn

from ..crop import CropSpec
from ..weights import load_weights
from . import Recognizer, register

# (input channels, output channels) of the four stages; each halves the map: 56 → 28 → 14 → 7 → 4.
STAGES = ((32, 32), (32, 32), (32, 64), (64, 128))


def depthwise(channels: int, stride: int) -> nn.Conv2d:
    """3×3 depthwise convolution without bias, padded by one pixel on every side."""
    return nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)


class Stage(nn.Module):
    """1×1 convolution (linear), a stride-2 3×3 depthwise + PReLU, then a residual branch of
    two stride-1 3×3 depthwise + PReLU layers around that output."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.pointwise = nn.Conv2d(inputs, outputs, 1, bias=False)
        self.reduce, self.reduce_prelu = depthwise(outputs, 2), nn.PReLU(outputs)
        self.first, self.first_prelu = depthwise(outputs, 1), nn.PReLU(outputs)
        self.second, self.second_prelu = depthwise(outputs, 1), nn.PReLU(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce_prelu(self.reduce(self.pointwise(x)))
        return x + self.second_prelu(self.second(self.first_prelu(self.first(x))))


class MobileFaceV3Module(nn.Module):
    """The TF.js MobileFace V3 graph. Input: N×3×112×112 float, RGB as ``(x − 127.5) / 128``.
    Output: N×256 unnormalised embeddings (the graph's ``batchnorm0`` output; its scale and shift
    are folded into ``embedding``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self.prelu = nn.PReLU(32)
        self.stages = nn.Sequential(*(Stage(i, o) for i, o in STAGES))
        self.embedding = nn.Linear(128 * 4 * 4, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×112×112 → N×256."""
        x = self.stages(self.prelu(self.conv(x.contiguous(memory_format=torch.channels_last))))
        return self.embedding(x.flatten(1))


@register
class MobileFaceV3(Recognizer):
    """MobileFace V3 (becauseofAI's MobileFace_Identification_V3, MXNet, 2.1 MB; 95.47 % on LFW
    claimed upstream), as shipped in TF.js by vladmandic's human-models: a small, weak but
    working mobile recognizer (MobileFaceNet's file of the same package does not recognise).

    Crop: the ArcFace 112×112 five-point template (upstream evaluates on InsightFace's 112×112
    LFW crops), RGB (BGR verifies worse: AUC 0.936 against 0.965 on LFW View 2 fold 1),
    ``(x − 127.5) / 128``: the graph's own first two ops.
    """

    name = "mobileface-v3"
    description = "MobileFace V3 (becauseofAI, MXNet → TF.js, MIT package), 256-d, small and weak"
    crop_spec = CropSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0))
    dim = 256
    weights = ("mobileface_v3",)

    def build(self) -> MobileFaceV3Module:
        """The network with the shipped weights."""
        net = MobileFaceV3Module()
        net.load_state_dict(load_weights("mobileface_v3"))
        return net.to(memory_format=torch.channels_last)
