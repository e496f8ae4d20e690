"""Make the shipped calibrations: each built-in estimator's raw score → SFace's expected FNMR.

    python scripts/calibrate.py [--cache .fiqa-cache]

Fitted (:func:`fiqa.calibration.fit`) on the train side of CelebA and FIW
(:func:`fiqa.training.support_set.side_of`: CelebA split by identity, FIW by family; no LFW
image), every genuine pair within an identity, each counted for each image whose mate is good
(scored at or above the median), at SFace's stored threshold (FMR 1e-3 on LFW View 2 impostors,
:data:`fiqa.verify.DEFAULT_THRESHOLDS`). Estimators that read detection metadata
(``baseline``, ``detection``, ``landmarks``) are fitted on CelebA only: FIW's crops come aligned,
with no detection to read. Writes ``weights/calibrations/<estimator>.sface.json``; how well they
hold on LFW View 2 is ``benchmarks/calibration.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fiqa import estimator_class
from fiqa.calibration import SHIPPED_RECOGNIZER, fit
from fiqa.device import retain_freed_memory
from fiqa.training.support_set import embedded
from fiqa.verify import DEFAULT_THRESHOLDS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHIPPED = ("magface", "ri", "ri-proximity", "attention", "sface-norm", "baseline", "detection",
           "landmarks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache")
    parser.add_argument("--estimators", default=",".join(SHIPPED))
    args = parser.parse_args()
    retain_freed_memory()  # network passes reuse freed pages, as fiqa's commands do
    estimators = tuple(args.estimators.split(","))
    train = embedded(DATA, "train", (SHIPPED_RECOGNIZER,), estimators, args.cache)
    threshold = DEFAULT_THRESHOLDS[SHIPPED_RECOGNIZER]
    out = ROOT / "weights" / "calibrations"
    out.mkdir(exist_ok=True)
    for name in estimators:
        metadata = bool(estimator_class(name).needs)
        data = "CelebA train side" if metadata else "CelebA + FIW train side"
        calibration = fit(name, SHIPPED_RECOGNIZER, threshold,
                          *train.genuine(name, SHIPPED_RECOGNIZER, metadata), {
                              "data": f"{data} (fiqa.training.support_set.side_of; no LFW)",
                              "pairs": "every genuine pair within an identity, for each image "
                                       "whose mate scores at or above the median",
                              "threshold_from": "SFace at FMR 1e-3 on LFW View 2 impostors",
                              "made_by": "python scripts/calibrate.py " + " ".join(sys.argv[1:])})
        calibration.save(out / f"{name}.{SHIPPED_RECOGNIZER}.json")
        print(f"{name}: {calibration.about['comparisons']} comparisons over "
              f"{calibration.about['images']} images, FNMR {calibration.about['fnmr_overall']:.3f}"
              f", {len(calibration.scores)} knots", flush=True)


if __name__ == "__main__":
    main()
