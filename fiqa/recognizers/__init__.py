"""Registry of face recognition models: ``recognizer(name)``, ``list_recognizers()``, ``@register``.

Every module of this package is imported on first use, so a new model is one new file with a
``@register``-decorated :class:`Recognizer` subclass; other packages use the
``fiqa.recognizers`` entry point group.
"""

from __future__ import annotations

import torch

from ..registry import Registry
from .base import Recognizer

_registry: Registry[type[Recognizer]] = Registry("recognizer", __name__, "fiqa.recognizers")
register = _registry.register
recognizer_class = _registry.get
list_recognizers = _registry.names


def recognizer(name: str, device: str | torch.device = "auto", precision: str = "fp32"
               ) -> Recognizer:
    """A ready recognizer: ``recognizer("dlib", device="cpu")``; precision fp32, bf16 or fp16."""
    return recognizer_class(name)(device=device, precision=precision)


__all__ = ["Recognizer", "list_recognizers", "recognizer", "recognizer_class", "register"]
