"""Default verification thresholds, quality-weighted enrollment, and the verification quality gate.

    python benchmarks/enrollment.py [thresholds] [enrollment] [gate] [--bootstrap 200]

thresholds: the cosine at FMR 1e-3 over every impostor pair of the LFW View 2 pair images, per
    recognizer (the constants of fiqa/verify.py) → results/enrollment_thresholds.json.
enrollment: per identity (≥ 5 images, at most 20), two images are probes and the rest is
    enrolled; closed-set rank-1 and TAR at FAR 1e-3 (probe vs templates) for each weighting of
    each learned estimator, a plain mean and a single random image, over 3 random splits, with
    bootstrap intervals over identities. On LFW View 2 people (held out from the estimators'
    training) and on CelebA (NOT held out: the estimators trained on it)
    → results/enrollment.json, docs/img/enrollment_identification.png.
gate: LFW View 2 pairs at dlib's default threshold, FNMR / FMR / fraction rejected at several
    min_quality values → results/enrollment_gate.json, docs/img/enrollment_gate.png.

Scores and embeddings come from the evaluation cache (.fiqa-cache/), computed where missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from rich.progress import Progress  # noqa: E402

from fiqa.evaluation.edc import threshold_for_fmr  # noqa: E402
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column  # noqa: E402
from fiqa.evaluation.protocols import pair_paths  # noqa: E402
from fiqa.gallery import DEFAULT_FLOOR, DEFAULT_WEIGHTING, Gallery  # noqa: E402
from fiqa.imageio import identity_folders, read_image  # noqa: E402
from fiqa.pipeline import Scorer  # noqa: E402
from fiqa.recognizers import list_recognizers  # noqa: E402
from fiqa.training.data import DEFAULT_DATA, lfw_pair_identities  # noqa: E402
from fiqa.training.degrade import DEGRADATIONS, degrade  # noqa: E402
from fiqa.verification import best_threshold, read_lfw_pairs  # noqa: E402
from fiqa.verify import DEFAULT_THRESHOLDS, min_quality_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS, IMAGES = ROOT / "benchmarks" / "results", ROOT / "docs" / "img"
DEGRADED = ROOT / ".fiqa-cache" / "enrollment-degraded"
ESTIMATORS = ("magface", "ri", "ri-proximity", "landmarks")
WEIGHTINGS = ("softmax:5", "softmax:10", "softmax:20", "power:1", "power:2", "power:4",
              "topk:1", "topk:3")
FAR = 1e-3
PROBES, SPLITS, CAP, MIN_IMAGES = 2, 3, 20, 5
GATES = (0, 10, 20, 30, 40, 50, 60)
THRESHOLD_RECOGNIZERS = ("dlib", "faceres", "magface", "sface", "mobilefacenet", "mobileface-v3",
                         "vit")


def lfw_pairs():
    return read_lfw_pairs(DEFAULT_DATA / "lfw" / "pairs.txt")


def features(paths: list[str], estimators=ESTIMATORS, recognizers=("dlib",)):
    """({estimator: N 0–100 qualities, recognizer: N×D unit embeddings}); NaN where no face."""
    scorer = Scorer(list(estimators), list(recognizers), device="cpu")
    with Progress() as progress:
        columns, _ = compute_features(paths, scorer, FeatureCache(ROOT / ".fiqa-cache"), progress)
    out = {e.name: e.to_quality(columns[e.name]) for e in scorer.estimators}
    for model in scorer.recognizers:
        vectors = columns[embedding_column(model.name)]
        out[model.name] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return out


def thresholds() -> dict:
    """Per recognizer: the cosine at FMR 1e-3 over all impostor pairs of the View 2 images, with
    the best-accuracy threshold and the FNMR / FMR of the 6,000 pairs at it."""
    pairs = lfw_pairs()
    paths = pair_paths(pairs)
    index = {p: i for i, p in enumerate(paths)}
    names = [name for name in list_recognizers() if name in THRESHOLD_RECOGNIZERS]
    data = features(paths, (), names)
    owner = np.array([Path(p).parent.name for p in paths])
    result = {}
    for name in names:
        found = ~np.isnan(data[name][:, 0])
        vectors, people = data[name][found].astype(np.float32), owner[found]
        upper = np.triu_indices(len(vectors), 1)
        similarity = (vectors @ vectors.T)[upper]
        impostor = similarity[people[upper[0]] != people[upper[1]]]
        threshold = threshold_for_fmr(impostor, FAR)
        a, b = data[name][pairs["path_a"].map(index)], data[name][pairs["path_b"].map(index)]
        pair_similarity = np.nan_to_num((a * b).sum(1), nan=-1.0)
        same = pairs["same"].to_numpy()
        result[name] = {
            "threshold_fmr_1e-3": round(threshold, 4), "impostor_pairs": int(len(impostor)),
            "images": int(found.sum()),
            "pairs_fnmr": float((pair_similarity[same] < threshold).mean()),
            "pairs_fmr": float((pair_similarity[~same] >= threshold).mean()),
            "best_accuracy_threshold": round(best_threshold(pair_similarity, same), 4)}
        print(name, result[name])
    return result


def people_of(folder: Path, keep=None, seed: int = 0) -> dict[str, list[str]]:
    """Identity → image paths (≥ MIN_IMAGES images, a seeded CAP of them at most)."""
    rng = np.random.default_rng(seed)
    people = {}
    for name, paths in identity_folders(folder).items():
        if keep is not None and name not in keep:
            continue
        images = [str(p) for p in paths]
        if len(images) >= MIN_IMAGES:
            people[name] = sorted(rng.choice(images, CAP, replace=False)) if len(
                images) > CAP else images
    return people


def degraded_copies(paths: list[str], seed: int = 0) -> list[str]:
    """A degraded PNG of each image (one random kind of fiqa.training.degrade at a level in
    [0.4, 0.9] on the whole image), written once under .fiqa-cache/enrollment-degraded/."""
    rng = np.random.default_rng(seed)
    out = []
    for path in paths:
        kind, level = rng.choice(sorted(DEGRADATIONS)), rng.uniform(0.4, 0.9)
        target = DEGRADED / Path(path).parent.name / f"{Path(path).stem}_{kind}.png"
        image = torch.from_numpy(read_image(path).pixels).permute(2, 0, 1)[None]
        pixels = degrade(image, kind, level, rng)[0].permute(1, 2, 0).numpy()
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(target)
        out.append(str(target))
    return out


def enrollment(people: dict[str, list[str]], bootstrap: int, degraded: float = 0.0,
               seed: int = 0) -> dict:
    """Rank-1 and TAR at FAR 1e-3 of each way of making templates (see the module docstring).

    degraded: the fraction of enrolled images swapped for their degraded copy (where MTCNN
    still finds a face in it); probes stay clean.
    """
    paths = [p for images in people.values() for p in images]
    data = features(paths + degraded_copies(paths) if degraded else paths)
    copy = len(paths)  # the degraded copy of image i is row i + copy
    owner = np.repeat(np.arange(len(people)), [len(v) for v in people.values()])
    found = ~np.isnan(data["dlib"][:copy, 0]) & np.all([~np.isnan(data[e][:copy])
                                                        for e in ESTIMATORS], 0)
    swappable = np.zeros(copy, bool)
    if degraded:
        swappable = ~np.isnan(data["dlib"][copy:, 0]) & np.all([~np.isnan(data[e][copy:])
                                                               for e in ESTIMATORS], 0)
    rows = {i: np.flatnonzero(found & (owner == i)) for i in range(len(people))}
    rows = {i: r for i, r in rows.items() if len(r) >= MIN_IMAGES}
    configs = [("single random image", None, None, 0.0), ("mean", None, "mean", 0.0)]
    configs += [(f"{e} {w}", e, w, 0.0) for e in ESTIMATORS for w in WEIGHTINGS]
    configs += [(f"{e} default ({DEFAULT_WEIGHTING}, floor {DEFAULT_FLOOR:g})", e,
                 DEFAULT_WEIGHTING, DEFAULT_FLOOR) for e in ESTIMATORS]
    outcomes: dict[str, list] = {name: [] for name, *_ in configs}
    rng = np.random.default_rng(seed)
    for _ in range(SPLITS):
        probes, enrolled = {}, {}
        for i, r in rows.items():
            chosen = rng.permutation(r)
            swap = swappable[chosen[PROBES:]] & (rng.random(len(chosen) - PROBES) < degraded)
            probes[i], enrolled[i] = chosen[:PROBES], chosen[PROBES:] + copy * swap
        single = {i: rng.choice(e) for i, e in enrolled.items()}
        for name, estimator, weighting, floor in configs:
            gallery = Gallery("dlib", estimator or "magface", weighting or "mean", floor)
            for i, e in enrolled.items():
                picked = e if weighting else [single[i]]
                quality = data[estimator][picked] if estimator else np.full(len(picked), 100.0)
                gallery.add(str(i), data["dlib"][picked], quality)
            outcomes[name].append(_scores(gallery, probes, data["dlib"]))
    identities = sorted(rows)
    draws = [rng.choice(identities, len(identities)) for _ in range(bootstrap)]  # shared: paired
    result = {"identities": len(identities), "probes_per_split": PROBES * len(identities),
              "enrolled_images": int(sum(len(r) - PROBES for r in rows.values())),
              "degraded_fraction": degraded, "splits": SPLITS, "configs": {}}
    values = {}
    for name, parts in outcomes.items():
        result["configs"][name], values[name] = _summary(parts, identities, draws)
    for name in outcomes:
        difference = values[name] - values["mean"]  # paired over the same identity draws
        low, high = (np.percentile(difference, [2.5, 97.5], axis=0) if bootstrap
                     else [[np.nan] * 2] * 2)
        result["configs"][name].update(rank1_minus_mean_ci=[float(low[0]), float(high[0])],
                                       tar_minus_mean_ci=[float(low[1]), float(high[1])])
        print(f"{name:45s} rank-1 {result['configs'][name]['rank1']:.4f} "
              f"TAR {result['configs'][name]['tar']:.4f}")
    return result


def _scores(gallery: Gallery, probes: dict[int, np.ndarray], embeddings: np.ndarray) -> dict:
    """Per identity: rank-1 hits of its probes, genuine and impostor similarities."""
    column = {name: j for j, name in enumerate(gallery.identities)}
    out = {}
    for i, rows in probes.items():
        similarity = gallery.similarities(embeddings[rows])
        own = column.get(str(i))
        if own is None:  # every enrolled image below the floor: its probes cannot be found
            out[i] = (np.zeros(len(rows)), np.full(len(rows), -1.0), similarity.ravel())
            continue
        others = np.delete(similarity, own, axis=1)
        out[i] = (similarity.argmax(1) == own, similarity[:, own], others.ravel())
    return out


def _summary(parts: list[dict], identities: list[int], draws: list[np.ndarray]
             ) -> tuple[dict, np.ndarray]:
    """Rank-1 and TAR with 95 % bootstrap intervals over identities (``draws``: resampled
    identities), and the draws' B×2 values. Only the top 2 % of the impostor scores are kept
    (with their total count): the threshold at FAR 1e-3 lies among them."""
    everything = np.concatenate([part[i][2] for part in parts for i in identities])
    cutoff = np.quantile(everything, 1 - 20 * FAR)
    per_identity = {i: [np.concatenate([part[i][k] for part in parts]) for k in range(3)]
                    for i in identities}
    per_identity = {i: (hits, genuine, impostor[impostor >= cutoff], len(impostor))
                    for i, (hits, genuine, impostor) in per_identity.items()}

    def measure(chosen) -> tuple[float, float]:
        hits, genuine, top, count = (list(x) for x in zip(*(per_identity[i] for i in chosen),
                                                          strict=True))
        top = np.concatenate(top)
        allowed = FAR * sum(count)
        if allowed >= len(top) - 1:
            raise RuntimeError("too few impostor scores kept for the bootstrap")
        threshold = threshold_for_fmr(top, allowed / len(top))
        return float(np.mean(np.concatenate(hits))), float(np.mean(np.concatenate(genuine)
                                                                    >= threshold))

    rank1, tar = measure(identities)
    values = np.array([measure(chosen) for chosen in draws]).reshape(-1, 2)
    low, high = np.percentile(values, [2.5, 97.5], axis=0) if draws else [[np.nan] * 2] * 2
    return {"rank1": rank1, "rank1_ci": [float(low[0]), float(high[0])], "tar": tar,
            "tar_ci": [float(low[1]), float(high[1])]}, values


def gate() -> dict:
    """FNMR, FMR and fraction rejected on the View 2 pairs at dlib's default threshold."""
    pairs = lfw_pairs()
    paths = pair_paths(pairs)
    index = {p: i for i, p in enumerate(paths)}
    data = features(paths)
    a, b = pairs["path_a"].map(index).to_numpy(), pairs["path_b"].map(index).to_numpy()
    similarity = (data["dlib"][a] * data["dlib"][b]).sum(1)
    same, threshold = pairs["same"].to_numpy(), DEFAULT_THRESHOLDS["dlib"]
    result = {"threshold": threshold, "pairs": len(pairs), "genuine": int(same.sum()),
              "estimators": {}}
    for name in ESTIMATORS:
        quality = np.fmin(data[name][a], data[name][b])  # NaN only where both lack a face
        quality[np.isnan(similarity)] = np.nan
        rows = []
        for minimum in GATES:
            kept = quality >= minimum  # NaN (no face) is never kept
            accepted = similarity >= threshold
            rows.append({
                "min_quality": minimum, "rejected": float(1 - kept.mean()),
                "rejected_genuine": float(1 - kept[same].mean()),
                "fnmr": float((~accepted[kept & same]).mean()),
                "fmr": float(accepted[kept & ~same].mean())})
        genuine = same & ~np.isnan(quality)
        picks = {f"target_discard_{t:g}": min_quality_for(
            quality[genuine], similarity[genuine], threshold, target_discard=t)
            for t in (0.05, 0.1)}
        result["estimators"][name] = {"gates": rows, "min_quality_for": picks}
        print(name, picks, rows)
    return result


