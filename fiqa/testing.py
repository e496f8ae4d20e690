"""Contract checks for models, in the spirit of scikit-learn's ``check_estimator``.

``check_estimator(estimator, images)`` and ``check_recognizer(recognizer, images)`` take a model
(an object, or a registered name) and a few face photos (paths or H×W×3 uint8 arrays, each with
a face the detector finds), and raise AssertionError naming the first rule broken:

- class attributes: name, description, crop spec, score range or dim, needs, provenance of every
  weights file (source, licence, sha256, the command that made it);
- input contract: crops of another size or dtype are refused with ValueError; an estimator that
  needs detection metadata refuses to run without it;
- outputs: one finite float64 score (and each component) per face for estimators, N×dim finite
  float32 embeddings for recognizers, unit length with ``normalize=True``;
- batch-size invariance: one batch and face-by-face agree (to ``tolerance`` of the output's
  scale), and an empty batch gives empty outputs;
- determinism on the CPU: two runs agree exactly;
- ``score_range`` and the 0–100 mapping honoured: ``to_quality`` maps the range's ends to 0 and
  100, is non-decreasing, stays within [0, 100], and real faces score inside the range widened
  by half its width on each side;
- devices: the model runs where it was asked to; with CUDA present, it agrees with the CPU.

A plug-in author runs them in their own tests: ``check_estimator(MyEstimator(device="cpu"),
["face1.jpg", "face2.jpg"])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .crop import CropSpec
from .estimators import QualityEstimator, create
from .estimators.base import METADATA
from .faces import Faces
from .imageio import LoadedImage, read_image
from .recognizers import Recognizer, recognizer

PROVENANCE_FIELDS = ("source", "licence", "sha256", "made_by")


def check_estimator(estimator: QualityEstimator | str,
                    images: Sequence[str | Path | np.ndarray], tolerance: float = 1e-4) -> None:
    """Check ``estimator`` (built on the CPU when given by name) on the faces of ``images``."""
    model = create(estimator, "cpu") if isinstance(estimator, str) else estimator
    _check_class(model, ("name", "description", "crop_spec", "score_range"))
    assert model.needs <= METADATA, f"{model.name}: needs {set(model.needs - METADATA)} unknown"
    low, high = model.score_range
    assert low < high, f"{model.name}: score_range {model.score_range} is empty"
    crops, faces = _faces(images, model.crop_spec)
    _refuses_other_crops(model, model.crop_spec, faces)
    if model.needs:
        try:
            model(crops, None)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{model.name} needs {sorted(model.needs)} but ran without them")
    first, second = model(crops, faces), model(crops, faces)
    singles = [model(crops[i:i + 1], faces[i:i + 1]) for i in range(len(crops))]
    keys = {"score", *model.components}
    assert set(first) == keys, f"{model.name}: outputs {sorted(first)}, expected {sorted(keys)}"
    for key in keys:
        values = first[key]
        assert values.shape == (len(crops),) and values.dtype == np.float64, \
            f"{model.name}.{key}: {values.shape} {values.dtype}, expected ({len(crops)},) float64"
        assert np.isfinite(values).all(), f"{model.name}.{key}: not finite on real faces"
        if model.device.type == "cpu":
            np.testing.assert_array_equal(values, second[key], f"{model.name}.{key} varies")
        single = np.concatenate([result[key] for result in singles])
        _close(single, values, tolerance, f"{model.name}.{key}: one by one vs one batch")
    empty = model(crops[:0], faces[:0])
    assert all(len(values) == 0 for values in empty.values()), f"{model.name}: empty batch"
    scores = first["score"]
    margin = (high - low) / 2
    assert ((scores >= low - margin) & (scores <= high + margin)).all(), \
        f"{model.name}: scores {scores.min():.3g}…{scores.max():.3g} far outside {low}…{high}"
    ramp = np.linspace(low - margin, high + margin, 41)
    quality = model.to_quality(ramp)
    np.testing.assert_allclose(model.to_quality(np.array([low, high])), [0, 100], atol=1e-6,
                               err_msg=f"{model.name}: to_quality does not map its score_range")
    assert (np.diff(quality) >= 0).all() and quality.min() >= 0 and quality.max() <= 100, \
        f"{model.name}: to_quality is not a non-decreasing map into [0, 100]"
    if torch.cuda.is_available() and model.device.type == "cpu":
        on_gpu = type(model)(device="cuda")
        _close(on_gpu(crops, faces)["score"], scores, 1e-2, f"{model.name}: CUDA vs CPU")


def check_recognizer(model: Recognizer | str, images: Sequence[str | Path | np.ndarray],
                     tolerance: float = 1e-4) -> None:
    """Check ``model`` (built on the CPU when given by name) on the faces of ``images``."""
    model = recognizer(model, "cpu") if isinstance(model, str) else model
    _check_class(model, ("name", "description", "crop_spec", "dim"))
    assert isinstance(model.dim, int) and model.dim > 0, f"{model.name}: dim {model.dim!r}"
    crops, faces = _faces(images, model.crop_spec)
    _refuses_other_crops(model, model.crop_spec, faces)
    first, second = model.embed(crops), model.embed(crops)
    assert first.shape == (len(crops), model.dim) and first.dtype == torch.float32, \
        f"{model.name}: {tuple(first.shape)} {first.dtype}, expected ({len(crops)}, {model.dim}) " \
        "float32"
    assert first.device.type == model.device.type, f"{model.name}: output on {first.device}"
    params = list(model.model.parameters())
    assert all(p.device.type == model.device.type for p in params), \
        f"{model.name}: weights not on {model.device}"
    vectors = first.cpu().numpy()
    assert np.isfinite(vectors).all(), f"{model.name}: embeddings not finite on real faces"
    if model.device.type == "cpu":
        np.testing.assert_array_equal(vectors, second.numpy(), f"{model.name}: not deterministic")
    single = torch.cat([model.embed(crops[i:i + 1]) for i in range(len(crops))]).cpu().numpy()
    _close(single, vectors, tolerance, f"{model.name}: one by one vs one batch")
    unit = model.embed(crops, normalize=True).norm(dim=1).cpu().numpy()
    np.testing.assert_allclose(unit, 1, atol=1e-5, err_msg=f"{model.name}: normalize=True")
    assert tuple(model.embed(crops[:0]).shape) == (0, model.dim), f"{model.name}: empty batch"
    if torch.cuda.is_available() and model.device.type == "cpu":
        on_gpu = type(model)(device="cuda").embed(crops.cuda()).cpu().numpy()
        _close(on_gpu, vectors, 1e-2, f"{model.name}: CUDA vs CPU")


def _check_class(model, attributes: Sequence[str]) -> None:
    for attribute in attributes:
        assert getattr(model, attribute, None) not in (None, ""), \
            f"{type(model).__name__}: class attribute {attribute!r} missing"
    assert isinstance(model.crop_spec, CropSpec), f"{model.name}: crop_spec is not a CropSpec"
    for entry in model.provenance():
        missing = [key for key in PROVENANCE_FIELDS if not entry.get(key)]
        assert not missing, f"{model.name}: weights {entry.get('file')} lack {missing}"


def _faces(images: Sequence[str | Path | np.ndarray], spec: CropSpec) -> tuple[torch.Tensor,
                                                                                 Faces]:
    """The largest face of each image aligned to ``spec`` (N×3×S×S uint8) and its Faces."""
    from .pipeline import Scorer

    scorer = Scorer((), device="cpu")
    loaded = [LoadedImage(np.ascontiguousarray(i)) if isinstance(i, np.ndarray) else
              read_image(i) for i in images]
    located = scorer.locate(loaded)
    assert len(images) >= 2 and all(len(f) for f, _ in located), \
        "give at least two images, each with a face the detector finds"
    return (scorer.crops(loaded, [p for _, p in located], spec),
            Faces.concat([f for f, _ in located]))


def _refuses_other_crops(model, spec: CropSpec, faces: Faces) -> None:
    wrong = (torch.zeros((1, 3, spec.size + 8, spec.size + 8), dtype=torch.uint8),
             torch.zeros((1, 3, spec.size, spec.size), dtype=torch.float32))
    for crops in wrong:
        try:
            model.embed(crops) if isinstance(model, Recognizer) else model(crops, faces[:1])
        except ValueError:
            continue
        raise AssertionError(f"{model.name} accepted {tuple(crops.shape)} {crops.dtype} crops")


def _close(a: np.ndarray, b: np.ndarray, tolerance: float, what: str) -> None:
    scale = max(float(np.abs(b).max()) if b.size else 1.0, 1e-12)
    np.testing.assert_allclose(a, b, atol=tolerance * scale, rtol=0, err_msg=what)
