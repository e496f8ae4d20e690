"""Many estimators against many recognizers: EDC, pAUC with baselines and bootstrap intervals."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..score_alignment import aligned
from .edc import (
    crfiqa_erc,
    edc,
    normalized_pauc,
    oracle_quality,
    pair_quality,
    pauc,
    random_pauc,
    threshold_for_fmr,
    threshold_for_fnmr,
)
from .features import embedding_column

MIN_FALSE_MATCHES = 10  # an FMR target resting on fewer impostor accepts gets a warning


@dataclass
class Evaluation:
    """summary: one row per (recognizer, estimator); curves: the EDC points; warnings."""

    summary: pd.DataFrame
    curves: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of N×D arrays (NaN rows stay NaN)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


FAILURES = ("as-errors", "left-out")


def evaluate(pairs: pd.DataFrame, features: dict[str, np.ndarray], paths: list[str],
             estimators: list[str], recognizers: list[str], fmr: float | None = 1e-3,
             fnmr: float | None = None, limit: float = 0.2, bootstrap: int = 200,
             seed: int = 0, failures: str = "as-errors", alignment: str | None = None,
             discrepancies: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None
             ) -> Evaluation:
    """Evaluate every estimator against every recognizer on ``pairs``.

    features: per estimator name one value, per ``embedding_column(recognizer)`` one vector, for
    every entry of ``paths``. The threshold is fixed at ``fmr`` over all impostors, or at a
    starting ``fnmr`` over all genuine comparisons when given. A comparison with an image
    without a face (NaN features) is, with ``failures="as-errors"``, a non-match whose pair
    quality is the lowest (it is discarded first); with ``"left-out"`` it is dropped. Both are
    counted in the summary (``failed``, ``left_out``). With ``alignment`` (its name) and
    ``discrepancies`` (per recognizer, what gives its faces' discrepancies:
    :func:`fiqa.score_alignment.discrepancy_model`) each recognizer is evaluated twice: on its
    cosines, and as ``<recognizer>+<alignment>`` on the aligned scores (its own threshold at the
    same FMR or starting FNMR).
    """
    if failures not in FAILURES:
        raise ValueError(f"failures must be one of {FAILURES}, got {failures!r}")
    row = {p: i for i, p in enumerate(paths)}
    ia, ib = pairs["path_a"].map(row).to_numpy(), pairs["path_b"].map(row).to_numpy()
    same = pairs["same"].to_numpy(bool)
    identity = pairs["identity_a"].to_numpy()
    rows, curves, warnings = [], [], []
    qualities = {e: pair_quality(features[e][ia], features[e][ib]) for e in estimators}
    unscored = np.zeros(len(pairs), bool)  # a comparison some estimator could not score
    for quality in qualities.values():
        unscored |= np.isnan(quality)
    for recognizer in recognizers:
        vectors = features[embedding_column(recognizer)]
        scores = {recognizer: cosine(vectors[ia], vectors[ib])}
        if alignment is not None:  # the aligned scores beside the plain ones
            discrepancy = discrepancies[recognizer](vectors)
            scores[f"{recognizer}+{alignment}"] = aligned(scores[recognizer], discrepancy[ia],
                                                          discrepancy[ib])
        for name, similarity in scores.items():
            failed = np.isnan(similarity) | unscored
            valid = ~failed if failures == "left-out" else np.ones_like(failed)
            similarity = np.where(failed, -np.inf, similarity)
            sim, same_v = similarity[valid], same[valid]
            threshold = _threshold(sim, same_v, fmr, fnmr)
            impostors = int((~same_v).sum())
            if fnmr is None and impostors * fmr < MIN_FALSE_MATCHES:
                warnings.append(f"{name}: FMR {fmr:g} rests on {impostors} impostor comparisons "
                                f"({impostors * fmr:.1f} false matches); use a larger protocol "
                                "or a starting --fnmr")
            base = {"recognizer": name, "genuine": int(same_v.sum()), "impostor": impostors,
                    "failures": failures, "failed": int(failed.sum()),
                    "failed_genuine": int((failed & same).sum()), "left_out": int((~valid).sum()),
                    "threshold": threshold}
            qualities_v = {e: np.where(failed, -np.inf, q)[valid] for e, q in qualities.items()}
            part_rows, part_curves = _estimators_on(base, sim, same_v, identity[valid],
                                                    qualities_v, fmr, fnmr, limit, bootstrap,
                                                    seed)
            rows += part_rows
            curves += part_curves
    return Evaluation(pd.DataFrame(rows), pd.concat(curves, ignore_index=True), warnings)


def _estimators_on(base: dict, sim: np.ndarray, same: np.ndarray, identity: np.ndarray,
                   qualities: dict[str, np.ndarray], fmr: float | None, fnmr: float | None,
                   limit: float, bootstrap: int, seed: int
                   ) -> tuple[list[dict], list[pd.DataFrame]]:
    """Summary rows and EDC curves of each estimator (pair ``qualities``) on one recognizer's
    scores ``sim`` at ``base["threshold"]``, with the oracle's curve last."""
    threshold, rows, curves = base["threshold"], [], []
    genuine = sim[same]
    oracle_curve = edc(genuine, oracle_quality(genuine, threshold), threshold)
    oracle = pauc(oracle_curve, limit)
    for estimator, quality in qualities.items():
        curve = edc(genuine, quality[same], threshold)
        value, random = pauc(curve, limit), random_pauc(curve, limit)
        low, high = _bootstrap(sim, same, quality, identity, fmr, fnmr, limit, bootstrap, seed)
        rows.append({**base, "estimator": estimator, "fnmr_start": float(curve.error[0]),
                     "pauc": value, "pauc_low": low, "pauc_high": high,
                     "pauc_random": random, "pauc_oracle": oracle,
                     "pauc_normalized": normalized_pauc(value, oracle, random),
                     "crfiqa_erc_auc": crfiqa_erc(sim, same, quality, fmr or 1e-3).auc()})
        curves.append(pd.DataFrame({"recognizer": base["recognizer"], "estimator": estimator,
                                    "discard": curve.discard, "fnmr": curve.error}))
    curves.append(pd.DataFrame({"recognizer": base["recognizer"], "estimator": "oracle",
                                "discard": oracle_curve.discard, "fnmr": oracle_curve.error}))
    return rows, curves


