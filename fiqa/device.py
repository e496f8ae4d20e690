"""Device choice shared by detectors, estimators and recognizers."""

from __future__ import annotations

import ctypes
import platform
import sys

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")
RETAINED_BYTES = 1 << 30  # see retain_freed_memory
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters


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
    a CPU without bf16 instructions (on x86-64: AVX512-BF16 or AMX; oneDNN calls bf16
    "supported" on any AVX-512 CPU, where it is emulated) or without oneDNN's fp16 support, where
    it runs slower than fp32 (docs/benchmarks.md). False for fp32 and for accelerators."""
    if device.type != "cpu" or precision == "fp32":
        return False
    if precision == "fp16":
        return not torch.ops.mkldnn._is_mkldnn_fp16_supported()
    if platform.machine().lower() in ("x86_64", "amd64"):
        return not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return not torch.ops.mkldnn._is_mkldnn_bf16_supported()


def retain_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse, process-wide: blocks up to
    :data:`RETAINED_BYTES` come from the heap instead of a fresh ``mmap`` each, and up to as much
    free heap is kept instead of given back, so a CPU forward pass reuses the last one's pages
    instead of faulting in and zeroing new ones (docs/benchmarks.md). The process keeps its peak
    heap. fiqa's commands, Ray actors and training scripts call it. True where both settings took
    (Linux with glibc); False elsewhere, where nothing or only part changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    taken = [mallopt(option, RETAINED_BYTES) == 1
             for option in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD)]
    return all(taken)
