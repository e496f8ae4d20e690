"""OpenCV Zoo SFace (2021dec, block-int8): MobileNet v1 face descriptor (128-d), in torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone, register_backbone
from ..crop import CropSpec
from ..weights import load_weights
from . import Recognizer, register

POOLED_DIM, EMBEDDING_DIM = 1024, 128
HEAD_INPUTS = POOLED_DIM + EMBEDDING_DIM  # SFaceNet.head_inputs: pooled map, then the embedding

# Depthwise strides of the 13 MobileNet v1 blocks after the first convolution; pointwise output
# channels of each block (graph nodes conv_2_dw … conv_14).
_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512),
           (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
CONVOLUTIONS = 1 + 2 * len(_BLOCKS)  # the first convolution, then a depthwise and a pointwise each
STEM_LAYERS = 23  # every stage down to 1/8 scale (512×14×14): the shared ``sface-stem`` pass


class SFaceNet(nn.Module):
    """The SFace graph: MobileNet v1 (first convolution 3×3 stride 1, 32 channels) with PReLU,
    then a fully connected 7·7·1024 → 128 embedding layer; every batch norm is folded in.

    Input: N×3×112×112 float, RGB as ``(x − 127.5) / 128``. Output: N×128 embeddings, not
    normalised (graph output ``fc1``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers, self.activations = _convolutions(CONVOLUTIONS)
        self.embedding = nn.Linear(self.layers[-1].out_channels * 7 * 7, EMBEDDING_DIM)

    def feature_map(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """N×3×112×112 (or the output of the first ``start`` convolutions) → N×1024×7×7, the
        last convolution's output."""
        return _convolve(self.layers[start:], self.activations[start:], x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×112×112 → N×128."""
        return self.embedding(self.feature_map(x).flatten(1))

    def head_inputs(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """N×3×112×112 (or as :meth:`feature_map`) → N×1152: what the quality heads built on
        SFace read (``magface``, ``ri``): the average-pooled last feature map (1024) and the
        embedding (128)."""
        features = self.feature_map(x, start)
        return torch.cat([features.mean((2, 3)), self.embedding(features.flatten(1))], 1)


class SFaceStem(nn.Module):
    """SFace's first ``layers`` convolutions with their PReLUs (keys as in SFace's weights):
    N×3×112×112 normalised crops → N×:attr:`channels`×(112/:attr:`stride`)², e.g. 23 layers →
    N×512×14×14 (every stage down to 1/8 scale). The convolutional stem of the hybrid face ViT."""

    def __init__(self, layers: int) -> None:
        super().__init__()
        if not 1 <= layers <= CONVOLUTIONS:
            raise ValueError(f"SFace has {CONVOLUTIONS} convolutions, not {layers}")
        self.layers, self.activations = _convolutions(layers)
        self.channels = self.layers[-1].out_channels
        self.stride = math.prod(layer.stride[0] for layer in self.layers)

    @classmethod
    def pretrained(cls, layers: int) -> SFaceStem:
        """The first ``layers`` convolutions with SFace's shipped weights."""
        stem = cls(layers)
        stored = load_weights("sface")
        stem.load_state_dict({key: stored[key] for key in stem.state_dict()})
        return stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _convolve(self.layers, self.activations, x)


def _convolutions(count: int) -> tuple[nn.ModuleList, nn.ModuleList]:
    """SFace's first ``count`` convolutions and their PReLUs (untrained), as SFaceNet names them."""
    layers, channels = [nn.Conv2d(3, 32, 3, padding=1)], 32
    for stride, out in _BLOCKS:
        layers.append(nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels))
        layers.append(nn.Conv2d(channels, out, 1))
        channels = out
    layers = layers[:count]
    return (nn.ModuleList(layers),
            nn.ModuleList(nn.PReLU(layer.out_channels) for layer in layers))


def _convolve(layers: nn.ModuleList, activations: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Each convolution of ``layers`` then its activation, channels-last."""
    x = x.contiguous(memory_format=torch.channels_last)
    for layer, activation in zip(layers, activations, strict=True):
        x = activation(layer(x))
    return x


CROP_SPEC = CropSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0))


@register_backbone
class SFaceStemPass(Backbone):
    """SFace's first :data:`STEM_LAYERS` convolutions, N×512×14×14: what the ``sface`` and
    ``vit`` passes continue from."""

    name = "sface-stem"
    crop_spec = CROP_SPEC
    weights = ("sface",)

    def build(self) -> SFaceStem:
        return SFaceStem.pretrained(STEM_LAYERS).to(memory_format=torch.channels_last)


@register_backbone
class SFaceTrunk(Backbone):
    """SFace's shared pass: its :meth:`SFaceNet.head_inputs`, N×1152 (the pooled last feature
    map, then the embedding), read by ``sface``, ``magface``, ``ri``, ``sface-norm`` and
    ``ri-proximity`` on SFace; it continues from ``sface-stem``."""

    name = "sface"
    crop_spec = CROP_SPEC
    weights = ("sface",)
    upstream = "sface-stem"

    def build(self) -> SFaceNet:
        net = SFaceNet()
        net.load_state_dict(load_weights("sface"))
        return net.to(memory_format=torch.channels_last)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.net.head_inputs(maps, start=STEM_LAYERS)


@register
class SFace(Recognizer):
    """SFace (Zhong et al., "SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face
    Recognition", TIP 2021), the OpenCV Zoo 2021dec model in its block-int8 build, dequantised.

    Crop: the standard ArcFace 112×112 five-point template, RGB, ``(x − 127.5) / 128``. Evidence:
    the graph's first ops subtract 127.5 and multiply by 0.0078125; OpenCV's own pipeline
    (FaceRecognizerSF) aligns with ``alignCrop`` (a similarity transform of the five YuNet
    landmarks to this template, ``warpAffine`` bilinear, 112×112) and feeds
    ``blobFromImage(crop, swapRB=true)``, i.e. RGB from OpenCV's BGR images.
    """

    name = "sface"
    description = "OpenCV Zoo SFace 2021dec (MobileNet v1, int8 dequantised), 128-d (Apache-2.0)"
    crop_spec = CROP_SPEC
    dim = EMBEDDING_DIM
    weights = ("sface",)
    backbone = "sface"

    def build(self) -> SFaceNet:
        """The network with the shipped weights: the shared pass's own."""
        return self.shared.net

    def embed_features(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        embeddings = features[:, POOLED_DIM:]
        return F.normalize(embeddings, dim=1) if normalize else embeddings
