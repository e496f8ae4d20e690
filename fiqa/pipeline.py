"""From paths to table rows: decode → detect → align → estimate, batched, failures as statuses.

``Scorer.run(paths)`` yields, per image and in input order, the rows of its faces. An image that
cannot be read gets one ``unreadable: <reason>`` row, one without a face one ``no_face`` row, and a
batch that fails unexpectedly is retried image by image so only the culprit gets an ``error`` row.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from .calibration import Calibration
from .crop import DEFAULT_CROP, CropSpec, align_faces
from .detectors import DEFAULT_DETECTOR, create_detector
from .device import resolve_device, to_device
from .estimators import QualityEstimator, create
from .faces import Faces
from .imageio import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    LoadedImage,
    decode_or_status,
    pixel_tensor,
)
from .orientation import detect_upright
from .recognizers import Recognizer, recognizer

FACE_CHOICES = ("largest", "central")
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
FACE_COLUMNS = ["path", "face", "status", "x1", "y1", "x2", "y2", "det_score", "rotated",
                *LANDMARK_COLUMNS]


class Scorer:
    """Scores and embeds every face of many images with estimators and recognizers.

    estimators: names (see ``fiqa.list_estimators()``) or ready estimator objects.
    recognizers: names (see ``fiqa.list_recognizers()``) or ready recognizer objects; each adds
        columns ``<name>.0`` … ``<name>.<dim-1>`` holding the face's embedding.
    batch_size: images per detection batch and faces per model batch.
    aligned: inputs are already crops aligned to the default 112×112 template (no detection).
    all_faces: score every detected face instead of one.
    face: which one face an image gives: ``"largest"``, or ``"central"`` (the face whose box
        centre is nearest the image centre: the subject of a centred dataset like LFW, where a
        bystander is sometimes larger).
    detector: ``"mtcnn"`` or ``"yunet"`` (see :mod:`fiqa.detectors`).
    calibrations: :class:`~fiqa.calibration.Calibration` maps of some of the estimators; each
        adds a column ``<estimator>.fnmr``, the expected FNMR of the face's genuine comparisons.
    precision: fp32, or bf16/fp16 autocast for the networks of the estimators and recognizers
        given by name (ready objects keep their own; the detector stays fp32, where its landmarks
        hold): for GPUs, and for CPUs with bf16 instructions (AVX512-BF16 or AMX)
        (docs/benchmarks.md).

    On a CPU, call :func:`fiqa.device.retain_freed_memory` once first, as ``fiqa``'s commands do
    (faster: the networks' passes reuse freed pages).
    """

    def __init__(
        self,
        estimators: Sequence[str | QualityEstimator] = ("baseline",),
        recognizers: Sequence[str | Recognizer] = (),
        device: str | torch.device = "auto",
        batch_size: int = 32,
        aligned: bool = False,
        all_faces: bool = False,
        max_side: int = DEFAULT_MAX_SIDE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detector: str = DEFAULT_DETECTOR,
        face: str = "largest",
        calibrations: Sequence[Calibration] = (),
        precision: str = "fp32",
    ) -> None:
        if face not in FACE_CHOICES:
            raise ValueError(f"face must be one of {', '.join(FACE_CHOICES)}, got {face!r}")
        self.device, self.precision = resolve_device(device), precision
        self.estimators = [e if isinstance(e, QualityEstimator)
                           else create(e, self.device, precision=precision) for e in estimators]
        names = [e.name for e in self.estimators]
        if len(set(names)) < len(names):
            raise ValueError(f"two estimators give the same column: {names} (a variant's column "
                             "carries its spec: ri-proximity:sface)")
        self.recognizers = [r if isinstance(r, Recognizer)
                            else recognizer(r, self.device, precision) for r in recognizers]
        self.batch_size, self.aligned, self.all_faces = batch_size, aligned, all_faces
        self.face = face
        self.max_side, self.max_pixels = max_side, max_pixels
        self.detector_name = detector
        self.detector = None if aligned else create_detector(detector, self.device)
        self.calibrations = {c.estimator: c for c in calibrations}
        unknown = set(self.calibrations) - {e.name for e in self.estimators}
        if unknown:
            raise ValueError(f"calibrations of estimators not scored: {sorted(unknown)} (add them "
                             "to the estimators)")

    @property
    def columns(self) -> list[str]:
        """Column names of the rows, in order."""
        columns = list(FACE_COLUMNS)
        for estimator in self.estimators:
            columns += [estimator.name, f"{estimator.name}.quality"]
            if estimator.name in self.calibrations:
                columns.append(f"{estimator.name}.fnmr")
            columns += [f"{estimator.name}.{c}" for c in estimator.components]
        for model in self.recognizers:
            columns += [f"{model.name}.{i}" for i in range(model.dim)]
        return columns

    def run(self, paths: Iterable[str | Path], workers: int = 2, processes: bool = False
            ) -> Iterator[list[dict]]:
        """Rows of each image of ``paths``, in order; images are decoded by ``workers`` threads,
        or worker processes with ``processes`` (see :meth:`run_sources`)."""
        return self.run_sources(((str(path), path) for path in paths), workers,
                                processes=processes)

    def run_sources(self, sources: Iterable[tuple[str, Any]], workers: int = 2,
                    decode: Callable[[Any], LoadedImage | str] | None = None,
                    processes: bool = False) -> Iterator[list[dict]]:
        """Rows of each ``(name, source)`` of ``sources``, in order: ``decode(source)`` (default
        :meth:`decode`: a path or an open binary file) gives the image or its status, in
        ``workers`` threads with a read-ahead of two batches; ``name`` fills the path column.

        processes: decode in ``workers`` worker processes instead (started by spawning, so a
        script needs Python's ``if __name__ == "__main__":`` guard; ``decode`` and the sources
        must pickle, so paths rather than open files). For an accelerator that scores faster
        than one process decodes; on a CPU the models want the cores themselves.
        """
        batch: list[tuple[str, LoadedImage | str]] = []
        for item in self._decoded(sources, workers, decode or self.decode, processes):
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self.rows_of_batch(batch)
                batch = []
        yield from self.rows_of_batch(batch)

    def score_images(self, images: Sequence[LoadedImage]) -> list[tuple[Faces, dict]]:
        """Per image: its chosen faces (original pixels) and ``{column: N values}``."""
        located = self.locate(images)
        measures = self.measure(images, [faces for faces, _ in located],
                                 [points for _, points in located])
        return [(faces, values) for (faces, _), values in zip(located, measures, strict=True)]

    @property
    def decode(self) -> Callable[[str | Path | BinaryIO], LoadedImage | str]:
        """A path or an open binary file (encoded bytes) → the image, or its ``unreadable: …``
        status: :func:`~fiqa.imageio.decode_or_status` with this Scorer's limits, a module
        function, so that it pickles into worker processes."""
        return functools.partial(decode_or_status, max_pixels=self.max_pixels,
                                 max_side=self.max_side)

    def _decoded(self, sources: Iterable[tuple[str, Any]], workers: int, decode: Callable,
                 processes: bool) -> Iterator[tuple[str, LoadedImage | str]]:
        """(name, image or failure reason), in order, with a bounded read-ahead."""
        pending: deque[tuple[str, Future]] = deque()
        pool: Executor = (ProcessPoolExecutor(max(1, workers), multiprocessing.get_context("spawn"))
                          if processes else ThreadPoolExecutor(max(1, workers)))
        with pool:
            for path, source in sources:
                pending.append((path, pool.submit(decode, source)))
                if len(pending) >= 2 * self.batch_size:
                    path, future = pending.popleft()
                    yield path, future.result()
            while pending:
                path, future = pending.popleft()
                yield path, future.result()

    def rows_of_batch(self, batch: list[tuple[str, LoadedImage | str]]) -> Iterator[list[dict]]:
        """The rows of each (name, decoded image or failure reason) of ``batch``, in order."""
        readable = [(path, item) for path, item in batch if isinstance(item, LoadedImage)]
        try:
            results = dict(zip([p for p, _ in readable],
                               self.score_images([image for _, image in readable]), strict=True))
        except Exception:  # noqa: BLE001 - isolate the image that breaks the batch
            results = {}
            for path, image in readable:
                try:
                    results[path] = self.score_images([image])[0]
                except Exception as error:  # noqa: BLE001
                    results[path] = f"error: {type(error).__name__}: {error}"
        for path, item in batch:
            yield self._rows(path, results.get(path, item))

    def _rows(self, path: str, result: tuple[Faces, dict] | str) -> list[dict]:
        if isinstance(result, str):
            return [{"path": path, "status": result}]
        faces, values = result
        if len(faces) == 0:
            return [{"path": path, "status": "no_face"}]
        rows = []
        for i in range(len(faces)):
            row = {"path": path, "face": i, "status": "ok", "det_score": faces.scores[i],
                   "rotated": faces.rotations[i]}
            row.update(zip(("x1", "y1", "x2", "y2"), faces.boxes[i], strict=True))
            row.update(zip(LANDMARK_COLUMNS, faces.landmarks[i].reshape(-1), strict=True))
            row.update({column: column_values[i] for column, column_values in values.items()})
            rows.append(row)
        return rows

    def locate(self, images: Sequence[LoadedImage]) -> list[tuple[Faces, np.ndarray]]:
        """Per image: the chosen faces (original pixels) and their K×5×2 decoded-pixel landmarks."""
        if self.detector is None:
            return [self._chosen(image, None, 0) for image in images]
        found = detect_upright(self.detector, [image.pixels for image in images])
        return [self._chosen(image, d, turn) for image, (d, turn) in zip(images, found,
                                                                          strict=True)]

    def _chosen(self, image: LoadedImage, detections, turn: int) -> tuple[Faces, np.ndarray]:
        height, width = image.pixels.shape[:2]
        if detections is None:  # an aligned crop: the default template, stretched to the image
            points = DEFAULT_CROP.landmarks()[None] * [width / DEFAULT_CROP.size,
                                                       height / DEFAULT_CROP.size]
            boxes, scores = np.array([[0, 0, width, height]], float), np.array([np.nan])
        else:
            boxes, scores, points = detections.boxes, detections.scores, detections.landmarks
            if not self.all_faces and len(boxes) > 1:
                if self.face == "largest":
                    chosen = np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
                else:
                    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
                    chosen = np.argmin(np.linalg.norm(centres - [width / 2, height / 2], axis=1))
                boxes, scores, points = boxes[[chosen]], scores[[chosen]], points[[chosen]]
        sizes = np.tile(image.original_size, (len(boxes), 1))
        # An aligned crop's template landmarks lie where MTCNN's do (fiqa.pose).
        detector = "mtcnn" if detections is None else self.detector_name
        faces = Faces(boxes / image.scale, scores, points / image.scale, sizes,
                      np.full(len(boxes), float(turn)), detector)
        return faces, points

    def measure(self, images: Sequence[LoadedImage], faces: list[Faces],
                 points: list[np.ndarray]) -> list[dict]:
        """Every model on the located faces of ``images`` (see :meth:`locate`): per image
        ``{column: values}``."""
        counts = [len(f) for f in faces]
        all_faces = Faces.concat(faces)
        if len(all_faces) == 0:
            return [{} for _ in images]
        models = [*self.estimators, *self.recognizers]
        trunks = [model.shared if model.backbone is not None else None for model in models]
        specs = [model.crop_spec for model in models] + [t.crop_spec for t in trunks if t]
        by_geometry = {spec.geometry: spec for spec in specs}  # equal geometry, equal crops
        crops_of = {key: self.crops(images, points, spec) for key, spec in by_geometry.items()}
        parts: list[list[dict]] = [[] for _ in models]
        for start in range(0, len(all_faces), self.batch_size):
            batch = slice(start, start + self.batch_size)
            computed: dict = {}  # one pass per backbone (fiqa.backbones)
            for index, (model, trunk) in enumerate(zip(models, trunks, strict=True)):
                features = None
                if trunk is not None:
                    features = trunk.features(crops_of[trunk.crop_spec.geometry][batch], computed)
                crops = crops_of[model.crop_spec.geometry][batch]
                parts[index].append(_columns_of(model, crops, all_faces[batch], features))
        columns = {key: np.concatenate([part[key] for part in model_parts])
                   for model_parts in parts for key in model_parts[0]}
        for name, calibration in self.calibrations.items():
            columns[f"{name}.fnmr"] = calibration.predict(columns[name])
        bounds = np.cumsum([0, *counts])
        return [{column: values[a:b] for column, values in columns.items()}
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def crops(self, images: Sequence[LoadedImage], points: list[np.ndarray],
              spec: CropSpec = DEFAULT_CROP) -> torch.Tensor:
        """All faces of ``images`` (decoded-pixel ``points``) aligned to ``spec``: N×3×S×S uint8."""
        pixels = [to_device(pixel_tensor(image.pixels), self.device).permute(2, 0, 1)
                  if len(p) else None for image, p in zip(images, points, strict=True)]
        sources = [pixels[i] for i, p in enumerate(points) for _ in range(len(p))]
        if not sources:
            return torch.empty((0, 3, spec.size, spec.size), dtype=torch.uint8, device=self.device)
        return align_faces(sources, np.concatenate([p for p in points if len(p)]), spec)


def _columns_of(model: QualityEstimator | Recognizer, crops: torch.Tensor, faces: Faces,
                features: torch.Tensor | None) -> dict[str, np.ndarray]:
    """The output columns of one model on one batch of crops (``features``: its backbone's)."""
    if isinstance(model, Recognizer):
        embeddings = model.embed(crops) if features is None else model.embed_features(features)
        vectors = embeddings.cpu().numpy()
        return {f"{model.name}.{i}": vectors[:, i] for i in range(model.dim)}
    result = model(crops, faces, features)
    score = result["score"]
    columns = {model.name: score, f"{model.name}.quality": model.to_quality(score)}
    columns.update({f"{model.name}.{key}": result[key] for key in model.components})
    return columns
