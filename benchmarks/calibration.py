"""How well the shipped calibrations predict SFace's FNMR on people they never saw.

    python benchmarks/calibration.py [--cache .fiqa-cache] [--bins 10]

For each shipped calibration (``scripts/calibrate.py``: fitted on the train side of CelebA and
FIW), on two held-out sets:

* ``lfw``: LFW View 2's 3,000 genuine pairs (no LFW image in the fitting; detected by fiqa);
* ``test_side``: every genuine pair of the test side of CelebA and FIW (other people, the same
  sources; CelebA only for estimators that read detection metadata).

Each genuine comparison counts for both of its images (as in the fitting); the observations are
put in up to ``--bins`` equal-count bins of predicted FNMR and each bin's mean prediction is set
against its observed FNMR (:func:`fiqa.calibration.reliability`). Reported: per bin, and the
calibration error (count-weighted mean |predicted − observed|), beside the overall FNMR of the
set. For comparison, each estimator is also fitted again on the same train side with
``mates="all"`` (every mate, not only good ones) and scored the same way (``all_mates``). Results
in ``benchmarks/results/calibration.json``, reliability plots in
``docs/img/calibration_reliability.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fiqa import Scorer, estimator_class  # noqa: E402
from fiqa.calibration import (  # noqa: E402
    SHIPPED_RECOGNIZER,
    fit,
    genuine_comparisons,
    reliability,
    shipped,
)
from fiqa.evaluation import protocols  # noqa: E402
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column  # noqa: E402
from fiqa.training.support_set import embedded  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ESTIMATORS = ("magface", "ri", "ri-proximity", "attention", "sface-norm", "baseline", "detection",
              "landmarks")


def lfw_set(cache: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """LFW View 2's genuine comparisons: raw scores per estimator, G×2 indices, cosines."""
    pairs = protocols.lfw_pairs(DATA / "lfw" / "pairs.txt", DATA / "lfw" / "images")
    paths = protocols.pair_paths(pairs[pairs["same"]])
    scorer = Scorer(ESTIMATORS, [SHIPPED_RECOGNIZER], device="cpu")
    features, _ = compute_features(paths, scorer, FeatureCache(cache))
    indices, similarity = genuine_comparisons(pairs, paths,
                                              features[embedding_column(SHIPPED_RECOGNIZER)])
    return {name: features[name] for name in ESTIMATORS}, indices, similarity


def all_mates(name: str, shipped_one, train: tuple, sets: dict) -> dict:
    """On each set, the same fit against every mate: its calibration error, and its predicted and
    observed FNMR."""
    refit = fit(name, SHIPPED_RECOGNIZER, shipped_one.threshold, *train, mates="all")
    results = {}
    for set_name, data in sets.items():
        table, error = reliability(refit, *data)
        results[set_name] = {key: round(float(np.average(table[key], weights=table["count"])), 4)
                             for key in ("predicted", "observed")} | {"error": round(error, 4)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args()
    lfw_scores, lfw_pairs, lfw_similarity = lfw_set(args.cache)
    test = embedded(DATA, "test", (SHIPPED_RECOGNIZER,), ESTIMATORS, args.cache)
    train = embedded(DATA, "train", (SHIPPED_RECOGNIZER,), ESTIMATORS, args.cache)
    result: dict = {"recognizer": SHIPPED_RECOGNIZER, "bins": args.bins, "estimators": {}}
    figure, axes = plt.subplots(2, 4, figsize=(14, 7), sharex=True, sharey=True)
    for axis, name in zip(axes.ravel(), ESTIMATORS, strict=True):
        calibration = shipped(name)
        celeba_only = bool(estimator_class(name).needs)
        sets = {"lfw": (lfw_scores[name], lfw_pairs, lfw_similarity),
                "test_side": test.genuine(name, SHIPPED_RECOGNIZER, celeba_only)}
        entry = {"fitted_on": calibration.about["data"], "mate_cut": calibration.mate_cut,
                 "fitted_fnmr": calibration.about["fnmr_overall"],
                 "all_mates": all_mates(name, calibration,
                                        train.genuine(name, SHIPPED_RECOGNIZER, celeba_only), sets)}
        for set_name, (scores, pairs, similarity) in sets.items():
            table, error = reliability(calibration, scores, pairs, similarity, args.bins)
            observed = float(np.average(table["observed"], weights=table["count"]))
            entry[set_name] = {"calibration_error": round(error, 4),
                               "fnmr_observed": round(observed, 4),
                               "fnmr_predicted": round(float(np.average(
                                   table["predicted"], weights=table["count"])), 4),
                               "bins": table.round(4).to_dict(orient="records")}
            axis.plot(table["predicted"], table["observed"], "o-", label=f"{set_name} "
                      f"(error {error:.3f})")
        axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        axis.set_title(name)
        axis.set_xscale("symlog", linthresh=0.01)
        axis.set_yscale("symlog", linthresh=0.01)
        axis.legend(fontsize=7)
        result["estimators"][name] = entry
        print(name, {k: entry[k]["calibration_error"] for k in sets}, "all mates:",
              {k: v["error"] for k, v in entry["all_mates"].items()}, flush=True)
    for axis in axes[1]:
        axis.set_xlabel("predicted FNMR")
    for axis in axes[:, 0]:
        axis.set_ylabel("observed FNMR")
    figure.suptitle(f"Shipped calibrations: {SHIPPED_RECOGNIZER} FNMR at its threshold, held-out "
                    "people (bins of equal count)")
    figure.tight_layout()
    figure.savefig(ROOT / "docs" / "img" / "calibration_reliability.png", dpi=110)
    out = ROOT / "benchmarks" / "results" / "calibration.json"
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
