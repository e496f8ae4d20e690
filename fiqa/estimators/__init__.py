"""Registry of quality estimators: ``create(name)``, ``list_estimators()``, ``@register``.

Every module of this package is imported on first use, so a new estimator is one new file with a
``@register``-decorated class. Other packages add theirs through the ``fiqa.estimators`` entry
point group (the entry point loads a module or class that registers itself).
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

import torch

from .base import QualityEstimator

_REGISTRY: dict[str, type[QualityEstimator]] = {}
_discovered = False


def register(cls: type[QualityEstimator]) -> type[QualityEstimator]:
    """Class decorator: make ``cls`` available as ``fiqa.create(cls.name)``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"an estimator named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    for entry in entry_points(group="fiqa.estimators"):
        entry.load()


def estimator_class(name: str) -> type[QualityEstimator]:
    """The registered class called ``name`` (ValueError listing the known names otherwise)."""
    _discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown estimator {name!r}; available: {', '.join(list_estimators())}")
    return _REGISTRY[name]


def list_estimators() -> list[str]:
    """Names of every registered estimator, sorted."""
    _discover()
    return sorted(_REGISTRY)


def create(name: str, device: str | torch.device = "auto", **options: Any) -> QualityEstimator:
    """A ready estimator: ``create("baseline", device="cpu")``; options go to its constructor."""
    return estimator_class(name)(device=device, **options)


__all__ = ["QualityEstimator", "create", "estimator_class", "list_estimators", "register"]
