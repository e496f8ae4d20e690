"""The recognizability index (RI) target and the training of its regression head.

For a view with normalised embedding e of identity y, a UI centre u and identity prototypes p_k
(the normalised mean embedding of the identity's clean views; for its own identity, without the
view's own image):

    proximity  a = ∠(e, u) in degrees                       criterion (i): far from unrecognisable
    margin     c = cos(e, p_y) − max_{k≠y} cos(e, p_k)       criterion (ii): nearer its own class
    RI         = (z(c) + w·z(a)) / (1 + w)

z standardises over the training views (mean 0, sd 1); w = 1 weighs both criteria equally. Chai et
al. (CVPR 2023) build their index from the same two criteria; this combination is ours. For SFace
``scripts/train_ri.py`` uses w = 0: its proximity ranks held-out views poorly, and every weight
above 0 made the head rank them worse (docs/ri.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..estimators.ri import RIHead

if TYPE_CHECKING:
    from .photo_views import PhotoViews


def identity_margins(embeddings: torch.Tensor, labels: np.ndarray, images: np.ndarray,
                     clean: np.ndarray) -> np.ndarray:
    """Criterion (ii) for every view: cos(e, own prototype without the view's image) − the largest
    cos(e, other prototype). embeddings N×D (any norm), labels N (0…C−1), images N (which image
    each view shows), clean N bools (the views that make the prototypes) → N floats, NaN where the
    identity has no other clean image."""
    e = F.normalize(embeddings.float(), dim=1)
    classes = int(labels.max()) + 1
    y, image = torch.from_numpy(labels).long(), torch.from_numpy(images).long()
    keep = torch.from_numpy(clean)
    class_sum = torch.zeros(classes, e.shape[1]).index_add_(0, y[keep], e[keep])
    class_count = torch.bincount(y[keep], minlength=classes).float()
    image_sum = torch.zeros(int(images.max()) + 1, e.shape[1]).index_add_(0, image[keep], e[keep])
    image_count = torch.bincount(image[keep], minlength=int(images.max()) + 1).float()
    cos = e @ F.normalize(class_sum, dim=1).T  # N×C, full prototypes
    own = F.normalize(class_sum[y] - image_sum[image], dim=1)  # without the view's own image
    alone = class_count[y] - image_count[image] == 0  # no other clean image of the identity
    own_cos = (e * own).sum(1)
    others = cos.scatter(1, y[:, None], -math.inf).max(1).values
    return torch.where(alone, torch.nan, own_cos - others).numpy().astype(np.float64)


def ri_targets(embeddings: torch.Tensor, labels: np.ndarray, images: np.ndarray,
               clean: np.ndarray, centre: torch.Tensor,
               proximity_weight: float = 1.0) -> dict[str, np.ndarray]:
    """embeddings N×D (any norm), labels N (0…C−1), images N (which image each view shows),
    clean N bools (views that make the prototypes), centre D → proximity, margin and RI, N each.
    ``proximity_weight`` w weighs criterion (i): RI = (z(c) + w·z(a)) / (1 + w); 1 is the
    equal-weight index."""
    e = F.normalize(embeddings.float(), dim=1)
    proximity = torch.rad2deg(torch.arccos((e @ F.normalize(centre, dim=0)).clamp(-1, 1)))
    a = proximity.numpy().astype(np.float64)
    c = identity_margins(embeddings, labels, images, clean)
    ri = (_z(c) + proximity_weight * _z(a)) / (1 + proximity_weight)
    return {"proximity": a, "margin": c, "ri": ri}


def standardised_margins(embeddings: torch.Tensor, views: PhotoViews) -> np.ndarray:
    """z(c) of :func:`identity_margins` for V×D ``embeddings`` of ``views`` (prototypes from the
    clean views) → V floats, NaN where the identity has no other clean image: the RI with
    w = 0 under another recognizer, to average with SFace's into a target of several teachers."""
    return _z(identity_margins(embeddings, views.labels, views.image, views.view == 0))


def _z(x: np.ndarray) -> np.ndarray:
    return (x - np.nanmean(x)) / np.nanstd(x)


def train_ri_head(features: torch.Tensor, targets: np.ndarray, epochs: int = 20,
                  batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
                  log: Callable[[dict], None] = print) -> tuple[RIHead, list[dict]]:
    """A :class:`RIHead` fitted by mean squared error to ``targets`` (NaN targets skipped) from
    SFace head inputs (N×1152). Returns the head (eval mode) and the per-epoch log."""
    torch.manual_seed(seed)
    known = ~np.isnan(targets)
    x, t = features[torch.from_numpy(known)], torch.from_numpy(targets[known]).float()
    head = RIHead()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(t) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        head.train()
        total = 0.0
        for batch in torch.randperm(len(t), generator=generator).split(batch_size):
            loss = F.mse_loss(head(x[batch].float()), t[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        history.append({"epoch": epoch + 1, "mse": total / len(t)})
        log(history[-1])
    return head.eval(), history
