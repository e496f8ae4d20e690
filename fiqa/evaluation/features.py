"""Per-image quality scores and embeddings for evaluation, cached on disk.

The cache is keyed by each file's content (sha1) and each model's version (its weights' sha256 and
fiqa's version), so re-running an evaluation with one more estimator computes only that
estimator's scores: detection results are cached too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from .. import __version__
from ..faces import Faces
from ..imageio import ImageReadError, read_image
from ..pipeline import Scorer
from ..weights import provenance

# A detector's cache entry per image (faces turned upright, fiqa.orientation): found, box (4),
# score, landmarks (10), image size (2).
SAVE_EVERY_S = 60.0  # a killed run loses at most about this much work


def content_key(path: str | Path) -> str:
    """sha1 of the file's bytes (the empty string for a file that cannot be read)."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


class FeatureCache:
    """One ``<model id>.npz`` per model in ``folder``: keys (content sha1) → value vectors."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tables: dict[str, dict[str, np.ndarray]] = {}
        self.warnings: list[str] = []  # damaged files set aside, for the caller to show

    def table(self, model: str) -> dict[str, np.ndarray]:
        """The cached values of ``model`` (loaded once). A damaged file is renamed
        ``<model>.npz.corrupt``, noted in :attr:`warnings`, and its values computed again."""
        if model not in self._tables:
            self._tables[model] = self._read(model)
        return self._tables[model]

    def _read(self, model: str) -> dict[str, np.ndarray]:
        path = self.folder / f"{model}.npz"
        if not path.is_file():
            return {}
        try:
            with np.load(path) as data:
                return dict(zip(data["keys"].tolist(), data["values"], strict=True))
        except Exception as error:  # noqa: BLE001 - any damage: recompute
            path.replace(path.with_name(path.name + ".corrupt"))
            self.warnings.append(f"cache file {path} was damaged ({type(error).__name__}): set "
                                 f"aside as {path.name}.corrupt and recomputed")
            return {}

    def save(self, model: str) -> None:
        """Write ``model``'s table, merged with what other runs saved meanwhile (atomically: a
        killed run keeps the previous file)."""
        table = self.table(model)
        if not table:
            return
        table.update({k: v for k, v in self._read(model).items() if k not in table})
        keys = np.array(list(table))
        values = np.stack(list(table.values())).astype(np.float32)
        partial = self.folder / f"{model}.{os.getpid()}.partial.npz"  # concurrent runs: own file
        np.savez(partial, keys=keys, values=values)
        partial.replace(self.folder / f"{model}.npz")


def model_id(name: str, provenance: list[dict], options: dict | None = None) -> str:
    """``name-<hash>`` of the weights' sha256, the options and fiqa's version."""
    text = json.dumps([[p.get("sha256") for p in provenance], options or {}, __version__],
                      sort_keys=True, default=str)
    return f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def compute_features(paths: Sequence[str], scorer: Scorer, cache: FeatureCache,
                     progress: Progress | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Quality scores and embeddings of ``paths`` (one face each, the largest), from the cache
    where present.

    Returns ``({column: N values or N×D}, stats)``: a column per estimator (its name: raw
    scores) and per recognizer (:func:`embedding_column`: embeddings), NaN where an image is
    unreadable or has no face; stats counts the cache hits and misses per column.
    """
    keys = [content_key(p) for p in paths]
    detector = detector_id(scorer)  # the faces every value was computed on
    models = {**{e.name: model_id(e.name, e.provenance(), {
                  **_options(e), "crop": repr(e.crop_spec), "faces": detector})
                 for e in scorer.estimators},
              **{embedding_column(r.name): model_id(r.name, r.provenance(), {
                  "precision": r.precision, "crop": repr(r.crop_spec), "faces": detector})
                 for r in scorer.recognizers}}
    # Images to measure: readable, and not already known to show no face.
    wanted = [i for i, k in enumerate(keys)
              if k and not _known_without_face(cache.table(detector).get(k))]
    stats = {name: {"hits": sum(keys[i] in cache.table(m) for i in wanted), "misses": 0}
             for name, m in models.items()}
    missing = {name for name, m in models.items()
               if any(keys[i] not in cache.table(m) for i in wanted)}
    todo = [i for i in wanted if any(keys[i] not in cache.table(models[name]) for name in missing)]
    worker = copy.copy(scorer)  # runs only the models with something missing
    worker.estimators = [e for e in scorer.estimators if e.name in missing]
    worker.recognizers = [r for r in scorer.recognizers if embedding_column(r.name) in missing]
    task = progress.add_task("features", total=len(todo)) if progress else None
    saved = time.monotonic()
    for start in range(0, len(todo), scorer.batch_size):
        chunk = todo[start:start + scorer.batch_size]
        _compute_chunk([paths[i] for i in chunk], [keys[i] for i in chunk], worker, cache,
                       models, detector, stats)
        last = start + scorer.batch_size >= len(todo)
        if last or time.monotonic() - saved > SAVE_EVERY_S:  # whole tables: not every batch
            for model in [*models.values(), detector]:
                cache.save(model)
            saved = time.monotonic()
        if progress:
            progress.advance(task, len(chunk))
    columns = {}
    for name, model in models.items():
        table = cache.table(model)
        width = next((len(v) for v in table.values()), 1)
        columns[name] = np.stack([table.get(k, np.full(width, np.nan)) for k in keys])
        if width == 1:
            columns[name] = columns[name][:, 0]
    return columns, stats