def _threshold(similarity: np.ndarray, same: np.ndarray, fmr: float | None,
               fnmr: float | None) -> float:
    if fnmr is not None:
        return threshold_for_fnmr(similarity[same], fnmr)
    return threshold_for_fmr(similarity[~same], fmr)


def _bootstrap(similarity: np.ndarray, same: np.ndarray, quality: np.ndarray,
               identity: np.ndarray, fmr: float | None, fnmr: float | None, limit: float,
               count: int, seed: int) -> tuple[float, float]:
    """95 % interval of the pAUC over ``count`` resamplings of identities (threshold refitted)."""
    if count <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    names, members = np.unique(identity, return_inverse=True)
    groups = [np.flatnonzero(members == i) for i in range(len(names))]
    values = []
    for _ in range(count):
        picked = np.concatenate([groups[i] for i in rng.integers(len(groups), size=len(groups))])
        s, g, q = similarity[picked], same[picked], quality[picked]
        if g.all() or not g.any():
            continue
        threshold = _threshold(s, g, fmr, fnmr)
        values.append(pauc(edc(s[g], q[g], threshold), limit))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def plot(evaluation: Evaluation, path: str, limit: float = 0.2) -> None:
    """One panel per recognizer: an EDC per estimator, the oracle and random dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recognizers = list(dict.fromkeys(evaluation.curves["recognizer"]))
    figure, axes = plt.subplots(1, len(recognizers), figsize=(5.5 * len(recognizers), 4.2),
                                squeeze=False)
    for axis, name in zip(axes[0], recognizers, strict=True):
        curves = evaluation.curves[evaluation.curves["recognizer"] == name]
        start = evaluation.summary.loc[evaluation.summary["recognizer"] == name, "fnmr_start"]
        for estimator, curve in curves.groupby("estimator", sort=False):
            dashed = estimator == "oracle"
            axis.step(curve["discard"], curve["fnmr"], where="post", label=estimator,
                      linestyle="--" if dashed else "-", color="gray" if dashed else None)
        axis.axhline(start.iloc[0], linestyle=":", color="black", label="random")
        axis.axvline(limit, color="lightgray", linewidth=0.8)
        right = min(1.0, 2.5 * limit)
        top = curves.loc[curves["discard"] <= right, "fnmr"].max()
        axis.set(title=name, xlabel="fraction of genuine comparisons discarded", ylabel="FNMR",
                 xlim=(0, right), ylim=(0, 1.1 * top))
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(evaluation: Evaluation, folder: str, about: dict, limit: float = 0.2) -> None:
    """summary.md, summary.json, curves.csv and edc.png (if matplotlib is installed) in folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    evaluation.curves.to_csv(out / "curves.csv", index=False)
    records = evaluation.summary.to_dict(orient="records")
    (out / "summary.json").write_text(json.dumps(
        _strict({"about": about, "results": records, "warnings": evaluation.warnings}),
        indent=2, allow_nan=False) + "\n")
    lines = [f"# FIQA evaluation: {about.get('protocol', '')}", "",
             f"EDC as in ISO/IEC 29794-1 (threshold fixed first: {about.get('threshold_rule')}), "
             f"pAUC over discard [0, {limit:g}] with stepwise interpolation; 95 % bootstrap "
             "intervals over identities; normalised pAUC: 0 = oracle, 1 = random. The last "
             "column is the CR-FIQA-code ERC area (threshold recomputed per step, all discard "
             "fractions), not comparable with the rest. Failed: comparisons with an image "
             "without a face, counted as non-matches of the lowest quality (`--failures "
             "as-errors`) or left out (`left-out`).", "",
             "| recognizer | estimator | genuine / impostor | failed (genuine) | left out | "
             "FNMR at 0 | pAUC [95 % CI] | random | oracle | normalised | CR-FIQA ERC AUC |",
             "|---" * 11 + "|"]
    for r in records:
        lines.append(
            f"| {r['recognizer']} | {r['estimator']} | {r['genuine']} / {r['impostor']} | "
            f"{r['failed']} ({r['failed_genuine']}) | {r['left_out']} | "
            f"{r['fnmr_start']:.4f} | {r['pauc']:.5f} [{r['pauc_low']:.5f}, {r['pauc_high']:.5f}]"
            f" | {r['pauc_random']:.5f} | {r['pauc_oracle']:.5f} | {r['pauc_normalized']:.3f} | "
            f"{r['crfiqa_erc_auc']:.4f} |")
    lines += [""] + [f"Warning: {w}" for w in evaluation.warnings]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    try:
        plot(evaluation, str(out / "edc.png"), limit)
    except ImportError:
        pass


def _strict(value):
    """``value`` made fit for strict JSON: NaN and infinities → None, numpy scalars → Python."""
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value
