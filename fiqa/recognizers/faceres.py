"""HSE FaceRes: MobileNet v1 face descriptor (1024-d) with age and gender heads, in torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crop import CropSpec
from ..weights import load_weights
from . import Recognizer, register

# Depthwise strides of MobileNet v1's 13 blocks; pointwise output channels of each block.
_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512),
           (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))


class FaceResNet(nn.Module):
    """The FaceRes graph (Keras MobileNet v1, α = 1, batch norm folded into each convolution).

    Input: N×3×224×224 float, the graph's own scale (see :class:`FaceRes` for the crop).
    ``forward`` → N×1024 embeddings (the global average pool, graph node
    ``global_pooling/Mean``); ``attributes`` → age and gender from those embeddings.
    """

    def __init__(self) -> None:
        super().__init__()
        layers = [nn.Conv2d(3, 32, 3, stride=2)]
        channels = 32
        for stride, out in _BLOCKS:
            layers.append(nn.Conv2d(channels, channels, 3, stride, padding=2 - stride,
                                    groups=channels))
            layers.append(nn.Conv2d(channels, out, 1))
            channels = out
        self.layers = nn.ModuleList(layers)
        self.feats = nn.Linear(1024, 256)
        self.age, self.gender = nn.Linear(256, 100), nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×224×224 → N×1024 non-negative embeddings."""
        x = x.contiguous(memory_format=torch.channels_last)  # ~1.7× faster depthwise convs on CPU
        for layer in self.layers:
            if layer.stride[0] == 2:  # TF "SAME" with stride 2 on even sizes pads bottom/right only
                x = F.pad(x, (0, 1, 0, 1))
            x = F.relu6(layer(x))
        return x.mean((2, 3))

    def attributes(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N×1024 embeddings → age probabilities N×100, gender N in [0, 1].

        Per HSE's code, age class k is k + 1 years and gender ≥ 0.6 reads as male.
        """
        hidden = F.relu(self.feats(embeddings))
        return self.age(hidden).softmax(1), torch.sigmoid(self.gender(hidden))[:, 0]


@register
class FaceRes(Recognizer):
    """HSE FaceRes 1024-d face descriptor (Savchenko's MobileNet v1, HSE_FaceRec_tf).

    Crop: 224×224 ArcFace five-point template, BGR, minus the VGG/Caffe mean (103.939, 116.779,
    123.68). Evidence: the graph's input placeholder is N×224×224×3 float and its first op is the
    convolution (no scaling or mean op inside); HSE's own facial_analysis.py resizes MTCNN boxes
    (+10 px) to 224, flips RGB→BGR and subtracts those means. On LFW View 2 folds 1–2 (1,200
    pairs, our MTCNN + ``align``), ROC AUC / best accuracy: BGR−mean .965/.936, BGR 0–255
    .961/.919, RGB−mean .955/.923, RGB 0–255 .945/.896; the same order on HSE's box crops.
    Geometry matters little: ArcFace padding 0, 0.1, 0.2, HSE's box crops and a template fitted
    to them all give AUC .964–.967 with BGR−mean; padding 0 is kept.
    """

    name = "faceres"
    description = "HSE FaceRes MobileNet v1 face descriptor, 1024-d (TF.js port, MIT)"
    crop_spec = CropSpec(size=224, channels="BGR", mean=(103.939, 116.779, 123.68))
    dim = 1024
    weights = ("faceres",)

    def build(self) -> FaceResNet:
        """The network with the shipped weights."""
        net = FaceResNet()
        net.load_state_dict(load_weights("faceres"))
        return net.to(memory_format=torch.channels_last)
