"""Generalisation benchmark: estimators on LFW View 2, clean and degraded as whole photos.

Sets (``--sets``, comma-separated; default all):

``clean``
    (a) LFW View 2 as it is. Estimators trained without any LFW image, passed with
    ``--estimators``, measure generalisation to an unseen dataset.
``photo``
    (b) LFW View 2 with a seeded half of its photographs degraded as whole photos, before
    detection and alignment, by :func:`fiqa.training.photo_degrade.evaluation_recipe` (ranges,
    order and PSF the training recipe never uses). The other half are byte-identical copies, so
    the feature cache reuses their clean results.
``families``
    (c) one set per family of the evaluation recipe (``family-<name>``): the same half of the
    images, degraded with that family only (``families=[name]``), from the same seeds. An
    estimator trained without family X is evaluated on ``family-X`` with ``--held-out
    X=NAME`` (it is added to that set only), beside the estimators trained on everything.

Every set is evaluated like ``fiqa evaluate <images> --protocol <lfw>/pairs.txt --fnmr 0.1
--failures as-errors`` (the functions that command calls: threshold at a starting FNMR of
10 %, comparisons with a face not found counted as errors of the lowest quality, pAUC over
discard [0, 0.2], bootstrap over identities). For the degraded sets the script also gives,
per estimator, the **clean-versus-degraded ROC AUC** (how well the raw score, higher meaning
clean, separates the unchanged from the degraded images, over the images where a face was
found) and the fractions of clean and of degraded images without a face.

Degraded images. The half is a seeded permutation (``--seed``) of all 7,701 View 2 images, so
``--limit-pairs`` picks a subset of the same draw and a later full run resumes a smoke run's
folders. Each degraded image has its own base seed; when the recipe applies nothing (or
changes no pixel) it is re-drawn with the next seed, and the manifest records the seed used.
The face geometry the families need (occlusion, face-unit sizes) comes from the default
detector on the clean photo (cached), whatever ``--detector`` is evaluated. Degraded photos
are written as **PNG bytes under the original ``.jpg`` name**: pairs.txt resolves unchanged,
Pillow (and ``fiqa.imageio.read_image``) decode by content, and the pixels the models see are
exactly those the recipe made. A JPEG, even at quality 100 and 4:4:4, would re-quantise every
image on an 8×8 grid at offset 0, an extra, unshifted JPEG generation on top of the recipe's
own (its ``jpeg`` steps are what should put a block grid there). The cost: disk (~57 KB per
degraded photo against LFW's ~9 KB; ~2.3 GB for the nine degraded sets), and tools that trust
the extension are misled. ``<work>/<set>/manifest.csv`` lists
per image: path, selected (in the half), degraded, base_seed, seed, steps (JSON: family and
parameters of every applied step), clean_face (for the selected: whether the clean photo gave
a face geometry), recipe (a digest: a changed recipe rebuilds). Building is resumable: images
already written are kept.

Commands (``OMP_NUM_THREADS=1`` on shared CPUs)::

    python benchmarks/generalisation.py                           # every set, defaults
    python benchmarks/generalisation.py --sets clean -m <estimators trained without LFW>
    python benchmarks/generalisation.py --sets photo
    python benchmarks/generalisation.py --sets families --families jpeg \\
        --family-estimators ri,sface-norm,magface,detection,baseline \\
        --held-out jpeg=ri:ri_head_without_jpeg     # after train_ri.py --without jpeg
    python benchmarks/generalisation.py --limit-pairs 10 -m baseline,magface -r dlib,sface \\
        --bootstrap 20 --family-bootstrap 20                      # smoke test, ~200 pairs

Time (2 shared CPU cores, ``OMP_NUM_THREADS=1``). The smoke test above, from an empty cache
(200 pairs: 312 images per set, 10 sets, ~1,650 image feature passes, 1,340 degraded photos):
4 min 49 s; run again, everything reused: 22 s. Building costs 30–60 ms per degraded photo.
A feature pass with every default model costs about 0.37 s per image here (MTCNN 64 ms, the
ten estimators 157 ms, the four recognizers 127 ms, measured on 64 images in session 4; since
session 9 YuNet and cheaper passes: clean and photo, 12 estimators × 5 recognizers + vit, took
533 s + 331 s from a near-empty cache in session 15), so the full run
(7,701 clean images, then 3,850 new images in each of the 9 degraded sets: ~42,000 passes,
~35,000 degraded photos) takes about 4.5 h of features plus 30 min of building, ~5 h in all;
less when the clean LFW features are already in the cache. A GPU (``--device cuda``) cuts the
feature time; the building stays on the CPU. Runs resume from the folders and the cache.

Results: ``benchmarks/results/generalisation/<set>/`` (``--results``) holds ``fiqa evaluate``'s
summary.json, summary.md, curves.csv, edc.png and ``degradation_auc.csv``;
``benchmarks/results/generalisation/summary.csv`` combines every set evaluated so far (the
sets of a run replace their earlier rows): set, recognizer, estimator, pauc, low, high,
normalised, failed, clean_vs_degraded_auc, no_face_clean, no_face_degraded.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sklearn.metrics import roc_auc_score

from fiqa import estimators, recognizers
from fiqa.detectors import DEFAULT_DETECTOR
from fiqa.device import resolve_device
from fiqa.evaluation import protocols
from fiqa.evaluation.features import FeatureCache, cached_faces, compute_features
from fiqa.evaluation.report import evaluate, write
from fiqa.faces import Faces
from fiqa.imageio import ImageReadError, read_image
from fiqa.pipeline import Scorer
from fiqa.training.photo_degrade import FaceGeometry, evaluation_recipe

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = ("baseline,detection,landmarks,dlib-norm,sface-norm,faceres-norm,vit-norm,"
              "mobileface-v3-norm,magface,ri-proximity,ri,attention")
RECOGNIZERS = "dlib,faceres,sface,mobilefacenet,mobileface-v3"
FNMR, LIMIT, FAILURES = 0.1, 0.2, "as-errors"  # as our held-back judging
RECIPE = evaluation_recipe()
RECIPE_ID = hashlib.sha1(repr(RECIPE).encode()).hexdigest()[:12]
FAMILIES = tuple(dict.fromkeys(step.family for step in RECIPE.steps))
MAX_DRAWS = 100  # seeds tried per image before giving up (a family that cannot apply)
MANIFEST = ["path", "selected", "degraded", "base_seed", "seed", "steps", "clean_face", "recipe"]
console = Console(stderr=True)


@dataclass(frozen=True)
class Variant:
    """One evaluation set: ``degraded`` False for clean LFW; ``families`` None for the whole
    recipe, else only these families; ``estimators`` evaluated and bootstrap resamplings."""

    name: str
    degraded: bool
    families: tuple[str, ...] | None
    estimators: tuple[str, ...]
    bootstrap: int


@dataclass(frozen=True)
class Photo:
    """A View 2 image: ``name`` (``person/file.jpg``), whether it is in the degraded half, and
    its base seed."""

    name: str
    degrade: bool
    seed: int


def main() -> None:
    args = parse_args()
    args.device = str(resolve_device(args.device))
    view2 = protocols.lfw_pairs(args.lfw / "pairs.txt", args.lfw / "images")
    plan = photo_plan(view2, args.seed)
    photos = [plan[image_name(p)] for p in protocols.pair_paths(limited(view2, args.limit_pairs))]
    cache = FeatureCache(args.cache)
    frames = []
    for variant in variants(args):
        start = time.perf_counter()
        console.rule(f"[bold]{variant.name}")
        images = build_set(variant, photos, args, cache) if variant.degraded else \
            args.lfw / "images"
        frames.append(run_set(variant, images, args, cache))
        console.print(f"{variant.name}: {time.perf_counter() - start:.0f} s")
    show(update_combined(args.results / "summary.csv", pd.concat(frames, ignore_index=True)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="clean,photo,families",
                        help="clean, photo and/or families (comma-separated)")
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw",
                        help="LFW folder with pairs.txt and images/")
    parser.add_argument("--work", type=Path, default=ROOT / ".fiqa-cache" / "generalisation",
                        help="where the degraded folders and their manifests go")
    parser.add_argument("--results", type=Path,
                        default=ROOT / "benchmarks" / "results" / "generalisation")
    parser.add_argument("--cache", type=Path, default=ROOT / ".fiqa-cache",
                        help="fiqa evaluate's feature cache, shared with other runs")
    parser.add_argument("-m", "--estimators", default=ESTIMATORS)
    parser.add_argument("-r", "--recognizers", default=RECOGNIZERS)
    parser.add_argument("--family-estimators", default=None,
                        help="estimators of the per-family sets (default: --estimators)")
    parser.add_argument("--held-out", action="append", default=[], metavar="FAMILY=EST[+EST]",
                        help="also evaluate these estimators (trained without FAMILY) on "
                        "family-FAMILY only; repeatable")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="families of the per-family sets")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="detector evaluated")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--family-bootstrap", type=int, default=50,
                        help="bootstrap resamplings of the per-family sets")
    parser.add_argument("--limit-pairs", type=int, default=None, metavar="N",
                        help="only the first N genuine and N impostor pairs of each fold")
    parser.add_argument("--seed", type=int, default=0,
                        help="draw of the degraded half and of the images' seeds; bootstrap")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args()


def names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.replace("+", ",").split(",") if n.strip()))


def variants(args: argparse.Namespace) -> list[Variant]:
    """The sets asked for by ``--sets``, in order: clean, photo, then one per family."""
    sets = names(args.sets)
    if unknown := set(sets) - {"clean", "photo", "families"}:
        raise SystemExit(f"--sets takes clean, photo, families; not {sorted(unknown)}")
    if unknown := set(names(args.families)) - set(FAMILIES):
        raise SystemExit(f"--families: {sorted(unknown)} not in the recipe's {list(FAMILIES)}")
    held_out = {}
    for spec in args.held_out:
        family, _, extra = spec.partition("=")
        if family not in FAMILIES or not extra:
            raise SystemExit(f"--held-out {spec!r}: expected FAMILY=EST[+EST], FAMILY in "
                             f"{list(FAMILIES)}")
        held_out[family] = held_out.get(family, ()) + names(extra)
    common = names(args.estimators)
    per_family = names(args.family_estimators) if args.family_estimators else common
    chosen = [Variant("clean", False, None, common, args.bootstrap)] if "clean" in sets else []
    if "photo" in sets:
        chosen.append(Variant("photo", True, None, common, args.bootstrap))
    if "families" in sets:
        chosen += [Variant(f"family-{f}", True, (f,),
                           tuple(dict.fromkeys(per_family + held_out.get(f, ()))),
                           args.family_bootstrap) for f in names(args.families)]
    return chosen


def limited(pairs: pd.DataFrame, count: int | None) -> pd.DataFrame:
    """The first ``count`` genuine and ``count`` impostor pairs of each fold (all if None)."""
    if count is None:
        return pairs
    return pairs.groupby(["fold", "same"], sort=False).head(count).reset_index(drop=True)


def image_name(path: str) -> str:
    """``.../person/person_0001.jpg`` → ``person/person_0001.jpg``."""
    return "/".join(Path(path).parts[-2:])


def photo_plan(pairs: pd.DataFrame, seed: int) -> dict[str, Photo]:
    """Every image of the (whole) protocol: a seeded half to degrade, and a base seed each."""
    all_names = sorted({image_name(p) for p in protocols.pair_paths(pairs)})
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(len(all_names))[:len(all_names) // 2].tolist())
    seeds = rng.integers(0, 2**31, len(all_names))
    return {name: Photo(name, i in half, int(seeds[i])) for i, name in enumerate(all_names)}


# ---------------------------------------------------------------- building the degraded sets

def build_set(variant: Variant, photos: list[Photo], args: argparse.Namespace,
              cache: FeatureCache) -> Path:
    """``<work>/<set>/images`` holding ``photos`` (degraded or copied), and its manifest.csv;
    images already written for the same plan and recipe are kept."""
    images, manifest = args.work / variant.name / "images", manifest_path(args, variant)
    done = read_manifest(manifest)
    todo = [p for p in photos if not written(done.get(p.name), p, images / p.name)]
    console.print(f"{variant.name}: {len(photos) - len(todo)} of {len(photos)} images already "
                  f"in {images}")
    if not todo:
        return images
    sources = [str(args.lfw / "images" / p.name) for p in todo]
    with Progress(console=console) as progress:
        faces = clean_faces([s for s, p in zip(sources, todo, strict=True) if p.degrade],
                            args.device, cache, progress)
        task = progress.add_task(f"building {variant.name}", total=len(todo))
        new = not manifest.is_file()
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=MANIFEST)
            if new:
                writer.writeheader()
            for photo, source in zip(todo, sources, strict=True):
                writer.writerow(make_image(photo, source, images / photo.name,
                                           faces.get(source), variant.families))
                file.flush()
                progress.advance(task)
    return images


def manifest_path(args: argparse.Namespace, variant: Variant) -> Path:
    return args.work / variant.name / "manifest.csv"


def read_manifest(path: Path) -> dict[str, dict]:
    """Manifest rows by image name (the last row of a name wins)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as file:
        return {row["path"]: row for row in csv.DictReader(file)}


