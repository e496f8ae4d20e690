"""Distil a recognizer (the teacher, dlib by default) into our face ViT.

Every step renders fresh views: each face aligned with random jitter, degraded at random (blur,
resolution, noise, JPEG, occlusion, darkness; ``clean`` of them left alone) and flipped half the
time. The student learns to map each view to the teacher's unit embedding of the *clean,
unjittered* face, centred on the mean over the training faces (dlib's unit embeddings of
different people have a mean cosine of 0.83; centred, 0.00), loss = 1 − cos: it must recover
identity from poor captures, the way the teacher reads good ones. Training checkpoints every
epoch and resumes from the last one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..recognizers import recognizer
from ..recognizers.face_vit import CROP_SPEC, FaceViT, ViTShape
from .data import FaceSet
from .degrade import random_degradations


@dataclass
class ViTConfig:
    """Everything that defines a run (recorded in the weights' manifest entry)."""

    dim: int = 144
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 3.0
    teacher: str = "dlib"
    epochs: int = 15  # passes over the training faces, one fresh view each
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps with a linear warm-up, then cosine decay
    jitter: float = 0.06  # alignment jitter, see FaceSet.crops
    clean: float = 0.5  # fraction of views left undegraded
    seed: int = 0

    def shape(self, embedding_dim: int) -> ViTShape:
        return ViTShape(dim=self.dim, depth=self.depth, heads=self.heads,
                        mlp_ratio=self.mlp_ratio, embedding_dim=embedding_dim)


def teacher_embeddings(faces: FaceSet, teacher: str, device: torch.device,
                       cache: str | Path | None = None) -> torch.Tensor:
    """N×D unit embeddings of every face, aligned without jitter, by recognizer ``teacher``
    (not centred); cached in folder ``cache`` by the teacher and the image list."""
    key = hashlib.sha1(json.dumps([teacher, faces.paths]).encode()).hexdigest()[:10]
    path = Path(cache) / f"teacher-{teacher}-{key}.pt" if cache else None
    if path and path.is_file():
        return torch.load(path)
    model = recognizer(teacher, device)
    targets = torch.cat([
        model.embed(faces.crops(np.arange(start, min(start + 256, len(faces))), model.crop_spec),
                    normalize=True).cpu()
        for start in range(0, len(faces), 256)])
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(targets, path)
    return targets


def render_batch(faces: FaceSet, index: np.ndarray, config: ViTConfig,
                 rng: np.random.Generator) -> torch.Tensor:
    """Training views of faces ``index``: N×3×112×112 uint8, jittered, degraded, half flipped."""
    crops = faces.crops(index, CROP_SPEC, jitter=config.jitter, generator=rng)
    crops, _ = random_degradations(crops, rng, clean=config.clean)
    flip = torch.from_numpy(rng.random(len(index)) < 0.5)
    crops[flip] = crops[flip].flip(-1)
    return crops


def distill(faces: FaceSet, targets: torch.Tensor, config: ViTConfig, device: torch.device,
            checkpoint: str | Path | None = None, log: Callable[[dict], None] = print
            ) -> tuple[FaceViT, list[dict]]:
    """Train a :class:`FaceViT` so that its embedding of any view of face i points along
    ``targets[i] − mean(targets)`` (targets: N×D unit teacher embeddings). Resumes from, and saves
    every epoch to, ``checkpoint``.

    Returns the student (eval mode, CPU) and one log row per epoch (loss, cosine, seconds)."""
    torch.manual_seed(config.seed)
    model = FaceViT(config.shape(targets.shape[1])).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(faces) / config.batch_size)
    total = config.epochs * per_epoch
    warm = max(1, round(config.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))))
    rng, history = np.random.default_rng(config.seed), []
    path = Path(checkpoint) if checkpoint else None
    if path and path.is_file():
        saved = torch.load(path, weights_only=False)
        if saved["config"] == dataclasses.asdict(config):
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            rng.bit_generator.state, history = saved["rng"], saved["history"]
            log({"resumed_after_epoch": len(history)})
    targets = F.normalize(targets - targets.mean(0), dim=1).to(device)
    for epoch in range(len(history), config.epochs):
        started, loss_sum, count = time.monotonic(), 0.0, 0
        model.train()
        for index in np.array_split(rng.permutation(len(faces)), per_epoch):
            x = CROP_SPEC.normalize(render_batch(faces, index, config, rng).to(device))
            cosine = F.cosine_similarity(model(x), targets[torch.from_numpy(index).to(device)])
            loss = (1 - cosine).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            loss_sum, count = loss_sum + loss.item() * len(index), count + len(index)
        history.append({"epoch": epoch + 1, "loss": loss_sum / count,
                        "cosine": 1 - loss_sum / count, "lr": schedule.get_last_lr()[0],
                        "seconds": round(time.monotonic() - started, 1)})
        log(history[-1])
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"config": dataclasses.asdict(config), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "rng": rng.bit_generator.state, "history": history}, path)
    return model.eval().cpu(), history

