"""Device choice shared by detectors, estimators and recognizers."""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    otherwise. ValueError for any other name and for a device torch cannot see."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in DEVICE_TYPES:
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {resolved} does not exist: torch sees "
                         f"{torch.cuda.device_count()} CUDA GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but torch sees no Apple GPU; use --device cpu")
    return resolved


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; a CPU tensor bound for a CUDA GPU goes through pinned (page-locked)
    memory and is copied asynchronously, so the copy overlaps the work already queued."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def emulated_precision(device: torch.device, precision: str) -> bool:
    """Whether autocast ``precision`` (``bf16``, ``fp16``) has no native arithmetic on ``device``:
    a CPU without bf16 (AVX-512 or AMX) or fp16 (AMX-FP16) support in oneDNN, where it runs
    several times slower than fp32 (9× for FaceRes in bf16 on an AVX2 CPU, docs/benchmarks.md).
    False for fp32 and for accelerators."""
    if device.type != "cpu" or precision == "fp32":
        return False
    if precision == "bf16":
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return not torch.ops.mkldnn._is_mkldnn_fp16_supported()