def written(row: dict | None, photo: Photo, target: Path) -> bool:
    """Whether ``target`` exists with a manifest row of the same plan and recipe."""
    return (row is not None and target.is_file() and row["base_seed"] == str(photo.seed)
            and row["selected"] == yes_no(photo.degrade) and row["recipe"] == RECIPE_ID)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


@functools.cache
def geometry_scorer(device: str) -> Scorer:
    """The detector giving face geometry to the families: always the default one."""
    return Scorer((), device=device, detector=DEFAULT_DETECTOR)


def clean_faces(sources: list[str], device: str, cache: FeatureCache,
                progress: Progress) -> dict[str, Faces]:
    """The largest face of each clean photo (cached detections), by path."""
    if not sources:
        return {}
    found = cached_faces(sources, geometry_scorer(device), cache, progress)
    return dict(zip(sources, found, strict=True))


def make_image(photo: Photo, source: str, target: Path, faces: Faces | None,
               families: tuple[str, ...] | None) -> dict:
    """Write ``target`` (atomically): ``source`` degraded as PNG bytes, or copied unchanged;
    return its manifest row."""
    face = FaceGeometry.from_faces(faces) if faces is not None and len(faces) else None
    row = {"path": photo.name, "selected": yes_no(photo.degrade), "degraded": "no",
           "base_seed": photo.seed, "seed": "", "steps": "[]",
           "clean_face": yes_no(face is not None) if photo.degrade else "", "recipe": RECIPE_ID}
    result = degraded_pixels(source, face, photo.seed, families) if photo.degrade else None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if result is None:
        shutil.copyfile(source, partial)
    else:
        pixels, seed, applied = result
        Image.fromarray(pixels).save(partial, format="PNG")
        row.update(degraded="yes", seed=seed, steps=json.dumps([asdict(a) for a in applied]))
    partial.replace(target)
    return row


