"""The contract every quality estimator follows."""

from __future__ import annotations

from abc import ABC
from typing import ClassVar

import numpy as np
import torch

from ..backbones import Backbone, checked_precision, shared_backbone
from ..crop import DEFAULT_CROP, CropSpec, check_crops
from ..device import resolve_device
from ..faces import Faces
from ..recognizers import Recognizer
from ..weights import provenance

METADATA = frozenset({"boxes", "scores", "landmarks", "image_sizes"})


class QualityEstimator(ABC):
    """Aligned face crops (+ detection metadata) → one quality score per face, higher = better.

    Subclasses set the class attributes below and implement :meth:`measure`, or, when they read a
    shared backbone (:mod:`fiqa.backbones`), name it in ``backbone`` and implement
    :meth:`measure_features`; decorating them with :func:`fiqa.estimators.register` makes them
    available to :func:`fiqa.create`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    crop_spec: ClassVar[CropSpec] = DEFAULT_CROP
    needs: ClassVar[frozenset[str]] = frozenset()  # metadata fields used, a subset of METADATA
    score_range: ClassVar[tuple[float, float]]  # raw scores fall in [low, high]
    components: ClassVar[tuple[str, ...]] = ()  # extra per-face measures reported beside the score
    weights: ClassVar[tuple[str, ...]] = ()  # names in weights/manifest.json
    backbone: ClassVar[str | None] = None  # a fiqa.backbones name, for a shared forward pass
    # the constructor option a "<name>:<value>" spec sets (fiqa.create), e.g. "head" for ri
    variant: ClassVar[str | None] = None

    def __init__(self, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        """precision: fp32, or bf16/fp16 autocast for the networks it runs (GPUs; see
        docs/benchmarks.md for the parity checked against fp32)."""
        self.device, self.precision = resolve_device(device), checked_precision(precision)

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        """crops: N×3×H×W uint8 RGB aligned to ``crop_spec``, on ``self.device``.

        Returns ``{"score": N floats, <component>: N floats, ...}``.
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither measure nor "
                                  "measure_features")

    def measure_features(self, features: torch.Tensor,
                         faces: Faces | None) -> dict[str, np.ndarray]:
        """As :meth:`measure`, from the N×D features of :attr:`backbone`."""
        raise NotImplementedError(f"{self.name} reads no shared backbone")

    @property
    def shared(self) -> Backbone:
        """The shared instance of :attr:`backbone` for this device and precision."""
        return shared_backbone(self.backbone, self.device, self.precision)

    def score(self, crops: torch.Tensor, faces: Faces | None = None) -> np.ndarray:
        """N raw scores (float64), higher = better."""
        return self(crops, faces)["score"]

    def network_score(self, crops: torch.Tensor) -> torch.Tensor:
        """N×3×S×S uint8 crops → N float32 raw scores in torch operations only: what
        ``fiqa export`` traces into ONNX. Estimators that are not one torch network on crops
        (they read detection metadata, or fit trees) raise NotImplementedError."""
        raise NotImplementedError(f"{self.name} is not a torch network on crops alone: it has "
                                  "no ONNX export")

    def __call__(self, crops: torch.Tensor, faces: Faces | None = None,
                 features: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """Checked :meth:`measure`: the score and every component, N float64 each. ``features``:
        the backbone's features of ``crops`` when the caller already has them (the Scorer)."""
        check_crops(crops, self.crop_spec, self.name)
        if self.needs and faces is None:
            raise ValueError(f"{self.name} needs detection metadata: {sorted(self.needs)}")
        with torch.inference_mode():
            if self.backbone is None:
                results = self.measure(crops.to(self.device), faces)
            else:
                if features is None:
                    features = self.shared.features(crops)
                results = self.measure_features(features, faces)
        return {key: np.asarray(value, dtype=np.float64) for key, value in results.items()}

    def to_quality(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores → 0–100 quality values (linear over ``score_range`` unless overridden)."""
        low, high = self.score_range
        return np.clip((np.asarray(raw, dtype=np.float64) - low) / (high - low) * 100, 0, 100)

    def provenance(self) -> list[dict]:
        """Manifest entries (source, licence, sha256, how made) of the weights it uses (an
        instance may use other weights than its class names)."""
        return [provenance(name) for name in self.weights]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, "
                f"precision={self.precision!r})")


class EmbeddingEstimator(QualityEstimator):
    """An estimator computed from a recognizer's embedding: the subclass sets ``self.recognizer``
    and implements :meth:`score_of`; the estimator then reads the recognizer's shared
    backbone (its device and precision) wherever the recognizer has one."""

    recognizer: Recognizer

    @property
    def backbone(self) -> str | None:
        return self.recognizer.backbone

    @property
    def shared(self) -> Backbone:
        return self.recognizer.shared

    def score_of(self, embeddings: torch.Tensor) -> torch.Tensor:
        """N×dim unnormalised embeddings → N raw scores (torch operations only)."""
        raise NotImplementedError

    def network_score(self, crops: torch.Tensor) -> torch.Tensor:
        return self.score_of(self.recognizer.embed(crops))

    def measure(self, crops: torch.Tensor, faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": self.network_score(crops).cpu().numpy()}

    def measure_features(self, features: torch.Tensor,
                         faces: Faces | None) -> dict[str, np.ndarray]:
        return {"score": self.score_of(self.recognizer.embed_features(features)).cpu().numpy()}
