"""MagFace training: the loss, degraded views, the CPU (head only) and GPU (fine-tune) loops.

The loss (Meng et al., CVPR 2021, eqs. 4–6): with a = clamp(‖f‖, l_a, u_a),

    m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a)          the margin grows with the magnitude
    g(a) = a/u_a² + 1/a                                      the regulariser (minimum at a = u_a)
    L    = −log softmax(s·[cos(θ_y + m(a)), cos θ_j≠y])_y + λ_g·g(a)

so a face can only afford a large magnitude (a large margin) when it is easy to place in its class:
magnitude becomes quality. As in ArcFace, cos(θ + m) is replaced by cos θ − m·sin m when θ + m
passes π.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import nn

from ..recognizers.dlib_resnet import DlibResNet
from ..recognizers.magface import EMBEDDING_DIM, MagFaceNet
from ..weights import load_weights
from .data import FaceSet
from .degrade import random_degradations

SPEC = DlibResNet.crop_spec


@dataclass
class MagFaceConfig:
    """Everything that defines a training run (recorded in the weights' manifest entry)."""

    # The paper's 10, 110, 0.45, 0.8 suit a backbone trained from scratch on 85k identities;
    # for a head on a frozen backbone with 350 identities, smaller margins and a narrower
    # magnitude range ranked held-out CelebA views best (docs/magface.md).
    l_a: float = 10.0
    u_a: float = 60.0
    l_m: float = 0.2
    u_m: float = 0.5
    lambda_g: float = 35.0
    scale: float = 64.0
    views: int = 8  # degraded views per image (frozen backbone: rendered once)
    jitter: float = 0.06  # alignment jitter, see FaceSet.crops
    clean: float = 0.25  # fraction of views left undegraded
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    backbone_lr: float = 0.0  # 0: frozen backbone (CPU configuration); > 0: fine-tune (GPU)
    seed: int = 0


class MagFaceLoss(nn.Module):
    """MagFace classification loss over ``classes`` identities for ``dim``-d features."""

    def __init__(self, classes: int, config: MagFaceConfig, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """features N×dim (unnormalised), labels N → {"loss", "ce", "g", "accuracy"} scalars."""
        c = self.config
        magnitude = features.norm(dim=1).clamp(c.l_a, c.u_a)
        margin = c.l_m + (c.u_m - c.l_m) * (magnitude - c.l_a) / (c.u_a - c.l_a)
        cos = F.linear(F.normalize(features), F.normalize(self.weight)).clamp(-1, 1)
        target = cos.gather(1, labels[:, None])[:, 0]
        sin = (1 - target**2).clamp_min(1e-9).sqrt()
        with_margin = target * torch.cos(margin) - sin * torch.sin(margin)
        past_pi = target <= torch.cos(math.pi - margin)
        with_margin = torch.where(past_pi, target - margin * torch.sin(margin), with_margin)
        logits = cos.scatter(1, labels[:, None], with_margin[:, None]) * c.scale
        ce = F.cross_entropy(logits, labels)
        g = (magnitude / c.u_a**2 + 1 / magnitude).mean()
        accuracy = (cos.argmax(1) == labels).float().mean()
        return {"loss": ce + c.lambda_g * g, "ce": ce, "g": g, "accuracy": accuracy}


def render_views(faces: FaceSet, index: np.ndarray, rng: np.random.Generator,
                 clean: float, jitter: float) -> tuple[torch.Tensor, np.ndarray]:
    """Jittered, randomly degraded dlib chips of faces ``index``: (N×3×150×150 uint8, N
    severities = summed degradation levels, 0 for clean views)."""
    crops = faces.crops(index, SPEC, jitter=jitter, generator=rng)
    return random_degradations(crops, rng, clean=clean)


def pooled_features(faces: FaceSet, config: MagFaceConfig, device: torch.device,
                    progress=None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``config.views`` degraded views of every face through the frozen dlib backbone.

    Returns (V·N×256 float16 pooled features, labels, severities), view-major."""
    rng = np.random.default_rng(config.seed)
    backbone = _initial_net().backbone.to(device).eval()
    features, labels, severity = [], [], []
    order = np.arange(len(faces))
    task = progress.add_task("views", total=config.views * len(faces)) if progress else None
    for _ in range(config.views):
        for start in range(0, len(order), 128):
            index = order[start:start + 128]
            crops, levels = render_views(faces, index, rng, config.clean, config.jitter)
            with torch.inference_mode():
                pooled = backbone.pooled(SPEC.normalize(crops.to(device)))
            features.append(pooled.half().cpu())
            labels.append(faces.labels[index])
            severity.append(levels)
            if progress:
                progress.advance(task, len(index))
    return torch.cat(features), np.concatenate(labels), np.concatenate(severity)


def cached_pooled_features(faces: FaceSet, config: MagFaceConfig, device: torch.device,
                           folder: str | Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """:func:`pooled_features`, cached in ``folder`` by the view settings and the image list."""
    key = json.dumps([config.views, config.jitter, config.clean, config.seed, faces.paths])
    path = Path(folder) / f"views-{hashlib.sha1(key.encode()).hexdigest()[:10]}.pt"
    if path.is_file():
        saved = torch.load(path)
        return saved["features"], saved["labels"].numpy(), saved["severity"].numpy()
    with Progress() as progress:
        features, labels, severity = pooled_features(faces, config, device, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features": features, "labels": torch.from_numpy(labels),
                "severity": torch.from_numpy(severity)}, path)
    return features, labels, severity


def train_head(features: torch.Tensor, labels: np.ndarray, config: MagFaceConfig,
               log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """The CPU configuration: a MagFace head on frozen dlib features (from :func:`pooled_features`).

    labels: 0…C−1. Returns the whole network (dlib backbone + trained head) and the epoch log."""
    torch.manual_seed(config.seed)
    net = _initial_net()
    loss_fn = MagFaceLoss(int(labels.max()) + 1, config)
    optimizer = torch.optim.AdamW([*net.head.parameters(), *loss_fn.parameters()], lr=config.lr,
                                  weight_decay=5e-4)
    y = torch.from_numpy(labels).long()
    generator = torch.Generator().manual_seed(config.seed)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in torch.randperm(len(y), generator=generator).split(config.batch_size):
            yield features[batch].float(), y[batch]

    per_epoch = math.ceil(len(y) / config.batch_size)
    history = _fit(net.head, loss_fn, optimizer, [config.lr], batches, per_epoch, config, log)
    return net.eval(), history


def finetune(faces: FaceSet, config: MagFaceConfig, device: torch.device,
             log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """The GPU configuration: backbone and head trained together on views rendered afresh every
    step (``config.backbone_lr`` for the backbone, ``config.lr`` for the head)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = _initial_net().to(device)
    loss_fn = MagFaceLoss(int(faces.labels.max()) + 1, config).to(device)
    optimizer = torch.optim.AdamW([
        {"params": net.backbone.parameters(), "lr": config.backbone_lr},
        {"params": [*net.head.parameters(), *loss_fn.parameters()], "lr": config.lr},
    ], weight_decay=5e-4)
    per_epoch = math.ceil(config.views * len(faces) / config.batch_size)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(per_epoch):
            index = rng.integers(len(faces), size=config.batch_size)
            crops, _ = render_views(faces, index, rng, config.clean, config.jitter)
            yield (SPEC.normalize(crops.to(device)),
                   torch.from_numpy(faces.labels[index]).long().to(device))

    history = _fit(net, loss_fn, optimizer, [config.backbone_lr, config.lr], batches, per_epoch,
                   config, log)
    return net.eval().cpu(), history


def _initial_net() -> MagFaceNet:
    """dlib's backbone (its weights) with a freshly initialised head."""
    net = MagFaceNet()
    net.backbone.load_state_dict(load_weights("dlib_resnet"))
    return net


def _fit(model: nn.Module, loss_fn: MagFaceLoss, optimizer: torch.optim.Optimizer,
         peak_lrs: list[float], batches: Callable[[], Iterator], per_epoch: int,
         config: MagFaceConfig, log: Callable[[dict], None]) -> list[dict]:
    """``config.epochs`` passes over ``batches()`` (input, labels) with a one-cycle schedule;
    returns one row per epoch: mean loss, ce, g, accuracy, magnitude, seconds."""
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, peak_lrs,
                                                   total_steps=config.epochs * per_epoch)
    history = []
    for epoch in range(config.epochs):
        started, sums, count = time.monotonic(), {}, 0
        model.train()
        for inputs, labels in batches():
            embeddings = model(inputs)
            parts = loss_fn(embeddings, labels)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            schedule.step()
            parts["magnitude"] = embeddings.norm(dim=1).mean()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.item() * len(labels)
            count += len(labels)
        history.append({"epoch": epoch + 1, **{k: v / count for k, v in sums.items()},
                        "seconds": round(time.monotonic() - started, 1)})
        log(history[-1])
    return history