def degraded_pixels(source: str, face: FaceGeometry | None, seed: int,
                    families: tuple[str, ...] | None) -> tuple[np.ndarray, int, list] | None:
    """(pixels, seed used, applied steps): the first of seeds ``seed``, ``seed + 1``, … whose
    draw applies a step and changes a pixel; None when the photo is unreadable or no draw does
    (e.g. occlusion without a face)."""
    try:
        image = read_image(source)
    except ImageReadError:
        return None
    if face is not None and image.scale != 1:
        face = FaceGeometry(face.landmarks * image.scale, face.box * image.scale)
    for draw in range(MAX_DRAWS):
        pixels, applied = RECIPE(image.pixels, seed + draw, face, families=families)
        if applied and not np.array_equal(pixels, image.pixels):
            return pixels, seed + draw, applied
    return None


# ---------------------------------------------------------------- evaluating a set

@functools.cache
def estimator(name: str, device: str) -> estimators.QualityEstimator:
    """A registered estimator, or one with a variant (``fiqa.create``'s ``ri:<head>``,
    ``landmarks:<forest>``, ``ri-proximity:<recognizer>``), e.g. a head trained ``--without`` a
    family by scripts/train_ri.py."""
    return estimators.create(name, device)


@functools.cache
def recognizer(name: str, device: str) -> recognizers.Recognizer:
    return recognizers.recognizer(name, device)