def detector_id(scorer: Scorer) -> str:
    """The cache entry of ``scorer``'s detector and face choice: its name, weights, the choice
    (when not the largest face) and fiqa's version."""
    name = scorer.detector_name
    choice = {} if scorer.face == "largest" else {"face": scorer.face}
    return model_id(f"{name}-upright-faces", [provenance(name)], choice)


def embedding_column(recognizer: str) -> str:
    """The column of recognizer ``recognizer``'s embeddings (an estimator may share its name)."""
    return f"{recognizer}.embedding"


def _options(estimator) -> dict:
    """What tells an estimator's values apart besides its weights: its attributes, less the
    device, and less the precision where it is fp32 (the keys made before precisions existed)."""
    return {key: value for key, value in vars(estimator).items()
            if key != "device" and (key, value) != ("precision", "fp32")}


def _known_without_face(record: np.ndarray | None) -> bool:
    return record is not None and record[0] == 0


def cached_faces(paths: Sequence[str], scorer: Scorer, cache: FeatureCache,
                 progress: Progress | None = None) -> list[Faces]:
    """The largest face of each of ``paths`` in original pixels (an empty :class:`Faces` where the
    image is unreadable or shows none), detected by ``scorer`` once and then read from ``cache``."""
    keys = [content_key(p) for p in paths]
    detector = detector_id(scorer)
    detections = cache.table(detector)
    todo = [i for i, key in enumerate(keys) if key and key not in detections]
    task = progress.add_task("detection", total=len(todo)) if progress else None
    saved = time.monotonic()
    for start in range(0, len(todo), scorer.batch_size):
        chunk = todo[start:start + scorer.batch_size]
        images, image_keys = _read_or_record([paths[i] for i in chunk], [keys[i] for i in chunk],
                                             scorer, detections)
        _detect(images, image_keys, scorer, detections)
        if start + scorer.batch_size >= len(todo) or time.monotonic() - saved > SAVE_EVERY_S:
            cache.save(detector)
            saved = time.monotonic()
        if progress:
            progress.advance(task, len(chunk))
    empty = np.zeros(18, np.float32)
    return [_faces_of(detections.get(key, empty), scorer.detector_name) for key in keys]


def _read_or_record(paths: list[str], keys: list[str], scorer: Scorer,
                    detections: dict[str, np.ndarray]) -> tuple[list, list[str]]:
    """The readable images and their keys; unreadable ones are recorded as showing no face."""
    images, image_keys = [], []
    for path, key in zip(paths, keys, strict=True):
        try:
            images.append(read_image(path, scorer.max_pixels, scorer.max_side))
            image_keys.append(key)
        except ImageReadError:
            detections[key] = np.zeros(18, np.float32)
    return images, image_keys


def _detect(images: list, keys: list[str], scorer: Scorer,
            detections: dict[str, np.ndarray]) -> None:
    """Detect the faces of the images not yet in ``detections`` and record the largest."""
    unseen = [i for i, key in enumerate(keys) if key not in detections]
    for i, (faces, _) in zip(unseen, scorer.locate([images[i] for i in unseen]), strict=True):
        record = np.zeros(18, np.float32)
        if len(faces):
            record[:] = np.concatenate([[1], faces.boxes[0], faces.scores[:1],
                                        faces.landmarks[0].ravel(), faces.image_sizes[0]])
        detections[keys[i]] = record


def _faces_of(record: np.ndarray, detector: str) -> Faces:
    """A detection record of ``detector`` → one face (original pixels), or none."""
    if record[0] == 0:
        return Faces.concat([])
    return Faces(record[None, 1:5], record[5:6], record[None, 6:16].reshape(1, 5, 2),
                 record[None, 16:18], detector=detector)


def _compute_chunk(paths: list[str], keys: list[str], scorer: Scorer, cache: FeatureCache,
                   models: dict[str, str], detector: str, stats: dict) -> None:
    detections = cache.table(detector)
    images, image_keys = _read_or_record(paths, keys, scorer, detections)
    _detect(images, image_keys, scorer, detections)
    located = []
    for image, key in zip(images, image_keys, strict=True):
        faces = _faces_of(detections[key], scorer.detector_name)
        located.append((faces, faces.landmarks * image.scale))
    measures = scorer.measure(images, [f for f, _ in located], [p for _, p in located])
    for key, (faces, _), values in zip(image_keys, located, measures, strict=True):
        if len(faces) == 0:
            continue
        for estimator in scorer.estimators:
            cache.table(models[estimator.name])[key] = values[estimator.name][:1]
            stats[estimator.name]["misses"] += 1
        for model in scorer.recognizers:
            vector = np.array([values[f"{model.name}.{i}"][0] for i in range(model.dim)])
            cache.table(models[embedding_column(model.name)])[key] = vector
            stats[embedding_column(model.name)]["misses"] += 1
