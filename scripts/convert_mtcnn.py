"""Convert facenet-pytorch's MTCNN weights (pnet/rnet/onet .pt) into weights/mtcnn.safetensors.

Needs facenet-pytorch 2.6.0 installed (``pip install --no-deps facenet-pytorch==2.6.0``); it is
located, not imported (importing it needs torchvision). Run: python scripts/convert_mtcnn.py
"""

import importlib.util
from pathlib import Path

import torch

from fiqa.weights import save_weights

spec = importlib.util.find_spec("facenet_pytorch")
if spec is None:
    raise SystemExit("not installed: pip install --no-deps facenet-pytorch==2.6.0")
data = Path(spec.submodule_search_locations[0]) / "data"
tensors = {
    f"{net}.{key}": value.contiguous()
    for net in ("pnet", "rnet", "onet")
    for key, value in torch.load(data / f"{net}.pt", map_location="cpu").items()
}
save_weights(
    "mtcnn", tensors,
    source="facenet-pytorch 2.6.0 wheel (PyPI), facenet_pytorch/data/{pnet,rnet,onet}.pt",
    licence="MIT",
    made_by="python scripts/convert_mtcnn.py",
    notes="The original MTCNN of Zhang et al. 2016 (P-Net, R-Net, O-Net), as converted to "
    "PyTorch by facenet-pytorch; keys prefixed pnet., rnet., onet.",
)