def run_set(variant: Variant, images: Path, args: argparse.Namespace,
            cache: FeatureCache) -> pd.DataFrame:
    """Evaluate ``variant`` on ``images`` as ``fiqa evaluate`` does; write its report; return
    its rows of the combined table."""
    protocol = args.lfw / "pairs.txt"
    pairs, missing, dropped = protocols.existing(
        limited(protocols.lfw_pairs(protocol, images), args.limit_pairs))
    if missing:
        console.print(f"[yellow]warning:[/yellow] {dropped} comparisons left out: {len(missing)} "
                      f"images missing (e.g. {missing[0]})")
    paths, recognizer_names = protocols.pair_paths(pairs), list(names(args.recognizers))
    scorer = Scorer([estimator(n, args.device) for n in variant.estimators],
                    [recognizer(n, args.device) for n in recognizer_names], args.device,
                    args.batch_size, detector=args.detector)
    console.print(f"{len(pairs)} comparisons over {len(paths)} images")
    with Progress(console=console) as progress:
        features, stats = compute_features(paths, scorer, cache, progress)
        found = np.array([len(f) > 0 for f in cached_faces(paths, scorer, cache, progress)])
    hits = sum(s["hits"] for s in stats.values())
    total = hits + sum(s["misses"] for s in stats.values())
    console.print(f"cache: {hits} of {total} image×model results reused")
    result = evaluate(pairs, features, paths, list(variant.estimators), recognizer_names, None,
                      FNMR, LIMIT, variant.bootstrap, args.seed, FAILURES)
    out = args.results / variant.name
    write(result, out, about(variant, images, protocol, args, missing, dropped), LIMIT)
    for warning in cache.warnings + result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    auc = degradation_auc(read_manifest(manifest_path(args, variant)), paths,
                          features, variant.estimators, found) if variant.degraded else None
    if auc is not None:
        auc.to_csv(out / "degradation_auc.csv", index=False)
    return combined_rows(variant.name, result.summary, auc)


