"""Shared forward passes: a network that several models read, run once per batch of crops.

A recognizer or estimator that reads a backbone declares it (``backbone = "sface"``) and maps the
backbone's features to its output (``Recognizer.embed_features``,
``QualityEstimator.measure_features``). :class:`fiqa.Scorer` then runs each backbone once per
batch and hands the same features to every model that declared it: ``-m magface,ri,sface-norm -r
sface`` costs one SFace pass per face, not four. Used on their own, the models run the pass
themselves, from the same one :func:`shared_backbone` instance per device and precision (its
weights are loaded once per process).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from .crop import CropSpec, check_crops
from .device import resolve_device
from .registry import Registry

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def checked_precision(precision: str) -> str:
    """``precision`` itself, or ValueError unless it is a key of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return precision


def run_on_crops(forward: Callable[[torch.Tensor], torch.Tensor], spec: CropSpec,
                 crops: torch.Tensor, device: torch.device, precision: str) -> torch.Tensor:
    """``forward(spec.normalize(crops))`` on ``device`` in inference mode, under autocast for
    bf16/fp16 → float32."""
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        return forward(spec.normalize(crops.to(device))).float()


class Backbone(ABC):
    """Aligned crops → N×D float32 features that several models read.

    Subclasses set ``name``, ``crop_spec``, ``weights`` (names in weights/manifest.json) and
    implement :meth:`build`; ``@register_backbone`` makes them available to
    :func:`shared_backbone`. They live beside the network they run (``fiqa/recognizers/``).
    """

    name: ClassVar[str]
    crop_spec: ClassVar[CropSpec]
    weights: ClassVar[tuple[str, ...]] = ()

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        self.device, self.precision = resolve_device(device), checked_precision(precision)
        self.net = self.build().to(self.device).eval()

    @abstractmethod
    def build(self) -> nn.Module:
        """The network, weights loaded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N×3×S×S float input → N×D features (by default the network's output)."""
        return self.net(x)

    def features(self, crops: torch.Tensor) -> torch.Tensor:
        """N×3×S×S uint8 RGB crops aligned to ``crop_spec`` → N×D float32 features on
        ``device`` (under autocast for bf16/fp16)."""
        check_crops(crops, self.crop_spec, f"backbone {self.name}")
        return run_on_crops(self.forward, self.crop_spec, crops, self.device, self.precision)


_registry: Registry[type[Backbone]] = Registry("backbone", "fiqa.recognizers", "fiqa.backbones")
register_backbone = _registry.register
list_backbones = _registry.names


@functools.cache
def _instance(name: str, device: torch.device, precision: str) -> Backbone:
    return _registry.get(name)(device, precision)


def shared_backbone(name: str, device: str | torch.device = "auto",
                    precision: str = "fp32") -> Backbone:
    """The one instance of backbone ``name`` for this device and precision."""
    return _instance(name, resolve_device(device), precision)
