"""MagFace training: the loss, the CPU (head only) and GPU (fine-tune) loops.

The loss (Meng et al., CVPR 2021, eqs. 4–6): with a = clamp(‖f‖, l_a, u_a),

    m(a) = l_m + (u_m − l_m)·(a − l_a)/(u_a − l_a)          the margin grows with the magnitude
    g(a) = a/u_a² + 1/a                                      the regulariser (minimum at a = u_a)
    L    = −log softmax(s·[cos(θ_y + m(a)), cos θ_j≠y])_y + λ_g·g(a)

so a face can only afford a large magnitude (a large margin) when it is easy to place in its class:
magnitude becomes quality. As in ArcFace, cos(θ + m) is replaced by cos θ − m·sin m when θ + m
passes π.

Domain generalisation after MFR (Guo et al., CVPR 2020: meta-train and meta-test domains in every
step, gradients and meta-gradients combined) was tried as a training option and compared with
plain training on seven leave-one-domain-out protocols; it was no better on any, and was removed
(docs/magface.md gives the comparison and the commit that reproduces it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..pipeline import Scorer
from ..recognizers.magface import EMBEDDING_DIM, MagFaceNet
from ..recognizers.sface import SFace
from ..weights import load_weights
from .photo_views import (
    PhotoViews,
    clean_geometry,
    ranking_loss,
    read_photo,
    render_view,
    with_clean_partners,
)


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
    # weight of a logistic term asking each degraded view's magnitude to fall below its own
    # clean view's (CPU configuration; 0: off, the shipped head)
    pairwise: float = 0.0
    seed: int = 0


class MagFaceLoss(nn.Module):
    """MagFace classification loss over ``classes`` identities for ``dim``-d features."""

    def __init__(self, classes: int, config: MagFaceConfig, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                pairs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """features N×dim (unnormalised), labels N → {"loss", "ce", "g", "accuracy"} scalars.

        pairs: P×2 rows (a degraded view, its clean view) of ``features``; adds ``"pairwise"``,
        the mean of softplus(‖f_degraded‖ − ‖f_clean‖), weighted by ``config.pairwise``. Rows
        labelled −1 (clean views there only as partners) count in that term alone."""
        c = self.config
        if pairs is None:
            return self._classification(features, labels)
        norms = features.norm(dim=1)
        parts = self._classification(features[labels >= 0], labels[labels >= 0])
        parts["pairwise"] = ranking_loss(norms, pairs)
        parts["loss"] = parts["loss"] + c.pairwise * parts["pairwise"]
        return parts

    def _classification(self, features: torch.Tensor, labels: torch.Tensor
                        ) -> dict[str, torch.Tensor]:
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


def train_head(features: torch.Tensor, labels: np.ndarray, config: MagFaceConfig,
               log: Callable[[dict], None] = print, clean_rows: np.ndarray | None = None
               ) -> tuple[MagFaceNet, list[dict]]:
    """The CPU configuration: a MagFace head on frozen SFace head inputs (V×1152, from
    :func:`~fiqa.training.photo_views.cached_photo_views`). labels: V ints 0…C−1.
    clean_rows: V ints, the row of each view's clean view (itself for a clean one, −1 where
    none), needed when ``config.pairwise`` > 0: the clean partners of a batch's degraded views
    join it for the pairwise term.
    Returns the whole network (SFace backbone + trained head) and the epoch log."""
    torch.manual_seed(config.seed)
    net = _initial_net()
    loss_fn = MagFaceLoss(int(labels.max()) + 1, config)
    optimizer = torch.optim.AdamW([*net.head.parameters(), *loss_fn.parameters()], lr=config.lr,
                                  weight_decay=5e-4)
    y = torch.from_numpy(labels).long()
    generator = torch.Generator().manual_seed(config.seed)

    if config.pairwise > 0 and clean_rows is None:
        raise ValueError("a pairwise term needs clean_rows")
    partner = None if config.pairwise == 0 else torch.from_numpy(clean_rows).long()

    def batches() -> Iterator[tuple]:
        for batch in torch.randperm(len(y), generator=generator).split(config.batch_size):
            if len(batch) < 2:  # batch norm needs two rows
                continue
            if partner is None:
                yield features[batch].float(), y[batch]
                continue
            rows, pairs = with_clean_partners(batch, partner)
            yield (features[rows].float(),
                   torch.cat([y[batch], torch.full((len(pairs),), -1)]), pairs)

    per_epoch = math.ceil(len(y) / config.batch_size)
    history = _fit(net.head, loss_fn, optimizer, [config.lr], batches, per_epoch, config, log)
    return net.eval(), history


def train_on_views(views: PhotoViews, train: np.ndarray, config: MagFaceConfig,
                   log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """:func:`train_head` on the photo views where the V-bool ``train`` is true (their labels
    renumbered 0…C−1) → the network and the epoch log."""
    _, labels = np.unique(views.labels[train], return_inverse=True)
    return train_head(views.features[torch.from_numpy(train)], labels, config, log=log,
                      clean_rows=views.clean_partners(train))


def finetune(images: list[tuple[str, str]], config: MagFaceConfig, device: torch.device,
             cache: str | Path = ".fiqa-cache",
             log: Callable[[dict], None] = print) -> tuple[MagFaceNet, list[dict]]:
    """The GPU configuration: backbone and head trained together on photo views rendered afresh
    every step (:func:`~fiqa.training.photo_views.render_view`; ``config.backbone_lr`` for the
    backbone, ``config.lr`` for the head). images: (path, identity) training list; ``cache``
    holds the clean photos' detections."""
    if config.pairwise:
        raise ValueError("the pairwise term needs the cached views of the CPU configuration "
                         "(train_head), not views rendered afresh")
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

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(per_epoch):
            crops, labels, tries = [], [], 0
            while len(crops) < config.batch_size:
                tries += 1
                if tries > 20 * config.batch_size:
                    raise RuntimeError("no training photo gives a face: check the image list")
                i = usable[int(rng.integers(len(usable)))]
                photo = read_photo(images[i][0])
                degrade = rng.random() >= 1 / (config.views + 1)
                crop = None if photo is None else render_view(photo, geometry[i], rng, scorer,
                                                              degrade)[0]
                if crop is not None:
                    crops.append(crop)
                    labels.append(label_of[images[i][1]])
            yield (SFace.crop_spec.normalize(torch.cat(crops).to(device)),
                   torch.tensor(labels, device=device))

    history = _fit(net, loss_fn, optimizer, [config.backbone_lr, config.lr], batches, per_epoch,
                   config, log)
    return net.eval().cpu(), history


def _initial_net() -> MagFaceNet:
    """SFace's backbone (its weights) with a freshly initialised head."""
    net = MagFaceNet()
    net.backbone.load_state_dict(load_weights("sface"))
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
        for inputs, labels, *pairs in batches():
            embeddings = model(inputs)
            parts = loss_fn(embeddings, labels, *pairs)
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            schedule.step()
            trained = labels >= 0  # not the partners of a pairwise term
            parts["magnitude"] = embeddings[trained].norm(dim=1).mean()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.item() * int(trained.sum())
            count += int(trained.sum())
        history.append({"epoch": epoch + 1, **{k: v / count for k, v in sums.items()},
                        "seconds": round(time.monotonic() - started, 1)})
        log(history[-1])
    return history