def about(variant: Variant, images: Path, protocol: Path, args: argparse.Namespace,
          missing: list[str], dropped: int) -> dict:
    """The summary.json header: what ran, and the equivalent ``fiqa evaluate`` command."""
    command = (f"fiqa evaluate {images} --protocol {protocol} -m {','.join(variant.estimators)} "
               f"-r {args.recognizers} --fnmr {FNMR:g} --limit {LIMIT:g} --failures {FAILURES} "
               f"--bootstrap {variant.bootstrap} --seed {args.seed} --detector {args.detector} "
               f"--cache {args.cache}")
    if args.limit_pairs is not None:
        command += f"  # on the first {args.limit_pairs} genuine and impostor pairs of each fold"
    return {"data": str(images), "protocol": str(protocol), "set": variant.name,
            "families": list(variant.families or FAMILIES) if variant.degraded else [],
            "recipe": f"{RECIPE.name} ({RECIPE_ID})", "limit_pairs": args.limit_pairs,
            "detector": args.detector, "threshold_rule": f"starting FNMR {FNMR:g}",
            "failures": FAILURES, "limit": LIMIT, "bootstrap": variant.bootstrap,
            "seed": args.seed, "missing_images": len(missing),
            "comparisons_without_image": dropped, "equivalent_command": command}


