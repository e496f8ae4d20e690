"""Quality-weighted enrollment: one template per identity, and identification against them.

A template is the quality-weighted mean of an identity's unit-length embeddings, re-normalised.
The gallery keeps each identity's weighted sum and weight total (or, for ``topk``, its k best
embeddings), so adding images later gives exactly the template that enrolling them all at once
gives. The file is safetensors (no pickle); its header holds JSON metadata: format version,
recognizer and its weights' sha256, estimator, weighting, quality floor, identity names.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from . import __version__
from .recognizers import recognizer_class
from .score_alignment import aligned
from .verify import Encoder, Sample, gate

FORMAT_VERSION = 1
# Chosen on CelebA by `python benchmarks/enrollment.py enrollment`: with dlib, power:1 had the
# best or near-best rank-1 and TAR at FAR 1e-3 for all four learned estimators, clean and with
# half the enrolled images degraded (softmax and top-k did worse); see docs/enrollment.md.
DEFAULT_WEIGHTING = "power:1"
# 0–100 quality below which an image is not enrolled. Round 2's magface (a head on SFace) spreads
# clean photos lower than round 1's did: 20 would leave out 20.1 % of the 7,701 clean LFW View 2
# photos, 5 leaves out 3.6 % (1.5 % at 2). The enrollment measurements of docs/enrollment.md were
# made with round 1's models and the floor of 20, and are still to be repeated.
DEFAULT_FLOOR = 5.0
METHODS = ("mean", "softmax", "power", "topk")


@dataclass(frozen=True)
class Weighting:
    """How an image's 0–100 quality q weighs in its identity's template.

    ``mean``: 1; ``softmax:T``: exp((q − 100)/T) (softmax with temperature T); ``power:p``:
    (q/100)^p; ``topk:k``: the mean of the k best images, ties to the earlier image.
    """

    method: str
    parameter: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Weighting:
        """``"softmax:10"``, ``"power:2"``, ``"topk:3"`` or ``"mean"`` → a Weighting."""
        method, _, value = text.strip().partition(":")
        if method not in METHODS or (method != "mean") != bool(value):
            raise ValueError(f"weighting must be mean, softmax:T, power:P or topk:K, got {text!r}")
        try:
            parameter = float(value) if value else 0.0
        except ValueError:
            raise ValueError(f"weighting {text!r}: {value!r} is not a number") from None
        if method != "mean" and parameter <= 0 or method == "topk" and parameter != int(parameter):
            raise ValueError(f"weighting {text!r}: needs a positive (for topk, whole) number")
        return cls(method, parameter)

    def __str__(self) -> str:
        return self.method if self.method == "mean" else f"{self.method}:{self.parameter:g}"

    def weights(self, quality: np.ndarray) -> np.ndarray:
        """K 0–100 qualities → K positive weights (unnormalised: templates divide by the total)."""
        quality = np.clip(np.asarray(quality, float), 0, 100)
        if self.method == "softmax":
            return np.exp((quality - 100) / self.parameter)
        if self.method == "power":
            return np.maximum(quality / 100, 1e-3) ** self.parameter
        return np.ones_like(quality)


class Gallery:
    """Templates of enrolled identities for one recognizer: build with :meth:`add`, compare with
    :meth:`similarities` / :meth:`identify`, store with :meth:`save` / :meth:`load`.

    weighting: a :class:`Weighting` or its text; floor: 0–100 quality below which images are left
    out.
    """

    def __init__(self, recognizer: str, estimator: str = "magface",
                 weighting: str | Weighting = DEFAULT_WEIGHTING, floor: float = DEFAULT_FLOOR
                 ) -> None:
        self.recognizer, self.estimator, self.floor = recognizer, estimator, float(floor)
        self.weighting = weighting if isinstance(weighting, Weighting) else Weighting.parse(
            weighting)
        cls = recognizer_class(recognizer)
        self.recognizer_sha256 = [entry["sha256"] for entry in cls.provenance()]
        self.dim = cls.dim
        self.identities: list[str] = []
        self.sums = np.zeros((0, self.dim))  # N×D float64 weighted sums of unit embeddings
        self.totals = np.zeros(0)  # N weight totals
        self.counts = np.zeros(0, np.int64)  # N images enrolled
        k = int(self.weighting.parameter) if self.weighting.method == "topk" else 0
        self.best = np.zeros((0, k, self.dim), np.float32)  # topk: N×k best embeddings
        self.best_quality = np.zeros((0, k))  # topk: their qualities (−inf where none)
        self.created = {"fiqa_version": __version__, "created": _now(), "updated": _now()}

    def __len__(self) -> int:
        return len(self.identities)

    @property
    def templates(self) -> np.ndarray:
        """N×D float32 unit-length templates (a zero row for an identity with no weight)."""
        means = self.sums / np.maximum(self.totals, 1e-300)[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return (means / np.where(norms > 0, norms, 1)).astype(np.float32)

    def add(self, identity: str, embeddings: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """Enroll K images of ``identity`` (new or known): K×D unit embeddings, K 0–100
        qualities. Returns the K booleans of the images used (quality ≥ floor, finite)."""
        embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
        quality = np.asarray(quality, float).reshape(-1)
        if len(embeddings) != len(quality):
            raise ValueError(f"{len(embeddings)} embeddings but {len(quality)} qualities")
        used = np.isfinite(quality) & (quality >= self.floor)
        if not used.any():
            return used
        row = self._row(identity)
        self.counts[row] += used.sum()
        if self.weighting.method == "topk":
            self._add_best(row, embeddings[used], quality[used])
        else:
            for vector, weight in zip(embeddings[used], self.weighting.weights(quality[used]),
                                      strict=True):  # one at a time: the same sums, however split
                self.sums[row] += weight * vector.astype(np.float64)
                self.totals[row] += weight
        self.created["updated"] = _now()
        return used

    def _row(self, identity: str) -> int:
        if identity in self.identities:
            return self.identities.index(identity)
        self.identities.append(identity)
        self.sums = np.vstack([self.sums, np.zeros((1, self.dim))])
        self.totals, self.counts = np.append(self.totals, 0.0), np.append(self.counts, 0)
        k = self.best.shape[1]
        self.best = np.concatenate([self.best, np.zeros((1, k, self.dim), np.float32)])
        self.best_quality = np.vstack([self.best_quality, np.full((1, k), -np.inf)])
        return len(self.identities) - 1

    def _add_best(self, row: int, embeddings: np.ndarray, quality: np.ndarray) -> None:
        vectors = np.concatenate([self.best[row], embeddings])
        qualities = np.concatenate([self.best_quality[row], quality])
        keep = np.argsort(-qualities, kind="stable")[:self.best.shape[1]]
        self.best[row], self.best_quality[row] = vectors[keep], qualities[keep]
        present = np.isfinite(self.best_quality[row])
        self.sums[row] = self.best[row][present].astype(np.float64).sum(0)
        self.totals[row] = present.sum()

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """M×D unit embeddings → M×N cosine similarities to the templates."""
        return np.asarray(embeddings, np.float32).reshape(-1, self.dim) @ self.templates.T

    def identify(self, embeddings: np.ndarray, k: int = 5,
                 discrepancy: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The k best identities of each of M probes: M×k indices and M×k similarities, best
        first (k is capped at the gallery's size). With ``discrepancy`` (embeddings → N, see
        :func:`fiqa.score_alignment.discrepancy_model`) they are ranked by, and the similarities
        are, the aligned scores of probe and template."""
        similarity = self.similarities(embeddings)
        if discrepancy is not None:
            similarity = aligned(similarity, discrepancy(embeddings)[:, None],
                                 discrepancy(self.templates)[None, :])
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(similarity, order, axis=1)

    def metadata(self) -> dict:
        """The JSON header of the file."""
        return {"format_version": FORMAT_VERSION, "recognizer": self.recognizer,
                "recognizer_sha256": self.recognizer_sha256, "estimator": self.estimator,
                "weighting": str(self.weighting), "floor": self.floor,
                "identities": self.identities, **self.created}

    def save(self, path: str | Path) -> Path:
        """Write the gallery as safetensors: templates (N×D float32), counts, sums, totals (and
        for topk the best embeddings), with :meth:`metadata` as JSON in the header."""
        tensors = {"templates": self.templates, "counts": self.counts, "sums": self.sums,
                   "totals": self.totals}
        if self.weighting.method == "topk":
            tensors.update(best=self.best, best_quality=self.best_quality)
        path = Path(path)
        save_file({key: np.ascontiguousarray(value) for key, value in tensors.items()}, path,
                  metadata={"fiqa": json.dumps(self.metadata())})
        return path

    @classmethod
    def load(cls, path: str | Path, recognizer: str | None = None) -> Gallery:
        """Read a gallery; ValueError if it is not one, has another format version, or was made
        with another recognizer than ``recognizer`` or other weights than the installed ones."""
        try:
            with safe_open(str(path), "np") as file:
                header = (file.metadata() or {}).get("fiqa")
                tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path}: not a readable gallery ({error})") from None
        if header is None:
            raise ValueError(f"{path}: a safetensors file without fiqa gallery metadata")
        try:
            meta = json.loads(header)
        except json.JSONDecodeError:
            raise ValueError(f"{path}: its gallery metadata is not JSON") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: its gallery metadata is not a JSON object")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: gallery format version {meta.get('format_version')}, "
                             f"this fiqa reads version {FORMAT_VERSION}")
        if recognizer is not None and meta["recognizer"] != recognizer:
            raise ValueError(f"{path} was enrolled with recognizer {meta['recognizer']!r}, not "
                             f"{recognizer!r}: its templates cannot be compared")
        try:
            gallery = cls(meta["recognizer"], meta["estimator"], meta["weighting"],
                          meta["floor"])
            if meta["recognizer_sha256"] != gallery.recognizer_sha256:
                raise ValueError(f"{path} was enrolled with other {meta['recognizer']} weights "
                                 "than the installed ones: enroll again")
            gallery.identities = list(meta["identities"])
            gallery.sums, gallery.totals = tensors["sums"], tensors["totals"]
            gallery.counts = tensors["counts"]
            if gallery.weighting.method == "topk":
                gallery.best, gallery.best_quality = tensors["best"], tensors["best_quality"]
            gallery.created = {key: str(meta[key]) for key in ("fiqa_version", "created",
                                                               "updated")}
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: damaged gallery metadata or tensors (missing or wrong "
                             f"{error})") from None
        gallery._check(path)
        return gallery

    def _check(self, path: str | Path) -> None:
        """ValueError unless the loaded tensors and identities agree in count and width."""
        n = len(self.identities)
        if not all(isinstance(name, str) for name in self.identities) or \
                len(set(self.identities)) != n:
            raise ValueError(f"{path}: identity names must be distinct strings")
        expected = {"sums": (n, self.dim), "totals": (n,), "counts": (n,)}
        if self.weighting.method == "topk":
            k = int(self.weighting.parameter)
            expected.update(best=(n, k, self.dim), best_quality=(n, k))
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{path}: {name} is {getattr(self, name).shape}, expected "
                                 f"{shape} for {n} identities of {self.dim}-d "
                                 f"{self.recognizer} templates: a damaged gallery")


