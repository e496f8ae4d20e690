"""MobileFaceNet (sirius-ai MobileFaceNet_TF, MS1M): 192-d face descriptor, in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crop import CropSpec
from ..weights import load_weights
from . import Recognizer, register

# Inverted residual stages (graph scopes Conv2d_2 … Conv2d_6): expanded channels, output
# channels, blocks, stride of the first block.
STAGES = ((128, 64, 5, 2), (256, 128, 1, 2), (256, 128, 6, 1), (512, 128, 1, 2), (256, 128, 2, 1))
EPSILON = 1e-10  # the graph's embeddings/Maximum/y: x / sqrt(max(‖x‖², ε))


def same_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` with TF "SAME" padding: stride 2 on even sizes pads bottom/right only."""
    if conv.stride[0] == 2:
        x = F.pad(x, (0, 1, 0, 1))
    return conv(x)


def depthwise(channels: int, stride: int) -> nn.Conv2d:
    """3×3 depthwise convolution; stride 1 is padded by the layer, stride 2 by :func:`same_conv`."""
    return nn.Conv2d(channels, channels, 3, stride, padding=2 - stride, groups=channels)


class InvertedResidual(nn.Module):
    """1×1 expansion + PReLU, 3×3 depthwise + ReLU, linear 1×1 projection; the input is added
    back when the block keeps its shape (stride 1)."""

    def __init__(self, inputs: int, expanded: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.expand, self.expand_prelu = nn.Conv2d(inputs, expanded, 1), nn.PReLU(expanded)
        self.depthwise = depthwise(expanded, stride)
        self.project = nn.Conv2d(expanded, outputs, 1)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(same_conv(self.depthwise, self.expand_prelu(self.expand(x))))
        y = self.project(y)
        return y + x if self.residual else y


class MobileFaceNetModule(nn.Module):
    """The TF.js MobileFaceNet graph (batch norm already folded into every convolution).

    Input: N×3×112×112 float, RGB as ``(x − 127.5) / 128``. Output: N×192 unit-length embeddings
    (graph output ``embeddings``). The depthwise layers end in ReLU: in the original network they
    have PReLU (``relu(x) + α(x − |x|)/2``), but in this graph the ReLU is fused into the
    depthwise convolution and the negative branch reads its rectified output, so that branch is
    zero and the graph's depthwise PReLU slopes are unused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.prelu = nn.Conv2d(3, 64, 3, 2), nn.PReLU(64)
        self.depthwise, self.pointwise = depthwise(64, 1), nn.Conv2d(64, 64, 1)
        blocks, channels = [], 64
        for expanded, outputs, count, stride in STAGES:
            for i in range(count):
                blocks.append(InvertedResidual(channels, expanded, outputs, 1 if i else stride))
                channels = outputs
        self.blocks = nn.ModuleList(blocks)
        self.expand, self.expand_prelu = nn.Conv2d(channels, 512, 1), nn.PReLU(512)
        self.gdconv = nn.Conv2d(512, 512, 7, groups=512)  # global depthwise, linear
        self.linear = nn.Conv2d(512, 512, 1)
        self.embedding = nn.Conv2d(512, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×112×112 → N×192 unit vectors."""
        x = self.prelu(same_conv(self.conv, x.contiguous(memory_format=torch.channels_last)))
        x = self.pointwise(F.relu(self.depthwise(x)))
        for block in self.blocks:
            x = block(x)
        x = self.expand_prelu(self.expand(x))
        x = self.embedding(self.linear(self.gdconv(x))).flatten(1)
        return x * torch.rsqrt(x.square().sum(1, keepdim=True).clamp(min=EPSILON))


@register
class MobileFaceNet(Recognizer):
    """MobileFaceNet (Chen et al. 2018) trained by sirius-ai (MobileFaceNet_TF) on MS1M, 192-d,
    as shipped in TF.js by vladmandic's human-models.

    Crop: the standard ArcFace 112×112 five-point template (the network was trained on
    InsightFace's MS1M 112×112 crops, aligned to it), RGB, ``(x − 127.5) / 128``. Evidence: the
    graph's input placeholder is N×112×112×3 float and its first op is the convolution;
    sirius-ai's training code decodes those JPEG crops to RGB and scales them by
    ``(x − 127.5) · 0.0078125``.

    Caveat: the shipped graph is nearly degenerate, and this port reproduces it faithfully. The
    embeddings of different people have cosine ≈ 0.9998 and LFW pairs are verified barely
    above chance, whatever the channel order, scale or crop; its activations grow to std ≈ 100
    in the middle layers (SFace's stay below 1), as if its batch norms had been folded with
    untrained statistics. Restoring the depthwise PReLU slopes does not help.
    """

    name = "mobilefacenet"
    description = ("MobileFaceNet (sirius-ai MobileFaceNet_TF, MS1M), 192-d (TF.js port, MIT); "
                   "near chance on LFW as shipped")
    crop_spec = CropSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0))
    dim = 192
    weights = ("mobilefacenet",)

    def build(self) -> MobileFaceNetModule:
        """The network with the shipped weights."""
        net = MobileFaceNetModule()
        net.load_state_dict(load_weights("mobilefacenet"))
        return net.to(memory_format=torch.channels_last)