def degradation_auc(manifest: dict[str, dict], paths: Sequence[str],
                    features: dict[str, np.ndarray], estimator_names: Sequence[str],
                    found: np.ndarray) -> pd.DataFrame:
    """Per estimator: ROC AUC of its raw score separating clean (positive) from degraded images
    where a face was found, and the fractions of clean and degraded images without a face."""
    degraded = np.array([manifest[image_name(p)]["degraded"] == "yes" for p in paths])
    rows = []
    for name in estimator_names:
        score = features[name]
        scored = found & np.isfinite(score)
        clean = ~degraded[scored]
        auc = roc_auc_score(clean, score[scored]) if 0 < clean.sum() < len(clean) else np.nan
        rows.append({"estimator": name, "clean_vs_degraded_auc": float(auc),
                     "clean_scored": int(clean.sum()), "degraded_scored": int((~clean).sum()),
                     "no_face_clean": float(np.mean(~found[~degraded])),
                     "no_face_degraded": float(np.mean(~found[degraded]))})
    return pd.DataFrame(rows)


def combined_rows(name: str, summary: pd.DataFrame, auc: pd.DataFrame | None) -> pd.DataFrame:
    rows = summary.rename(columns={"pauc_low": "low", "pauc_high": "high",
                                   "pauc_normalized": "normalised"})
    rows = rows[["recognizer", "estimator", "pauc", "low", "high", "normalised", "failed"]]
    if auc is None:
        auc = pd.DataFrame({"estimator": summary["estimator"].unique()})
    auc = auc.reindex(columns=["estimator", "clean_vs_degraded_auc", "no_face_clean",
                               "no_face_degraded"])
    return rows.merge(auc, on="estimator", how="left").assign(set=name)[
        ["set", *rows.columns, *auc.columns[1:]]]


def update_combined(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """summary.csv with ``new``'s sets replaced (other sets' rows kept), written and returned."""
    if path.is_file():
        old = pd.read_csv(path)
        new = pd.concat([old[~old["set"].isin(new["set"])], new], ignore_index=True)
    order = {name: i for i, name in enumerate(["clean", "photo", *(f"family-{f}" for f in
                                                                    FAMILIES)])}
    new = new.sort_values("set", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    new.to_csv(path, index=False)
    console.print(f"combined table → {path}")
    return new


def show(combined: pd.DataFrame) -> None:
    """Normalised pAUC per set, estimator and recognizer, with the clean-vs-degraded AUC."""
    recognizer_names = list(dict.fromkeys(combined["recognizer"]))
    table = Table(title=f"normalised pAUC (0 oracle, 1 random), starting FNMR {FNMR:g}, "
                  f"failures {FAILURES}; AUC: clean vs degraded", title_justify="left")
    for column in ("set", "estimator", *recognizer_names, "AUC", "no face clean/degr."):
        table.add_column(column, justify="left" if column in ("set", "estimator") else "right")
    for (name, estimator_name), group in combined.groupby(["set", "estimator"], sort=False):
        normalised = dict(zip(group["recognizer"], group["normalised"], strict=True))
        first = group.iloc[0]
        no_face = "" if pd.isna(first["no_face_clean"]) else \
            f"{first['no_face_clean']:.1%} / {first['no_face_degraded']:.1%}"
        table.add_row(name, estimator_name, *(_number(normalised.get(r)) for r in recognizer_names),
                      _number(first["clean_vs_degraded_auc"]), no_face)
    Console().print(table)


def _number(value: float | None) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


if __name__ == "__main__":
    main()