def enroll(gallery: Gallery, people: dict[str, Sequence[Path]], encoder: Encoder,
           advance: Callable[[int], object] | None = None) -> pd.DataFrame:
    """Add ``{identity: image paths}`` to ``gallery``; the report has a row per image: identity,
    path, quality (0–100), status (``enrolled``, ``below floor``, ``no_face``, ``unreadable: …``).
    ``advance(n)`` is called after each identity with its image count."""
    rows = []
    for identity, paths in people.items():
        samples = encoder.encode(list(paths))
        found = [i for i, sample in enumerate(samples) if sample.status == "ok"]
        used = np.zeros(len(samples), bool)
        if found:
            used[found] = gallery.add(identity, np.stack([samples[i].embedding for i in found]),
                                      [samples[i].quality for i in found])
        for path, sample, enrolled in zip(paths, samples, used, strict=True):
            status = ("enrolled" if enrolled else "below floor" if sample.status == "ok"
                      else sample.status)
            rows.append({"identity": identity, "path": str(path), "quality": sample.quality,
                         "status": status})
        if advance:
            advance(len(paths))
    return pd.DataFrame(rows, columns=["identity", "path", "quality", "status"])


def identify(gallery: Gallery, probes: Sequence[str], samples: Sequence[Sample], k: int = 5,
             min_quality: float | None = None,
             discrepancy: Callable[[np.ndarray], np.ndarray] | None = None) -> pd.DataFrame:
    """Ranked candidates per probe: probe, status (``ok`` or why it was rejected), quality,
    rank (1 = best, nullable integer), identity, similarity (the aligned score with
    ``discrepancy``, see :meth:`Gallery.identify`); a rejected probe gets one row without
    candidates."""
    rows = []
    for probe, sample in zip(probes, samples, strict=True):
        reason = gate(sample, "probe", min_quality) if len(gallery) else "empty gallery"
        if reason:
            rows.append({"probe": probe, "status": f"rejected: {reason}",
                         "quality": sample.quality, "rank": math.nan})
            continue
        indices, similarity = gallery.identify(sample.embedding[None], k, discrepancy)
        rows += [{"probe": probe, "status": "ok", "quality": sample.quality, "rank": rank + 1,
                  "identity": gallery.identities[i], "similarity": float(s)}
                 for rank, (i, s) in enumerate(zip(indices[0], similarity[0], strict=True))]
    table = pd.DataFrame(rows, columns=["probe", "status", "quality", "rank", "identity",
                                        "similarity"])
    return table.astype({"rank": "Int64", "quality": float, "similarity": float})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
