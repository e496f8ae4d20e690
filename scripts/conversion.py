"""What the convert_* scripts end with: float32 torch tensors, saved with their manifest entry.

Used by scripts/onnx_graph.py and scripts/tfjs_graph.py (their ``convert_main``) and by the
converters built on them.
"""

import numpy as np
import torch

from fiqa.weights import save_weights


def float32_tensors(arrays: dict[str, np.ndarray],
                    net: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``arrays`` as contiguous float32 torch tensors; checked against ``net``'s state dict (every
    key and shape) when given."""
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
               for k, v in arrays.items()}
    if net is not None:
        net.load_state_dict(tensors)
    return tensors


def save(name: str, tensors: dict[str, torch.Tensor], **manifest: str) -> None:
    """Write ``weights/{name}.safetensors`` and its ``manifest`` entry (source, licence, made_by,
    notes; see ``fiqa.weights.save_weights``) and say so."""
    target = save_weights(name, tensors, **manifest)
    size = target.stat().st_size
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
    print(f"wrote {target} ({len(tensors)} tensors, {shown}) and its manifest entry")
