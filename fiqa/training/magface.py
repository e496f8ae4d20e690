"""MagFace training: the loss, the CPU (head only, optionally MFR) and GPU (fine-tune) loops.

The loss (Meng et al., CVPR 2021, eqs. 4–6): with a = clamp(‖f‖, l_a, u_a),

    m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a)          the margin grows with the magnitude
    g(a) = a/u_a² + 1/a                                      the regulariser (minimum at a = u_a)
    L    = −log softmax(s·[cos(θ_y + m(a)), cos θ_j≠y])_y + λ_g·g(a)

so a face can only afford a large magnitude (a large margin) when it is easy to place in its class:
magnitude becomes quality. As in ArcFace, cos(θ + m) is replaced by cos θ − m·sin m when θ + m
passes π.

Domain generalisation (``config.mfr``), after MFR (Guo et al., "Learning Meta Face Recognition in
Unseen Domains", CVPR 2020): every step draws one domain as meta-test and a batch from the other
domains as meta-train; the head takes a virtual SGD step on the meta-train loss, and the update
follows the meta-train loss plus ``meta_weight`` × the meta-test loss *after* that step
(gradients and meta-gradients combined: the inner step's gradient stays in the graph). MFR's
hard-pair attention and domain-alignment losses are not used: the classification loss is
MagFace's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..pipeline import Scorer
from ..recognizers.magface import EMBEDDING_DIM, MagFaceNet
from ..recognizers.sface import SFace
from ..weights import load_weights
from .photo_views import clean_geometry, read_photo, render_view


@dataclass
class MagFaceConfig:
    """Everything that defines a training run (recorded in the weights' manifest entry)."""

    # The paper's 10, 110, 0.45, 0.8 suit a backbone trained from scratch on 85k identities;
    # for a magnitude head on frozen SFace, margins 0.3–1.0 over [10, 60] ranked the views of
    # 300 held-out identities best (docs/magface.md).
    l_a: float = 10.0
    u_a: float = 60.0
    l_m: float = 0.3
    u_m: float = 1.0
    lambda_g: float = 35.0
    scale: float = 64.0
    views: int = 2  # degraded views per photo besides the clean one (fiqa.training.photo_views)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    backbone_lr: float = 0.0  # 0: frozen backbone (CPU configuration); > 0: fine-tune (GPU)
    mfr: bool = False  # meta-train / meta-test domains every step (see the module docstring)
    meta_lr: float = 0.01  # the virtual step's learning rate
    meta_weight: float = 1.0  # weight of the meta-test loss
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


class _HeadAndLoss(nn.Module):
    """The head and its class weights as one module, for the functional MFR step."""

    def __init__(self, head: nn.Module, loss: MagFaceLoss) -> None:
        super().__init__()
        self.head, self.loss = head, loss

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings = self.head(features)
        return self.loss(embeddings, labels) | {"magnitude": embeddings.norm(dim=1).mean()}


def train_head(features: torch.Tensor, labels: np.ndarray, config: MagFaceConfig,
               domains: dict[str, np.ndarray] | None = None,
               log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """The CPU configuration: a MagFace head on frozen SFace head inputs (V×1152, from
    :func:`~fiqa.training.photo_views.cached_photo_views`). labels: V ints 0…C−1. domains
    (needed with ``config.mfr``): name → V bools, the views of each domain (they may overlap).
    Returns the whole network (SFace backbone + trained head) and the epoch log."""
    torch.manual_seed(config.seed)
    net = _initial_net()
    model = _HeadAndLoss(net.head, MagFaceLoss(int(labels.max()) + 1, config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4)
    y = torch.from_numpy(labels).long()
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = math.ceil(len(y) / config.batch_size)
    if config.mfr:
        if not domains or len(domains) < 2:
            raise ValueError("MFR needs at least two domains")
        masks = {name: torch.from_numpy(mask) for name, mask in domains.items() if mask.any()}
        names = sorted(masks)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr,
                                                   total_steps=config.epochs * per_epoch)
    history = []
    for epoch in range(config.epochs):
        started, sums, count = time.monotonic(), {}, 0
        model.train()
        for batch in torch.randperm(len(y), generator=generator).split(config.batch_size):
            if config.mfr:
                test = names[int(torch.randint(len(names), (1,), generator=generator))]
                batch = batch[~masks[test][batch]]
            if len(batch) < 2:  # batch norm needs two rows
                continue
            parts = model(features[batch].float(), y[batch])
            total = parts["loss"]
            if config.mfr:
                pool = masks[test].nonzero()[:, 0]
                meta = pool[torch.randint(len(pool), (config.batch_size,), generator=generator)]
                parts["meta"] = _meta_test_loss(model, parts["loss"], features[meta].float(),
                                                y[meta], config.meta_lr)
                total = total + config.meta_weight * parts["meta"]
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            schedule.step()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.item() * len(batch)
            count += len(batch)
        history.append({"epoch": epoch + 1, **{k: v / count for k, v in sums.items()},
                        "seconds": round(time.monotonic() - started, 1)})
        log(history[-1])
    return net.eval(), history


def _meta_test_loss(model: nn.Module, train_loss: torch.Tensor, features: torch.Tensor,
                    labels: torch.Tensor, meta_lr: float) -> torch.Tensor:
    """The loss on the meta-test batch of the parameters after one virtual SGD step on
    ``train_loss`` (its gradient kept in the graph: the meta-gradient)."""
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(train_loss, list(params.values()), create_graph=True)
    stepped = {name: p - meta_lr * g for (name, p), g in zip(params.items(), grads, strict=True)}
    buffers = dict(model.named_buffers())
    return functional_call(model, (stepped, buffers), (features, labels))["loss"]


def finetune(images: list[tuple[str, str]], config: MagFaceConfig, device: torch.device,
             cache: str | Path = ".fiqa-cache",
             log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """The GPU configuration: backbone and head trained together on photo views rendered afresh
    every step (:func:`~fiqa.training.photo_views.render_view`; ``config.backbone_lr`` for the
    backbone, ``config.lr`` for the head). images: (path, identity) training list; ``cache``
    holds the clean photos' detections."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    geometry = clean_geometry(images, cache)
    usable = [i for i, g in enumerate(geometry) if g is not None]
    names = sorted({identity for _, identity in images})
    label_of = {name: k for k, name in enumerate(names)}
    scorer = Scorer((), device="cpu")
    net = _initial_net().to(device)
    loss_fn = MagFaceLoss(len(names), config).to(device)
    optimizer = torch.optim.AdamW([
        {"params": net.backbone.parameters(), "lr": config.backbone_lr},
        {"params": [*net.head.parameters(), *loss_fn.parameters()], "lr": config.lr},
    ], weight_decay=5e-4)
    per_epoch = math.ceil((config.views + 1) * len(usable) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, [config.backbone_lr, config.lr],
                                                   total_steps=config.epochs * per_epoch)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        crops, labels = [], []
        while len(crops) < config.batch_size:
            i = usable[int(rng.integers(len(usable)))]
            photo = read_photo(images[i][0])
            crop = None if photo is None else render_view(
                photo, geometry[i], rng, scorer, degrade=rng.random() >= 1 / (config.views + 1))[0]
            if crop is not None:
                crops.append(crop)
                labels.append(label_of[images[i][1]])
        return (SFace.crop_spec.normalize(torch.cat(crops).to(device)),
                torch.tensor(labels, device=device))

    history = []
    for epoch in range(config.epochs):
        started, sums = time.monotonic(), {}
        net.train()
        for _ in range(per_epoch):
            inputs, labels = batch()
            embeddings = net(inputs)
            parts = loss_fn(embeddings, labels)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            schedule.step()
            parts["magnitude"] = embeddings.norm(dim=1).mean()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.item() / per_epoch
        history.append({"epoch": epoch + 1, **sums,
                        "seconds": round(time.monotonic() - started, 1)})
        log(history[-1])
    return net.eval().cpu(), history


def _initial_net() -> MagFaceNet:
    """SFace's backbone (its weights) with a freshly initialised head."""
    net = MagFaceNet()
    net.backbone.load_state_dict(load_weights("sface"))
    return net
