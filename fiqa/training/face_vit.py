"""Distil SFace into our hybrid face ViT, on training photos degraded as whole photographs.

The views are those of :func:`~fiqa.training.photo_views.cached_photo_views` (every CelebA and FIW
photo clean and under two degradation chains of the training recipe, re-detected and aligned), so
blur, noise and JPEG land where a camera puts them. The student learns to map every view of a
photo to SFace's unit embedding of the *clean* view of that photo, centred on the mean over the
training views and renormalised; loss = 1 − cos: it must recover identity from poor captures the
way the teacher reads good ones.

The stem (SFace's first layers) is frozen. In the CPU configuration its output maps are computed
once and cached on disk (``precompute``), so an epoch costs only the transformer; otherwise the
stem runs on the device every step. With ``flips`` half of each batch's views are mirrored (in the
precomputed path the mirrored crops' maps are cached too). Training checkpoints every epoch and
resumes from the last one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from ..crop import resize_crops
from ..device import emulated_precision, resolve_device
from ..recognizers import recognizer
from ..recognizers.face_vit import CROP_SPEC, FaceViT, ViTShape
from ..recognizers.sface import SFaceStem
from .photo_views import PhotoViews


@dataclass
class ViTConfig:
    """Everything that defines a run (recorded in the weights' manifest entry)."""

    stem_layers: int = 23  # SFace's convolutions in front, frozen (every stage down to 1/8)
    dim: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    flatten: bool = True
    epochs: int = 6  # passes over the training views
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps with a linear warm-up, then cosine decay
    precompute: bool = True  # stem maps computed once and cached; False: the stem on the device
    flips: bool = False  # half of each batch mirrored (precompute: the mirrored maps cached too)
    # Weight of the term tying the last block's mean attention logit (the ATTN-FIQA score) to a
    # per-view recognisability (1 − Pearson correlation over the batch), and which: "student",
    # the student's own cosine to its target; "teacher", each of ``teachers``' cosine between the
    # view and the centre of its person's other photos, standardised and averaged
    # (:func:`teachers_recognisability`).
    attention_weight: float = 0.5
    attention_target: str = "teacher"
    # comma-separated recognizers whose recognisability the attention term learns (averaged);
    # FaceRes as the second judge moved the score most against recognizers other than SFace;
    # "student": the student's own embeddings of the views, taken anew before every epoch but
    # the first (which learns from the others only)
    teachers: str = "sface,faceres"
    holdout: int = 300  # identities kept out of training, to report the cosine on
    seed: int = 0

    def shape(self, embedding_dim: int) -> ViTShape:
        return ViTShape(dim=self.dim, depth=self.depth, heads=self.heads,
                        mlp_ratio=self.mlp_ratio, embedding_dim=embedding_dim,
                        stem_layers=self.stem_layers, flatten=self.flatten)


def clean_embeddings(views: PhotoViews) -> torch.Tensor:
    """V×128: for every view, SFace's unit embedding of the clean view of its photo."""
    return F.normalize(views.embeddings, dim=1)[torch.from_numpy(_clean_rows(views))]


def _clean_rows(views: PhotoViews) -> np.ndarray:
    """V indices: for every view, the row of the clean view of its photo."""
    clean = np.flatnonzero(views.view == 0)
    row_of_image = np.full(len(views.images), -1)
    row_of_image[views.image[clean]] = clean
    return row_of_image[views.image]


def clean_targets(views: PhotoViews) -> torch.Tensor:
    """V×128 training targets: :func:`clean_embeddings` centred on their mean over all views and
    renormalised (the student's embedding space)."""
    embeddings = clean_embeddings(views)
    return F.normalize(embeddings - embeddings.mean(0), dim=1)


def teacher_recognisability(views: PhotoViews, embeddings: torch.Tensor | None = None
                            ) -> torch.Tensor:
    """V cosines between a teacher's unit embedding of each view and the mean unit embedding of
    the clean views of the *other* photos of its person (NaN for a person of one photo): how well
    the teacher recognises the view, with no quality label and without the view's own photo.
    embeddings: the teacher's V×D embeddings of the views; SFace's (``views.embeddings``) when
    None."""
    unit = F.normalize(views.embeddings if embeddings is None else embeddings.float().cpu(), dim=1)
    clean = torch.from_numpy(views.view == 0)
    labels = torch.from_numpy(views.labels)
    sums = torch.zeros(len(views.identities), unit.shape[1]).index_add_(0, labels[clean],
                                                                       unit[clean])
    counts = torch.bincount(labels[clean], minlength=len(views.identities))
    own_clean = torch.from_numpy(_clean_rows(views))
    others = sums[labels] - unit[own_clean]  # this photo's clean view taken out
    cosine = F.cosine_similarity(unit, others, dim=1)
    return torch.where(counts[labels] > 1, cosine, torch.nan)


def teachers_recognisability(views: PhotoViews, teachers: str, cache: str | Path,
                             device: str | torch.device = "cpu",
                             student: torch.Tensor | None = None) -> torch.Tensor:
    """V values: the mean over the comma-separated recognizers ``teachers`` of each one's
    :func:`teacher_recognisability`, standardised over the views (NaN for a person of one
    photo). SFace's reads the views' embeddings; the others' embed the crops
    (:func:`view_embeddings`, cached in ``cache``); the name "student" reads the V×D embeddings
    ``student``, and is left out while they are None, so ``teachers`` must name another."""
    names = teachers.split(",")
    if not set(names) - {"student"}:
        raise ValueError(f"teachers must name a recognizer besides student (the first epoch "
                         f"learns from the others only), got {teachers!r}")
    parts = []
    for name in names:
        if name == "student" and student is None:
            continue
        embeddings = (student if name == "student"
                      else teacher_embeddings(views, name, cache, device))
        cosine = teacher_recognisability(views, embeddings)
        known = cosine[~cosine.isnan()]
        parts.append((cosine - known.mean()) / known.std())
    return torch.stack(parts).mean(0)


def teacher_embeddings(views: PhotoViews, teacher: str, cache: str | Path,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """V×D float32 embeddings of the views by recognizer ``teacher``: SFace's are the views' own
    (``views.embeddings``), any other's :func:`view_embeddings` (cached in ``cache``)."""
    if teacher == "sface":
        return views.embeddings.float()
    return torch.from_numpy(np.array(view_embeddings(views.crops, teacher, cache, device),
                                     dtype=np.float32))


def stem_maps(crops: torch.Tensor, stem: SFaceStem, cache: str | Path,
              batch: int = 128) -> np.ndarray:
    """V×C×G×G float16 stem outputs of V×3×112×112 uint8 ``crops``, in a memory-mapped file in
    folder ``cache`` keyed by the crops and the stem; a stopped run resumes where it was."""
    side = crops.shape[-1] // stem.stride
    device = next(stem.parameters()).device
    return _cached_rows(crops, "vit-stem", repr(stem), (stem.channels, side, side),
                        lambda part: stem(CROP_SPEC.normalize(part.to(device))), cache, batch)


def view_embeddings(crops: torch.Tensor, teacher: str, cache: str | Path,
                    device: str | torch.device = "cpu", batch: int = 128) -> np.ndarray:
    """V×D float16 embeddings by recognizer ``teacher`` of V×3×112×112 uint8 ``crops`` aligned
    to the ArcFace template (SFace's crops), resized to the recognizer's crop size; in bf16
    where the device has it natively, else fp32; cached and resumable like :func:`stem_maps`.
    Raises ValueError for a recognizer whose crop is not the ArcFace template without padding
    (dlib's)."""
    device = resolve_device(device)
    model = recognizer(teacher, device, "fp32" if emulated_precision(device, "bf16") else "bf16")
    spec = model.crop_spec
    if spec.template != CROP_SPEC.template or spec.padding:
        raise ValueError(f"{teacher}'s crop is not the ArcFace template of the training crops")

    def embed(part: torch.Tensor) -> torch.Tensor:
        if spec.size != part.shape[-1]:
            part = resize_crops(part, spec.size)
        return model.embed(part)

    return _cached_rows(crops, f"{teacher}-embeddings", repr(model), (model.dim,), embed, cache,
                        batch)


def _cached_rows(crops: torch.Tensor, name: str, model: str, shape: tuple[int, ...],
                 compute: Callable[[torch.Tensor], torch.Tensor], cache: str | Path,
                 batch: int) -> np.ndarray:
    """V×``shape`` float16 rows ``compute(crops[i:i + batch])`` in a memory-mapped file
    ``<cache>/<name>-<key>.npy``, the key hashing the crops and ``model`` (a description of what
    computes them), written as they go; a stopped run resumes where it was."""
    digest = hashlib.sha1(crops.contiguous().numpy())  # hashed in place, no copy of the crops
    digest.update(model.encode())
    key = digest.hexdigest()[:10]
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    path, done = folder / f"{name}-{key}.npy", folder / f"{name}-{key}.done"
    start = int(done.read_text()) if done.is_file() else 0
    if start >= len(crops) and path.is_file():
        return np.load(path, mmap_mode="r")
    rows = np.lib.format.open_memmap(path, mode="r+" if start else "w+", dtype=np.float16,
                                     shape=(len(crops), *shape))
    with torch.inference_mode():
        for first in range(start, len(crops), batch):
            rows[first:first + batch] = compute(crops[first:first + batch]).half().cpu().numpy()
            if (first // batch) % 16 == 15 or first + batch >= len(crops):
                rows.flush()
                done.write_text(str(min(first + batch, len(crops))))
    del rows
    return np.load(path, mmap_mode="r")


def distill(views: PhotoViews, config: ViTConfig, device: torch.device,
            checkpoint: str | Path | None = None, cache: str | Path = ".fiqa-cache/train",
            log: Callable[[dict], None] = print) -> tuple[FaceViT, list[dict]]:
    """Train a :class:`FaceViT` on ``views`` (with crops) towards :func:`clean_targets`, keeping
    ``config.holdout`` identities out. Resumes from, and saves every epoch to, ``checkpoint``.

    Returns the student (eval mode, CPU) and one log row per epoch (loss, cosine, seconds; the
    last also :func:`held_out_report`'s figures on the held-out people)."""
    if views.crops is None:
        raise ValueError("the views need their crops: cached_photo_views(..., crops=True)")
    if config.attention_target not in ("student", "teacher"):
        raise ValueError(f"attention_target must be student or teacher, got "
                         f"{config.attention_target!r}")
    torch.manual_seed(config.seed)
    targets = clean_targets(views).to(device)
    recognisability = (teachers_recognisability(views, config.teachers, cache, device).to(device)
                       if config.attention_target == "teacher" and config.attention_weight
                       else None)  # no attention term: no teacher embeddings to compute
    model = FaceViT(config.shape(targets.shape[1]))
    model.stem.load_state_dict(SFaceStem.pretrained(config.stem_layers).state_dict())
    model = model.to(device)
    maps = None
    if config.precompute:
        maps = [stem_maps(crops, model.stem, cache)
                for crops in ((views.crops, views.crops.flip(-1)) if config.flips
                              else (views.crops,))]
    held = views.held_out(config.holdout, config.seed) if config.holdout else np.zeros(
        len(views), bool)
    train = np.flatnonzero(~held)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(train) / config.batch_size)
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

    embed = _encoder(model, views, maps, device, config.flips)
    learns_own = recognisability is not None and "student" in config.teachers.split(",")

    for epoch in range(len(history), config.epochs):
        started, loss_sum, cosine_sum = time.monotonic(), 0.0, 0.0
        if learns_own and epoch > 0:  # the student's own recognisability as it stands now
            own, _ = _embed_rows(model, embed, np.arange(len(views)))
            recognisability = teachers_recognisability(views, config.teachers, cache, device,
                                                       own).to(device)
        model.train()
        for index in np.array_split(rng.permutation(train), per_epoch):
            index = np.sort(index)  # reads the memory-mapped maps in order
            embeddings, scores = embed(index, rng)
            cosine = F.cosine_similarity(embeddings, targets[torch.from_numpy(index)])
            loss = (1 - cosine).mean()
            if config.attention_weight:
                wanted = (cosine.detach() if recognisability is None
                          else recognisability[torch.from_numpy(index).to(device)])
                known = ~wanted.isnan()
                loss = loss + config.attention_weight * (1 - _pearson(scores[known],
                                                                      wanted[known]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
            cosine_sum += cosine.sum().item()
        history.append({"epoch": epoch + 1, "loss": loss_sum / len(train),
                        "cosine": cosine_sum / len(train), "lr": schedule.get_last_lr()[0],
                        "seconds": round(time.monotonic() - started, 1)})
        if epoch + 1 == config.epochs and held.any():
            history[-1] |= held_out_report(model, embed, targets, views, held,
                                           held_out_judges(views, cache, device))
        log(history[-1])
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"config": dataclasses.asdict(config), "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "rng": rng.bit_generator.state, "history": history}, path)
    return model.eval().cpu(), history


def _encoder(model: FaceViT, views: PhotoViews, maps: list[np.ndarray] | None,
             device: torch.device, flips: bool = False
             ) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``embed(index, rng=None)``: the embeddings and ATTN-FIQA scores (mean last-block logit) of
    views ``index``, from the cached stem ``maps`` (of the crops, and with ``flips`` of the
    mirrored crops), or (None) running the stem on the crops; with ``flips`` and ``rng`` (a
    training step) half of the views are mirrored."""

    def embed(index: np.ndarray, rng: np.random.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        turned = (rng.random(len(index)) < 0.5 if flips and rng is not None
                  else np.zeros(len(index), bool))
        if maps is not None:
            stem = torch.from_numpy(maps[0][index])
            if turned.any():
                stem[torch.from_numpy(turned)] = torch.from_numpy(maps[1][index[turned]])
            stem = stem.to(device).float()
        else:
            crops = views.crops[torch.from_numpy(index)].to(device)
            mirrored = torch.from_numpy(turned).to(device)
            crops[mirrored] = crops[mirrored].flip(-1)
            with torch.no_grad():
                stem = model.stem(CROP_SPEC.normalize(crops))
        return model.encode(stem, "mean")

    return embed


def evaluate_held_out(model: FaceViT, views: PhotoViews, config: ViTConfig,
                      cache: str | Path = ".fiqa-cache/train",
                      device: str | torch.device = "cpu") -> dict:
    """:func:`held_out_report` of a trained ``model`` on the identities ``config`` holds out."""
    device = resolve_device(device)
    model = model.to(device).eval()
    maps = [stem_maps(views.crops, model.stem, cache)] if config.precompute else None
    held = views.held_out(config.holdout, config.seed)
    return held_out_report(model, _encoder(model, views, maps, device),
                           clean_targets(views).to(device), views, held,
                           held_out_judges(views, cache, device))


def student_outputs(model: FaceViT, views: PhotoViews, index: np.ndarray,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The student's len(index)×D embeddings and ATTN-FIQA scores (mean last-block logit) of
    views ``index``, its stem run on their crops (no cached maps); ``model`` is moved to
    ``device`` and left in eval mode."""
    device = resolve_device(device)
    model = model.to(device)
    return _embed_rows(model, _encoder(model, views, None, device), index)


def held_out_judges(views: PhotoViews, cache: str | Path, device: str | torch.device
                    ) -> dict[str, torch.Tensor]:
    """The recognizers besides the student that judge the held-out report (SFace and FaceRes,
    as on LFW): name → V×D embeddings of the views (:func:`teacher_embeddings`)."""
    return {name: teacher_embeddings(views, name, cache, device) for name in ("sface", "faceres")}


def held_out_report(model: FaceViT, embed: Callable, targets: torch.Tensor, views: PhotoViews,
                    held: np.ndarray, judges: dict[str, torch.Tensor], seed: int = 0) -> dict:
    """Development figures on the held-out identities' views (people never trained on, no LFW):
    the mean cosine to the targets of the clean and of the degraded views; the ROC AUC of the
    attention score for clean against degraded; and the score's normalised pAUC (FNMR 10 %,
    discard ≤ 0.2) over the genuine comparisons judged by the student (``vit``) and by each of
    ``judges`` (name → V×D embeddings of all the views), on the clean photos (``clean``, as
    LFW's set (a)) and on one view a photo, a seeded half of them degraded (``mixed``, as set
    (b))."""
    index = np.flatnonzero(held)
    embeddings, scores = _embed_rows(model, embed, index)
    cosine = F.cosine_similarity(embeddings, targets[torch.from_numpy(index)]).cpu().numpy()
    score = scores.cpu().numpy()
    units = {"vit": F.normalize(embeddings.float().cpu(), dim=1)} | {
        name: F.normalize(embedding[torch.from_numpy(index)], dim=1)
        for name, embedding in judges.items()}
    clean = views.view[index] == 0
    report = {"held_out_clean": float(cosine[clean].mean()),
              "held_out_degraded": float(cosine[~clean].mean()),
              "held_out_attention_auc": float(roc_auc_score(clean, score)) if 0 < clean.sum() < len(
                  clean) else float("nan")}
    paucs = views.genuine_paucs(index, score, units, seed)
    return report | {f"held_out_pauc_{key}": value for key, value in paucs.items()}


def _embed_rows(model: FaceViT, embed: Callable, index: np.ndarray
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's len(index)×D embeddings and attention scores of views ``index`` (in
    batches of about 256, eval mode); ``model`` is left in eval mode."""
    model.eval()
    embeddings, scores = [], []
    with torch.inference_mode():
        for part in np.array_split(index, max(1, len(index) // 256)):
            embedding, score = embed(part)
            embeddings.append(embedding)
            scores.append(score)
    return torch.cat(embeddings), torch.cat(scores)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of two N-vectors (0 where either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-8)
