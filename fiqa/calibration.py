"""Calibrated quality: an estimator's raw score → the recognizer's expected false non-match rate.

:func:`fit` works on the genuine comparisons of a labelled set. Each comparison's outcome (a false
non-match when its cosine is below the threshold) counts for each of its two images whose *mate*
(the other image) is a good one: scored at or above the median of the calibration images
(``mates="good"``, the default), or any mate (``mates="all"``). An isotonic regression
(non-increasing in the score) of those outcomes on the image's score gives, for an image of score
s, the expected FNMR of its genuine comparisons with a good photo of the same person, as when a
probe meets its enrolment. That is what ``fiqa score --calibration`` writes as
``<estimator>.fnmr``: a probability, comparable across estimators and tied to one recognizer and
threshold. Against any mate, the FNMR depends on how good the mates of the calibration set were,
and transfers worse to other data (docs/calibration.md).

The map is a step function stored by its knots (:class:`Calibration`, a JSON file recording the
data, recognizer, threshold and counts it was made from) and read by linear interpolation between
them, constant beyond the first and last.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from .weights import weights_dir

METHOD = ("isotonic regression, non-increasing, of genuine-comparison outcomes (cosine below the "
          "threshold) on the score of each of the comparison's two images whose mate is good "
          "(score >= mate_cut; any mate where mate_cut is null)")
MATES = ("good", "all")
SHIPPED_RECOGNIZER = "sface"


@dataclass
class Calibration:
    """estimator's raw ``scores`` (ascending knots) → ``fnmr`` (non-increasing, 0–1) for
    ``recognizer`` at cosine ``threshold``, against mates scored ≥ ``mate_cut`` (None: any mate);
    ``about``: the data and counts it was fitted on."""

    estimator: str
    recognizer: str
    threshold: float
    scores: list[float]
    fnmr: list[float]
    mate_cut: float | None = None
    about: dict = field(default_factory=dict)
    method: str = METHOD

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Raw scores (any shape) → expected FNMR, NaN where a score is NaN."""
        scores = np.asarray(scores, dtype=np.float64)
        values = np.interp(scores, self.scores, self.fnmr)
        return np.where(np.isnan(scores), np.nan, values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """A calibration file (ValueError if it is not one)."""
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"{path} is not a fiqa calibration file ({error})") from None


def genuine_comparisons(pairs: pd.DataFrame, paths: list[str], embeddings: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The genuine rows of a protocol's ``pairs`` (:mod:`fiqa.evaluation.protocols`) as G×2
    indices into ``paths``, and their cosines from the N×D ``embeddings`` of ``paths`` (NaN
    where an image has none)."""
    from .evaluation.report import cosine

    index = {path: i for i, path in enumerate(paths)}
    genuine = pairs[pairs["same"]]
    indices = np.stack([genuine["path_a"].map(index).to_numpy(),
                        genuine["path_b"].map(index).to_numpy()], axis=1).astype(int)
    return indices, cosine(embeddings[indices[:, 0]], embeddings[indices[:, 1]])


def outcomes(scores: np.ndarray, pairs: np.ndarray, similarity: np.ndarray, threshold: float,
             mate_cut: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image score, non-match 0/1) for each image of each genuine comparison whose scores are
    both known and whose mate scores ≥ ``mate_cut`` (every mate when None)."""
    known = _known(scores, pairs, similarity)
    pairs, failed = pairs[known], (similarity[known] < threshold).astype(np.float64)
    image, mate = scores[pairs].T.reshape(-1), scores[pairs[:, ::-1]].T.reshape(-1)
    keep = np.ones(len(image), bool) if mate_cut is None else mate >= mate_cut
    return image[keep], np.concatenate([failed, failed])[keep]


def _known(scores: np.ndarray, pairs: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """The genuine comparisons whose two scores and cosine are known."""
    return ~np.isnan(scores[pairs]).any(axis=1) & ~np.isnan(similarity)


def fit(estimator: str, recognizer: str, threshold: float, scores: np.ndarray,
        pairs: np.ndarray, similarity: np.ndarray, about: dict | None = None,
        mates: str = "good") -> Calibration:
    """Fit the map from the N image ``scores`` and the ``similarity`` (cosine) of G genuine
    ``pairs`` (G×2 indices into the images); ``mates``: "good" (mates scored at or above the
    median of the paired images) or "all"."""
    if mates not in MATES:
        raise ValueError(f"mates must be good or all, got {mates!r}")
    mate_cut = float(np.nanmedian(scores[np.unique(pairs)])) if mates == "good" else None
    x, y = outcomes(scores, pairs, similarity, threshold, mate_cut)
    if len(x) == 0:
        raise ValueError("no genuine comparison with both scores known: nothing to calibrate on")
    regression = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0,
                                    out_of_bounds="clip").fit(x, y)
    facts = {"comparisons": int(_known(scores, pairs, similarity).sum()), "observations": len(x),
             "images": int(len(np.unique(pairs))), "fnmr_overall": round(float(y.mean()), 5),
             **(about or {})}
    return Calibration(estimator, recognizer, float(threshold),
                       regression.X_thresholds_.tolist(), regression.y_thresholds_.tolist(),
                       mate_cut, facts)


def reliability(calibration: Calibration, scores: np.ndarray, pairs: np.ndarray,
                similarity: np.ndarray, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Predicted against observed FNMR on other data: the observations of :func:`outcomes`
    (with the calibration's mate cut) in up to ``bins`` equal-count bins of predicted FNMR (ties
    kept together, so fewer where a prediction repeats), each with its count, mean prediction
    and observed rate; and the calibration error, the count-weighted mean |predicted − observed|
    over the bins."""
    x, y = outcomes(scores, pairs, similarity, calibration.threshold, calibration.mate_cut)
    predicted = calibration.predict(x)
    edges = np.unique(np.sort(predicted)[np.linspace(0, len(x) - 1, bins + 1).astype(int)])
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0,
                    max(len(edges) - 2, 0))  # the largest value closes the last bin
    table = pd.DataFrame({"bin": which, "predicted": predicted, "observed": y}).groupby("bin").agg(
        count=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean"))
    error = float(np.average((table["predicted"] - table["observed"]).abs(),
                             weights=table["count"]))
    return table.reset_index(drop=True), error


def shipped(estimator: str) -> Calibration:
    """The calibration fiqa ships for ``estimator`` against :data:`SHIPPED_RECOGNIZER` (made by
    ``scripts/calibrate.py``); ValueError naming those that exist if there is none."""
    folder = weights_dir() / "calibrations"
    path = folder / f"{estimator}.{SHIPPED_RECOGNIZER}.json"
    if not path.is_file():
        known = sorted(p.name.split(".")[0] for p in folder.glob("*.json"))
        raise ValueError(f"no shipped calibration for {estimator!r} (shipped: {known}); make one "
                         "with fiqa calibrate")
    return Calibration.load(path)
