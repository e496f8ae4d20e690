"""Our face vision transformer, patch 8 on 112×112 ArcFace crops (196 tokens): recognizer ``vit``.

A pre-norm ViT (Dosovitskiy et al., 2021) without a class token. Its 14×14 token grid comes from
a convolutional stem: in the shipped model, SFace's first 23 convolutions, frozen (a *hybrid* ViT
in Dosovitskiy et al.'s sense: every SFace stage down to 1/8 scale, then a trained 1×1
projection); in a ``ViTShape(stem_layers=0)`` model, three trained stride-2 convolutions (Xiao et
al., 2021). The embedding is a linear map of the final tokens, flattened (``flatten``) or
averaged.

Trained here by ``scripts/train_vit.py``, distilling SFace on photos degraded as whole photographs
(``docs/attention.md``). Every block uses fused attention (``scaled_dot_product_attention``)
except the last when all its pre-softmax logits are asked for (:meth:`FaceViT.forward_with_logits`,
the ``attention`` estimator's maps); their mean, the ATTN-FIQA score, comes exactly from the mean
query and key, without them.

Any :class:`FaceViT` of another size (``ViTShape``) saved with :func:`save_face_vit` loads with
:func:`load_face_vit` and works with the estimator and as a recognizer.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..backbones import Backbone, register_backbone
from ..crop import CropSpec
from ..weights import weights_path
from . import register
from .base import Recognizer
from .sface import STEM_LAYERS, SFaceStem

CROP_SPEC = CropSpec(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0))
Kept = Literal["logits", "mean"] | None  # what Block.forward returns of the pre-softmax logits


@dataclass(frozen=True)
class ViTShape:
    """Architecture of a :class:`FaceViT`: image side, patch side, width, blocks, heads, MLP
    width ratio and embedding size. Tokens = (size / patch)². ``stem_layers``: how many of
    SFace's convolutions, frozen, make the tokens (0: our trained convolutional stem; SFace's
    stride must equal ``patch``); ``flatten``: embed the flattened tokens rather than their
    mean."""

    size: int = 112
    patch: int = 8
    dim: int = 192
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 3.0
    embedding_dim: int = 128
    stem_layers: int = 0
    flatten: bool = False


def conv_stem(dim: int, patch: int) -> nn.Sequential:
    """N×3×S×S → N×dim×(S/patch)×(S/patch): log2(patch) stride-2 3×3 convolutions (batch norm,
    GELU) widening to ``dim``, then a 1×1 projection."""
    steps = round(math.log2(patch))
    if 2**steps != patch:
        raise ValueError(f"patch must be a power of two, got {patch}")
    layers, channels = [], 3
    for step in range(steps):
        width = dim // 2 ** (steps - 1 - step)
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(width), nn.GELU()]
        channels = width
    return nn.Sequential(*layers, nn.Conv2d(dim, dim, 1))


class Block(nn.Module):
    """Pre-norm transformer block on N×T×dim tokens."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, keep: Kept = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens N×T×dim → (tokens, what ``keep`` asks of the pre-softmax logits q·kᵀ/√d_head).

        keep: ``"logits"``, all of them, N×heads×T×T (the attention is then computed explicitly:
        same result, more memory); ``"mean"``, their mean over heads and token pairs, N (exact
        from the mean query and key, since the mean of qᵢ·kⱼ over i, j is q̄·k̄; fused attention);
        None, nothing."""
        if keep not in ("logits", "mean", None):
            raise ValueError(f"keep must be 'logits', 'mean' or None, got {keep!r}")
        n, t, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, dim // self.heads).permute(
            2, 0, 3, 1, 4)
        scale = q.shape[-1] ** -0.5
        if keep == "logits":
            kept = q @ k.transpose(-2, -1) * scale
            mixed = kept.softmax(-1) @ v
        else:
            kept = (q.mean(2) * k.mean(2)).sum(-1).mean(1) * scale if keep == "mean" else None
            mixed = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(mixed.transpose(1, 2).reshape(n, t, dim))
        return x + self.mlp(self.norm2(x)), kept


class FaceViT(nn.Module):
    """N×3×S×S input normalised by ``CROP_SPEC`` → N×embedding_dim embeddings.

    ``stem`` (frozen SFace layers, or the identity) then ``patches`` (trained) make the tokens."""

    def __init__(self, shape: ViTShape = ViTShape()) -> None:
        super().__init__()
        if shape.size % shape.patch or shape.dim % shape.heads:
            raise ValueError(f"size must divide by patch and dim by heads: {shape}")
        self.shape = shape
        tokens = (shape.size // shape.patch) ** 2
        if shape.stem_layers:
            self.stem = SFaceStem(shape.stem_layers).requires_grad_(False)
            if self.stem.stride != shape.patch or shape.size != 112:
                raise ValueError(f"SFace's first {shape.stem_layers} layers have stride "
                                 f"{self.stem.stride} on 112 px: {shape}")
            self.patches = nn.Conv2d(self.stem.channels, shape.dim, 1)
        else:
            self.stem, self.patches = nn.Identity(), conv_stem(shape.dim, shape.patch)
        self.position = nn.Parameter(torch.randn(1, tokens, shape.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(shape.dim, shape.heads, shape.mlp_ratio)
                                    for _ in range(shape.depth))
        self.norm = nn.LayerNorm(shape.dim)
        self.head = nn.Linear(shape.dim * (tokens if shape.flatten else 1), shape.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(self.stem(x))[0]

    def forward_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised input → (N×embedding_dim embeddings, the last block's pre-softmax logits
        N×heads×T×T, tokens in row-major patch order)."""
        return self.encode(self.stem(x), "logits")

    def forward_with_score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised input → (N×embedding_dim embeddings, N ATTN-FIQA scores: the mean of the
        last block's pre-softmax logits over heads and token pairs)."""
        return self.encode(self.stem(x), "mean")

    def encode(self, maps: torch.Tensor, keep: Kept = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stem's output N×C×G×G → (N×embedding_dim embeddings, what ``keep`` asks of the
        last block's logits, as :meth:`Block.forward`); training on stem maps computed once
        uses this."""
        tokens = self.patches(maps).flatten(2).transpose(1, 2) + self.position
        for block in self.blocks[:-1]:
            tokens = block(tokens)[0]
        tokens, kept = self.blocks[-1](tokens, keep)
        tokens = self.norm(tokens)
        return self.head(tokens.flatten(1) if self.shape.flatten else tokens.mean(1)), kept


def save_face_vit(model: FaceViT, path: str | Path) -> Path:
    """Write ``model``'s weights to a safetensors file, its :class:`ViTShape` in the metadata."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"vit_shape": json.dumps(asdict(model.shape))})
    return Path(path)


def load_face_vit(path: str | Path) -> FaceViT:
    """A :class:`FaceViT` from a file written by :func:`save_face_vit` (on the CPU, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no FaceViT weights at {path}")
    with safe_open(str(path), framework="pt") as stored:
        metadata = stored.metadata() or {}
        if "vit_shape" not in metadata:
            raise ValueError(f"{path} has no 'vit_shape' metadata: save it with save_face_vit()")
        model = FaceViT(ViTShape(**json.loads(metadata["vit_shape"])))
        model.load_state_dict({key: stored.get_tensor(key) for key in stored.keys()})  # noqa: SIM118
    return model.eval()


@register_backbone
class FaceViTTrunk(Backbone):
    """Our face ViT's shared pass: N×129, the 128-d embedding then the ATTN-FIQA score (the mean
    pre-softmax logit of the last block), read by ``vit``, ``vit-norm`` and ``attention``; it
    continues from ``sface-stem``, the shipped ViT's frozen stem."""

    name = "vit"
    crop_spec = CROP_SPEC
    weights = ("face_vit",)
    upstream = "sface-stem"

    def build(self) -> FaceViT:
        net = load_face_vit(weights_path("face_vit"))
        if net.shape.stem_layers != STEM_LAYERS:
            raise ValueError(f"the shipped face ViT must stem from SFace's first {STEM_LAYERS} "
                             f"convolutions, not {net.shape.stem_layers}")
        return net

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        embeddings, score = self.net.encode(maps, "mean")
        return torch.cat([embeddings, score[:, None]], 1)


@register
class FaceViTRecognizer(Recognizer):
    """Our distilled face ViT: 112×112 ArcFace crops → 128-d embeddings (SFace's space)."""

    name = "vit"
    description = ("hybrid face ViT (SFace stem, 196 tokens, 2 blocks) distilled from SFace here "
                   "(CelebA + FIW, no LFW), 128-d")
    crop_spec = CROP_SPEC
    dim = ViTShape().embedding_dim
    weights = ("face_vit",)
    backbone = "vit"

    def build(self) -> FaceViT:
        """The network with the shipped weights: the shared pass's own."""
        return self.shared.net

    def embed_features(self, features: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        embeddings = features[:, :-1]
        return F.normalize(embeddings, dim=1) if normalize else embeddings