def plot_enrollment(results: dict) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 8))
    for ax, metric, label in ((axes[0], "rank1", "rank-1"), (axes[1], "tar", f"TAR @ FAR {FAR:g}")):
        offsets = np.linspace(-0.3, 0.3, len(results))
        for offset, (dataset, result) in zip(offsets, results.items(), strict=True):
            names = list(result["configs"])
            values = np.array([result["configs"][n][metric] for n in names])
            ci = np.array([result["configs"][n][f"{metric}_ci"] for n in names]).T
            y = np.arange(len(names)) + offset
            ax.errorbar(values, y, xerr=[values - ci[0], ci[1] - values], fmt="o", ms=3,
                        label=dataset)
        ax.set_yticks(np.arange(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Templates: dlib, 2 probes per identity vs the rest enrolled (95 % bootstrap CI)")
    fig.tight_layout()
    fig.savefig(IMAGES / "enrollment_identification.png", dpi=120)


def plot_gate(result: dict) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, entry in result["estimators"].items():
        rows = entry["gates"]
        ax.plot([r["rejected"] for r in rows], [r["fnmr"] for r in rows], "o-", label=name)
    ax.axhline(rows[0]["fnmr"], color="grey", ls="--", lw=1, label="rejecting at random")
    ax.set_xlabel("fraction of pairs rejected by the gate")
    ax.set_ylabel(f"FNMR at dlib's default threshold {result['threshold']:.4f}")
    ax.set_title(f"LFW View 2 pairs, dlib: gate at min_quality {GATES[0]}–{GATES[-1]}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMAGES / "enrollment_gate.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", default=["thresholds", "enrollment", "gate"],
                        choices=["thresholds", "enrollment", "gate"])
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    if "thresholds" in args.sections:
        (RESULTS / "enrollment_thresholds.json").write_text(json.dumps(
            {"rule": f"cosine at FMR {FAR:g} over all impostor pairs of the LFW View 2 pair "
             "images", "recognizers": thresholds()}, indent=2) + "\n")
    if "enrollment" in args.sections:
        lfw = people_of(DEFAULT_DATA / "lfw" / "images", lfw_pair_identities(DEFAULT_DATA / "lfw"))
        celeba = people_of(DEFAULT_DATA / "celeba")
        results = {
            "LFW View 2 people (held out)": enrollment(lfw, args.bootstrap),
            "LFW, half the enrolled images degraded": enrollment(lfw, args.bootstrap, 0.5),
            "CelebA (estimators trained on it)": enrollment(celeba, args.bootstrap),
            "CelebA, half the enrolled images degraded": enrollment(celeba, args.bootstrap, 0.5)}
        (RESULTS / "enrollment.json").write_text(json.dumps(
            {"recognizer": "dlib", "far": FAR, "probes_per_identity": PROBES, "cap": CAP,
             "min_images": MIN_IMAGES, "bootstrap": args.bootstrap, "results": results},
            indent=2) + "\n")
        plot_enrollment(results)
    if "gate" in args.sections:
        result = gate()
        (RESULTS / "enrollment_gate.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_gate(result)


if __name__ == "__main__":
    main()
