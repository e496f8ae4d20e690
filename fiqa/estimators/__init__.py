"""Registry of quality estimators: ``create(name)``, ``list_estimators()``, ``@register``.

Every module of this package is imported on first use, so a new estimator is one new file with a
``@register``-decorated class. Other packages add theirs through the ``fiqa.estimators`` entry
point group (the entry point loads a module or class that registers itself).
"""

from __future__ import annotations

from typing import Any

import torch

from ..registry import Registry
from .base import QualityEstimator

_registry: Registry[type[QualityEstimator]] = Registry("estimator", __name__, "fiqa.estimators")
register = _registry.register
list_estimators = _registry.names


def estimator_class(name: str) -> type[QualityEstimator]:
    """The class of estimator ``name``, also of a variant spec ``name:value`` (ValueError for an
    unknown name)."""
    return _registry.get(name.partition(":")[0])


def create(name: str, device: str | torch.device = "auto", **options: Any) -> QualityEstimator:
    """A ready estimator: ``create("baseline", device="cpu")``; options go to its constructor.

    ``name`` may carry a variant, ``<estimator>:<value>``, for an estimator that declares one
    (:attr:`QualityEstimator.variant`): ``create("ri-proximity:sface")`` is
    ``create("ri-proximity", recognizer="sface")``, ``create("ri:ri_head_without_jpeg")`` a
    head trained without JPEG, ``create("landmarks:<forest>")`` (and ``landmarks68:``) another
    forest. The estimator is then named by the spec, a default value included
    (``ri-proximity:dlib``), so that its column always says what made it.
    """
    base, colon, value = name.partition(":")
    cls = estimator_class(name)
    if colon:
        if cls.variant is None:
            takes = sorted(f"{n}:…" for n in list_estimators() if estimator_class(n).variant)
            raise ValueError(f"{name!r}: {base} takes no ':' variant (those that do: "
                             f"{', '.join(takes)})")
        if not value:
            raise ValueError(f"{name!r}: nothing after ':' (its {cls.variant}, e.g. "
                             f"{base}:<{cls.variant}>)")
        options[cls.variant] = value
    estimator = cls(device=device, **options)
    if colon:
        estimator.name = name
    return estimator


__all__ = ["QualityEstimator", "create", "estimator_class", "list_estimators", "register"]
