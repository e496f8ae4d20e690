"""Shared forward passes: a network that several models read, run once per batch of crops.

A recognizer or estimator that reads a backbone declares it (``backbone = "sface"``) and maps the
backbone's features to its output (``Recognizer.embed_features``,
``QualityEstimator.measure_features``). :class:`fiqa.Scorer` then runs each backbone once per
batch and hands the same features to every model that declared it: ``-m magface,ri,sface-norm -r
sface`` costs one SFace pass per face, not four. Used on their own, the models run the pass
themselves, from the same one :func:`shared_backbone` instance per device and precision (its
weights are loaded once per process).

A backbone can itself read another (``upstream``): ``sface`` and ``vit`` both continue from
``sface-stem`` (SFace's first 23 convolutions), so ``-m magface,attention`` runs those once.
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
    return _run(lambda: forward(spec.normalize(crops.to(device))), device, precision)


def _run(compute: Callable[[], torch.Tensor], device: torch.device, precision: str
         ) -> torch.Tensor:
    """``compute()`` in inference mode, under autocast on ``device`` for bf16/fp16 → float32."""
    dtype = PRECISIONS[precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        return compute().float()


class Backbone(ABC):
    """Aligned crops → N×… float32 features that several models read.

    Subclasses set ``name``, ``crop_spec``, ``weights`` (names in weights/manifest.json) and
    implement :meth:`build`; ``@register_backbone`` makes them available to
    :func:`shared_backbone`. They live beside the network they run (``fiqa/recognizers/``).
    ``upstream``: the backbone whose features :meth:`forward` reads instead of crops (same crop
    spec).
    """

    name: ClassVar[str]
    crop_spec: ClassVar[CropSpec]
    weights: ClassVar[tuple[str, ...]] = ()
    upstream: ClassVar[str | None] = None

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        self.device, self.precision = resolve_device(device), checked_precision(precision)
        self.net = self.build().to(self.device).eval()

    @abstractmethod
    def build(self) -> nn.Module:
        """The network, weights loaded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised N×3×S×S float input, or the ``upstream`` backbone's features → N×…
        features (by default the network's output)."""
        return self.net(x)

    def features(self, crops: torch.Tensor, computed: dict[Backbone, torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """N×3×S×S uint8 RGB crops aligned to ``crop_spec`` → N×… float32 features on
        ``device`` (under autocast for bf16/fp16).

        computed: the features of these same crops already run, by backbone; this backbone's
        and its upstream's are taken from it or added to it (one pass per backbone per batch).
        """
        computed = {} if computed is None else computed
        if self not in computed:
            if self.upstream is None:
                check_crops(crops, self.crop_spec, f"backbone {self.name}")
                computed[self] = run_on_crops(self.forward, self.crop_spec, crops, self.device,
                                              self.precision)
            else:
                upstream = shared_backbone(self.upstream, self.device, self.precision)
                if upstream.crop_spec != self.crop_spec:
                    raise ValueError(f"backbone {self.name} and its upstream {upstream.name} "
                                     "must read the same crops")
                inputs = upstream.features(crops, computed)
                computed[self] = _run(lambda: self.forward(inputs), self.device, self.precision)
        return computed[self]


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
