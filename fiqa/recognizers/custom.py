"""Bring your own recognition model: a torch module, a TorchScript file or an ONNX file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..crop import DEFAULT_CROP, CropSpec
from .base import Recognizer


class CustomRecognizer(Recognizer):
    """A user's model behind the :class:`Recognizer` interface.

    model: a torch module, or the path of a TorchScript (``.pt``/``.pth``/``.torchscript``) or
    ONNX (``.onnx``, needs ``pip install onnxruntime``) file. It receives
    ``crop_spec.normalize(crops)`` (N×3×S×S float) and returns N×D embeddings.
    crop_spec: how to crop and normalise its input (default: ArcFace 112×112, RGB, 0–255).
    """

    description = "a user's own model"
    weights = ()

    def __init__(self, model: nn.Module | str | Path, crop_spec: CropSpec = DEFAULT_CROP,
                 name: str = "custom", device: str | torch.device = "auto",
                 precision: str = "fp32") -> None:
        self.source, self.crop_spec, self.name = model, crop_spec, name
        super().__init__(device, precision)
        probe = torch.zeros((1, 3, crop_spec.size, crop_spec.size), dtype=torch.uint8)
        self.dim = int(self.embed(probe).shape[1])

    def build(self) -> nn.Module:
        """The user's module, loaded from its file where a path was given."""
        if isinstance(self.source, nn.Module):
            return self.source
        path = Path(self.source)
        if not path.is_file():
            raise FileNotFoundError(f"no model file at {path}")
        if path.suffix.lower() == ".onnx":
            return _OnnxModule(path)
        return torch.jit.load(str(path), map_location="cpu")


class _OnnxModule(nn.Module):
    """An ONNX model run by onnxruntime on the CPU, as a module (N×3×S×S → first output)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError("ONNX models need onnxruntime: pip install onnxruntime") from error
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self.input_name: x.detach().cpu().numpy().astype(np.float32)}
        return torch.from_numpy(self.session.run(None, feed)[0]).to(x.device)
