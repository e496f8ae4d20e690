"""The contract every face recognition model follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..backbones import Backbone, checked_precision, run_on_crops, shared_backbone
from ..crop import CropSpec, check_crops
from ..device import resolve_device
from ..weights import provenance


class Recognizer(ABC):
    """Aligned face crops → identity embeddings (N×dim, unnormalised unless asked).

    Subclasses set the class attributes and implement :meth:`build`, returning the torch module
    that maps ``crop_spec.normalize(crops)`` to N×dim embeddings; ``@register`` (from
    ``fiqa.recognizers``) makes them available to :func:`fiqa.recognizer`. One that reads a
    shared backbone (:mod:`fiqa.backbones`) names it in ``backbone`` and implements
    :meth:`embed_features`; :meth:`embed` then goes through the shared pass.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    crop_spec: ClassVar[CropSpec]
    dim: ClassVar[int]
    weights: ClassVar[tuple[str, ...]] = ()  # names in weights/manifest.json
    backbone: ClassVar[str | None] = None  # a fiqa.backbones name, for a shared forward pass

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        self.device, self.precision = resolve_device(device), checked_precision(precision)
        self.model = self.build().to(self.device).eval()

    @abstractmethod
    def build(self) -> torch.nn.Module:
        """The network: normalised N×3×S×S float input → N×dim embeddings, weights loaded."""

    def embed(self, crops: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """N×3×S×S uint8 RGB crops aligned to ``crop_spec`` → N×dim float32 embeddings.

        normalize: return unit-length vectors. With ``precision`` bf16/fp16 the network runs under
        autocast (its result still comes back as float32).
        """
        check_crops(crops, self.crop_spec, self.name)
        if self.backbone is not None:
            return self.embed_features(self.shared.features(crops), normalize)
        embeddings = run_on_crops(self.model, self.crop_spec, crops, self.device, self.precision)
        return F.normalize(embeddings, dim=1) if normalize else embeddings

    @property
    def shared(self) -> Backbone:
        """The shared instance of :attr:`backbone` for this device and precision."""
        return shared_backbone(self.backbone, self.device, self.precision)

    def embed_features(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """N×D features of :attr:`backbone` → N×dim float32 embeddings (unit length with
        ``normalize``)."""
        raise NotImplementedError(f"{self.name} reads no shared backbone")

    @classmethod
    def provenance(cls) -> list[dict]:
        """Manifest entries (source, licence, sha256, how made) of the weights it uses."""
        return [provenance(name) for name in cls.weights]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, "
                f"precision={self.precision!r})")
