"""The ``fiqa`` command line: ``fiqa score``, ``embed``, ``evaluate``, ``verify``, ``enroll``,
``identify``, ``explain``, ``calibrate``, ``export``, ``report`` and ``list``."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import __version__, estimators, recognizers
from .detectors import DEFAULT_DETECTOR
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, expand_inputs
from .pipeline import Scorer
from .results import OutputLocked, ResultTable
from .weights import manifest

app = typer.Typer(
    help="Face image quality assessment: score how useful each face is for recognition.\n\n"
    "Exit codes: 0 done; 1 nothing to show (no face scored, no match, no probe compared, no "
    "image enrolled); 2 a usage or input error (bad option, missing file, output in use), "
    "or for `verify` a rejected comparison.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=True)


Inputs = Annotated[list[str], typer.Argument(
    help="Image files, folders (searched recursively), globs, or .txt/.lst files of paths.",
    show_default=False)]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")]
Cohort = Annotated[Path | None, typer.Option(
    help="For --alignment ida-dao: a gallery file (`fiqa enroll`) of at least 100 people "
    "disjoint from those compared; `verify` needs --threshold with it (docs/alignment.md).")]
Detector = Annotated[str, typer.Option(
    help="Face detector: mtcnn or yunet (see docs/detection.md).")]
BatchSize = Annotated[int, typer.Option(
    min=1, help="Images per detection batch and faces per model batch.")]
Workers = Annotated[int, typer.Option(min=1, help="Threads decoding images.")]
DecodeProcesses = Annotated[bool, typer.Option(
    help="Decode in --workers worker processes instead of threads: for a GPU that scores faster "
    "than one process decodes (local engine only).")]
Precision = Annotated[str, typer.Option(
    help="fp32, or bf16/fp16 autocast of the models (the detector stays fp32): for GPUs, and for "
    "CPUs with bf16 instructions (AVX512-BF16 or AMX; elsewhere emulated and slower, with a "
    "warning, except on a Ray cluster's actors); parity in docs/benchmarks.md (faceres needs "
    "fp16, docs/recognizers.md).")]
Aligned = Annotated[bool, typer.Option(
    help="Inputs are already 112×112-template aligned crops: skip detection.")]
AllFaces = Annotated[bool, typer.Option(help="Every face found, not just one.")]
Face = Annotated[str, typer.Option(
    help="Which face an image gives: largest, or central (nearest the image centre: the "
    "subject of centred datasets like LFW, where a bystander is sometimes larger).")]
Resume = Annotated[bool, typer.Option(
    help="Continue an interrupted run: keep OUTPUT's rows and skip their images.")]
Overwrite = Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")]
MaxSide = Annotated[int, typer.Option(
    min=64, help="Larger images are reduced to this side before detection.")]
MaxPixels = Annotated[int, typer.Option(
    min=1, help="Refuse images with more pixels (decompression-bomb guard).")]
Protocol = Annotated[str, typer.Option(
    help="Which comparisons: a pairs.txt in LFW View 2 format; SAME.txt,DIFFERENT.txt "
    "(lists of 'path_a path_b' lines); or 'all' (every genuine pair plus --impostors "
    "seeded impostor pairs).")]


Engine = Annotated[str, typer.Option(
    help="local (this process), or ray: the actors of a Ray cluster, OUTPUT being a folder of "
    "Parquet shards (needs `pip install 'fiqa[ray]'`; docs/scale.md).")]
Address = Annotated[str | None, typer.Option(
    help="--engine ray: the cluster to join (auto: the one this machine is in); default: "
    "start a local Ray on this machine's cores.", show_default=False)]
Actors = Annotated[int, typer.Option(
    min=1, help="--engine ray: actors, each loading the detector and models once.")]
CpusPerActor = Annotated[float, typer.Option(
    min=0.01, help="--engine ray: CPUs each actor reserves (whole ones are its torch threads).")]
GpusPerActor = Annotated[float, typer.Option(
    min=0, help="--engine ray: GPUs each actor reserves (0.5: two actors share one).")]
ImagesPerShard = Annotated[int, typer.Option(
    min=1, help="--engine ray: images per actor call, written as one shard (one per unbroken "
    "run of input positions after a resume).")]


@dataclass(frozen=True)
class _Engine:
    """Where `score` and `embed` run: ``local``, or ``ray`` with its placement."""

    name: str = "local"
    address: str | None = None
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    images_per_shard: int = 256


def _version(value: bool) -> None:
    if value:
        print(f"fiqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print fiqa's version and exit.")
         ] = False) -> None:
    """Face image quality assessment: score how useful each face is for recognition."""
    from .device import retain_freed_memory

    retain_freed_memory()  # CPU passes reuse freed pages instead of faulting in new ones


@app.command()
def score(
    inputs: Inputs,
    methods: Annotated[str, typer.Option(
        "--methods", "-m", help="Estimators, comma-separated (see `fiqa list`); a variant as "
        "NAME:VALUE, e.g. ri-proximity:sface (docs/estimators.md).")] = "baseline",
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Results table, .csv or .parquet, written as the run goes; "
        "with --engine ray a folder (local or a URI) of Parquet shards.")
    ] = "fiqa_scores.csv",
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 32,
    workers: Workers = 2,
    decode_processes: DecodeProcesses = False,
    aligned: Aligned = False,
    all_faces: AllFaces = False,
    face: Face = "largest",
    resume: Resume = False,
    overwrite: Overwrite = False,
    max_side: MaxSide = DEFAULT_MAX_SIDE,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    detector: Detector = DEFAULT_DETECTOR,
    engine: Engine = "local",
    address: Address = None,
    actors: Actors = 1,
    cpus_per_actor: CpusPerActor = 1.0,
    gpus_per_actor: GpusPerActor = 0.0,
    images_per_shard: ImagesPerShard = 256,
    calibration: Annotated[str | None, typer.Option(
        help="Calibration files (`fiqa calibrate`), comma-separated, or `shipped` (fiqa's own, "
        "against sface, for each estimator of -m that has one): adds <estimator>.fnmr, the "
        "expected FNMR of the face's genuine comparisons (docs/calibration.md).",
        show_default=False)] = None,
) -> None:
    """Score the quality of every face in INPUTS, one row per face.

    Each row holds the path, face index, box, five landmarks, detection score, each
    estimator's raw score, its 0–100 `.quality` and its components, and a status:
    `ok`, `no_face` or `unreadable: <reason>`. Exits with 1 only when no face at all
    could be scored.

    Examples:

      fiqa score photos/ -o scores.csv

      fiqa score 'shots/**/*.jpg' -m baseline --device cuda --batch-size 64 -o q.parquet

      fiqa score photos/ -o scores.csv --resume      # after an interruption

      fiqa score photos/ -m magface,ri --calibration shipped -o q.csv   # + .fnmr columns

      fiqa score s3://bucket/photos/ --engine ray --address auto --actors 8 \\
          --gpus-per-actor 0.5 -m magface,ri -o s3://bucket/scores.parquet
    """
    names = _names(methods)
    try:
        calibrations = _calibrations(calibration, names)
    except (OSError, ValueError) as error:
        _fail(error)
    _run(inputs, output, resume, overwrite, workers, decode_processes, "scoring",
         lambda on=device: Scorer(names, (), on, batch_size, aligned, all_faces, max_side,
                                  max_pixels, detector, face, calibrations, precision),
         _Engine(engine, address, actors, cpus_per_actor, gpus_per_actor, images_per_shard))


def _calibrations(option: str | None, estimators: list[str]) -> list:
    """--calibration: files, or ``shipped`` (those fiqa has for ``estimators``)."""
    from .calibration import Calibration, shipped

    if option is None:
        return []
    if option == "shipped":
        found = []
        for name in estimators:
            try:
                found.append(shipped(name))
            except ValueError:
                _warn(f"no shipped calibration for {name}: no {name}.fnmr column")
        return found
    return [Calibration.load(path) for path in _names(option)]


@app.command()
def embed(
    inputs: Inputs,
    recognizer: Annotated[str, typer.Option(
        "--recognizer", "-r", help="Recognition models, comma-separated (see `fiqa list`).")
    ] = "sface",
    output: Annotated[str, typer.Option(
        "--output", "-o", help="Embeddings: .csv or .parquet (a column per dimension), or .npy "
        "(an N×D float32 matrix, NaN rows where no face, plus <output>.rows.csv); with "
        "--engine ray a folder (local or a URI) of Parquet shards.")
    ] = "fiqa_embeddings.parquet",
    precision: Precision = "fp32",
    device: Device = "auto",
    batch_size: BatchSize = 32,
    workers: Workers = 2,
    decode_processes: DecodeProcesses = False,
    aligned: Aligned = False,
    all_faces: AllFaces = False,
    face: Face = "largest",
    resume: Resume = False,
    overwrite: Overwrite = False,
    max_side: MaxSide = DEFAULT_MAX_SIDE,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    detector: Detector = DEFAULT_DETECTOR,
    engine: Engine = "local",
    address: Address = None,
    actors: Actors = 1,
    cpus_per_actor: CpusPerActor = 1.0,
    gpus_per_actor: GpusPerActor = 0.0,
    images_per_shard: ImagesPerShard = 256,
) -> None:
    """Embed every face in INPUTS with recognition models, one row per face.

    Rows carry the same path, face, box, landmarks and status columns as `fiqa score`,
    then each unnormalised embedding as columns `<recognizer>.0` … `<recognizer>.<D-1>`.
    Faces are detected once, however many recognizers.

    Examples:

      fiqa embed photos/ -r dlib -o emb.parquet

      fiqa embed photos/ -r faceres -o emb.npy --device cuda --precision fp16
    """
    names = _names(recognizer)
    if output.lower().endswith(".npy") and len(names) != 1:
        _fail("an .npy output holds one recognizer's embeddings")
    _run(inputs, output, resume, overwrite, workers, decode_processes, "embedding",
         lambda on=device: Scorer((), names, on, batch_size, aligned, all_faces, max_side,
                                  max_pixels, detector, face, precision=precision),
         _Engine(engine, address, actors, cpus_per_actor, gpus_per_actor, images_per_shard))


@app.command()
def evaluate(
    data: Annotated[Path, typer.Argument(
        help="Image folder, one sub-folder per identity (LFW's images/, CelebA, ...).",
        show_default=False)],
    protocol: Protocol = "all",
    methods: Annotated[str, typer.Option(
        "--methods", "-m", help="Estimators, comma-separated (variants as NAME:VALUE).",
    )] = "baseline",
    recognizer: Annotated[str, typer.Option(
        "--recognizer", "-r", help="Recognizers, comma-separated (default: the strongest "
        "three external ones, docs/recognizers.md).")] = "sface,dlib,faceres",
    fmr: Annotated[float, typer.Option(
        help="Fix the threshold at this FMR over all impostors, before discarding.")] = 1e-3,
    fnmr: Annotated[float | None, typer.Option(
        help="Instead, fix the threshold at this starting FNMR over all genuine pairs.")] = None,
    limit: Annotated[float, typer.Option(help="pAUC over discard fractions [0, LIMIT].")] = 0.2,
    bootstrap: Annotated[int, typer.Option(
        help="Bootstrap resamplings of identities for the pAUC intervals (0: none).")] = 200,
    impostors: Annotated[int, typer.Option(help="Impostor pairs sampled for 'all'.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of impostor sampling and bootstrap.")] = 0,
    failures: Annotated[str, typer.Option(
        help="Comparisons with an image without a face: as-errors (non-matches of the lowest "
        "quality), left-out, or auto (as-errors where the protocol lists the pairs, left-out "
        "for 'all').")] = "auto",
    cache: Annotated[Path, typer.Option(
        help="Per-image scores and embeddings, keyed by file content and model version.")
    ] = Path(".fiqa-cache"),
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Report folder: summary.md, summary.json, curves.csv, edc.png.")
    ] = Path("fiqa_report"),
    device: Device = "auto",
    precision: Precision = "fp32",
    batch_size: BatchSize = 32,
    detector: Detector = DEFAULT_DETECTOR,
    face: Face = "largest",
    alignment: Annotated[str | None, typer.Option(
        help="Also evaluate each recognizer's aligned scores (IDA), as <recognizer>+<alignment>: "
        "ida-sse (sface, dlib) or ida-dao (needs --cohort).")] = None,
    cohort: Cohort = None,
) -> None:
    """Error-versus-discard evaluation of estimators against recognizers (ISO/IEC 29794-1).

    Each image is detected, scored and embedded once; results are cached, so adding an
    estimator later computes only its scores. The threshold is fixed before discarding;
    comparisons are discarded by pair quality min(q_a, q_b), ties together; the FNMR curve,
    its pAUC, the random and oracle baselines, bootstrap intervals and the CR-FIQA-style
    ERC area are reported. With --alignment, each recognizer is reported twice: plain and
    aligned (its FNMR at the fixed FMR is the fnmr_start column).

    Examples:

      fiqa evaluate lfw/images --protocol lfw/pairs.txt -o report/

      fiqa evaluate celeba/ --protocol all -m baseline -r dlib --fnmr 0.05 -o report/
    """
    from .evaluation import protocols
    from .evaluation.features import FeatureCache, compute_features
    from .evaluation.report import FAILURES, write
    from .evaluation.report import evaluate as run_evaluation
    from .score_alignment import DEFAULT_K, discrepancy_model

    estimator_names, recognizer_names = _names(methods), _names(recognizer)
    if failures == "auto":
        failures = "left-out" if protocol == "all" else "as-errors"
    try:
        if failures not in FAILURES:
            raise ValueError(f"--failures must be auto, {' or '.join(FAILURES)}, got {failures!r}")
        pairs, missing, dropped = _comparisons(data, protocol, impostors, seed)
        scorer = Scorer(estimator_names, recognizer_names, device, batch_size,
                        detector=detector, face=face, precision=precision)
        _warn_if_emulated(scorer)
        # before the features, so that a recognizer without a head fails at once
        discrepancies = ({} if alignment is None else
                         {name: discrepancy_model(alignment, name, cohort)
                          for name in recognizer_names})
        feature_cache = FeatureCache(cache)
    except (OSError, ValueError) as error:
        _fail(error)
    about = {"data": str(data), "protocol": protocol}
    if alignment is not None:
        about.update(alignment=alignment, cohort=str(cohort) if cohort else None, k=DEFAULT_K)
    if missing:
        about.update(missing_images=len(missing), comparisons_without_image=dropped)
        _warn(f"{dropped} comparisons left out: {len(missing)} listed images do not exist "
              f"(e.g. {missing[0]})")
    paths = protocols.pair_paths(pairs)
    console.print(f"{len(pairs)} comparisons ({int(pairs['same'].sum())} genuine) "
                  f"over {len(paths)} images")
    with _progress() as progress:
        features, stats = compute_features(paths, scorer, feature_cache, progress)
    for warning in feature_cache.warnings:
        _warn(warning)
    hits = sum(s["hits"] for s in stats.values())
    total = hits + sum(s["misses"] for s in stats.values())
    console.print(f"cache: {hits} of {total} image×model results reused "
                  f"({hits / max(total, 1):.0%})")
    result = run_evaluation(pairs, features, paths, estimator_names, recognizer_names,
                            None if fnmr is not None else fmr, fnmr, limit, bootstrap, seed,
                            failures, alignment, discrepancies)
    rule = f"starting FNMR {fnmr:g}" if fnmr is not None else f"FMR {fmr:g}"
    write(result, output, {**about, "threshold_rule": rule, "failures": failures, "limit": limit,
                           "bootstrap": bootstrap, "seed": seed}, limit)
    table = Table(title=f"pAUC of FNMR-EDC over [0, {limit:g}], threshold at {rule}; "
                  f"failures {failures}",
                  title_justify="left")
    for column in ("recognizer", "estimator", "failed", "left out", "pAUC [95% CI]", "random",
                   "oracle", "normalised"):
        table.add_column(column)
    for r in result.summary.to_dict(orient="records"):
        table.add_row(r["recognizer"], r["estimator"], str(r["failed"]), str(r["left_out"]),
                      f"{r['pauc']:.4f} [{r['pauc_low']:.4f}, {r['pauc_high']:.4f}]",
                      f"{r['pauc_random']:.4f}", f"{r['pauc_oracle']:.4f}",
                      f"{r['pauc_normalized']:.3f}")
    Console().print(table)
    for warning in result.warnings:
        _warn(warning)
    console.print(f"report → {output}/")


MinQuality = Annotated[float | None, typer.Option(
    "--min-quality", min=0, max=100,
    help="Reject faces whose 0–100 quality is below this (see docs/enrollment.md for values).")]


@app.command()
def calibrate(
    data: Annotated[Path, typer.Argument(
        help="Image folder, one sub-folder per identity.", show_default=False)],
    protocol: Protocol = "all",
    method: Annotated[str, typer.Option(
        "--method", "-m", help="The estimator to calibrate.")] = "magface",
    recognizer: Annotated[str, typer.Option(
        "--recognizer", "-r", help="The recognizer whose FNMR it predicts.")] = "sface",
    threshold: Annotated[float | None, typer.Option(
        help="Cosine threshold of a non-match (default: the recognizer's, at FMR 1e-3 on LFW "
        "View 2 impostors, as `fiqa verify` uses).", show_default=False)] = None,
    mates: Annotated[str, typer.Option(
        help="good: predict the FNMR against a good photo of the same person (a mate scored at "
        "or above the median); all: against any mate of the set.")] = "good",
    aligned: Aligned = False,
    cache: Annotated[Path, typer.Option(
        help="Per-image scores and embeddings, keyed by file content and model version.")
    ] = Path(".fiqa-cache"),
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The calibration file (JSON).")] = Path("calibration.json"),
    device: Device = "auto",
    batch_size: BatchSize = 32,
    detector: Detector = DEFAULT_DETECTOR,
    face: Face = "largest",
) -> None:
    """Fit an estimator's score → the recognizer's expected FNMR on a labelled set.

    Every genuine comparison of the protocol counts for each of its images whose mate
    is good (--mates): a false non-match when its cosine is below the threshold. An
    isotonic regression, non-increasing in the score, of those outcomes on each image's
    score gives the expected FNMR of an image's genuine comparisons with a good photo of
    the same person (docs/calibration.md). Use it with `fiqa score --calibration FILE`.
    Fit on people you will not score.

    Examples:

      fiqa calibrate celeba/ -m magface -r sface -o magface.json

      fiqa calibrate lfw/images --protocol lfw/pairs.txt -m ri -o ri.json
    """
    from .calibration import MATES, fit, genuine_comparisons
    from .evaluation import protocols
    from .evaluation.features import FeatureCache, compute_features, embedding_column
    from .verify import default_threshold

    try:
        if mates not in MATES:
            raise ValueError(f"--mates must be {' or '.join(MATES)}, got {mates!r}")
        pairs, missing, dropped = _comparisons(data, protocol, 0, 0)
        if threshold is None:
            threshold = default_threshold(recognizer)
        scorer = Scorer([method], [recognizer], device, batch_size, aligned, detector=detector,
                        face=face)
        feature_cache = FeatureCache(cache)
    except (OSError, ValueError) as error:
        _fail(error)
    if missing:
        _warn(f"{dropped} comparisons left out: {len(missing)} listed images do not exist")
    paths = protocols.pair_paths(pairs[pairs["same"]])
    with _progress() as progress:
        features, _ = compute_features(paths, scorer, feature_cache, progress)
    indices, similarity = genuine_comparisons(pairs, paths, features[embedding_column(recognizer)])
    try:
        calibration = fit(method, recognizer, threshold, features[method], indices, similarity,
                          {"data": str(data), "protocol": protocol, "aligned": aligned}, mates)
    except ValueError as error:
        _fail(error)
    calibration.save(output)
    scores, fnmr = calibration.scores, calibration.fnmr
    console.print(f"{method} → {recognizer} FNMR at cosine {threshold:g}, {mates} mates: "
                  f"{calibration.about['comparisons']} genuine comparisons over "
                  f"{calibration.about['images']} images, FNMR "
                  f"{calibration.about['fnmr_overall']:.3f}; FNMR from {fnmr[0]:.3f} at "
                  f"score ≤ {scores[0]:.4g} to {fnmr[-1]:.3f} at ≥ {scores[-1]:.4g} → {output}")


@app.command()
def verify(
    image_a: Annotated[Path, typer.Argument(help="First image.", show_default=False)],
    image_b: Annotated[Path, typer.Argument(help="Second image.", show_default=False)],
    recognizer: Annotated[str, typer.Option(
        "--recognizer", "-r", help="Recognition model (see `fiqa list`).")] = "sface",
    method: Annotated[str, typer.Option(
        "--method", "-m", help="Quality estimator for the gate.")] = "magface",
    min_quality: MinQuality = None,
    threshold: Annotated[float | None, typer.Option(
        help="Score at or above which the faces match (default: the recognizer's, set at FMR "
        "1e-3 on LFW, for its cosine or its aligned score).")] = None,
    device: Device = "auto",
    detector: Detector = DEFAULT_DETECTOR,
    alignment: Annotated[str | None, typer.Option(
        help="Align the cosine to each face's local context (IDA): ida-sse (sface, dlib; no "
        "cohort) or ida-dao (needs --cohort). See docs/alignment.md.")] = None,
    cohort: Cohort = None,
) -> None:
    """Do two images show the same person? Compares their largest faces.

    Prints the decision, the cosine similarity, both 0–100 qualities and the reason.
    Exit code: 0 match, 1 no match, 2 rejected (no face, unreadable, quality below
    `--min-quality`) or error.

    Examples:

      fiqa verify id_photo.jpg selfie.jpg

      fiqa verify a.jpg b.jpg -r sface -m magface --min-quality 40

      fiqa verify a.jpg b.jpg --alignment ida-sse
    """
    from .verify import Verifier

    try:
        verifier = Verifier(recognizer, method, min_quality, threshold, device, detector,
                            alignment, cohort)
        result = verifier.verify(image_a, image_b)
    except (OSError, KeyError, ValueError) as error:
        _fail(error)
    colour = {"match": "green", "no match": "yellow", "rejected": "red"}[result.decision]
    out = Console()
    out.print(f"[bold {colour}]{result.decision}[/bold {colour}]  {result.reason}")
    scored = "" if alignment is None else f"{alignment} score {result.score:.4f}, "
    out.print(f"similarity {result.similarity:.4f} ({scored}threshold {result.threshold:.4f})  "
              f"quality A {result.quality_a:.0f}  quality B {result.quality_b:.0f}")
    raise typer.Exit({"match": 0, "no match": 1}.get(result.decision, 2))


@app.command()
def enroll(
    folder: Annotated[Path, typer.Argument(
        help="One sub-folder of images per identity (its name is the identity).",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="New gallery file (safetensors), e.g. gallery.fiqa.")] = None,
    gallery_file: Annotated[Path | None, typer.Option(
        "--gallery", help="Existing gallery to extend with new identities or images.")] = None,
    recognizer: Annotated[str | None, typer.Option(
        "--recognizer", "-r", help="Recognition model of a new gallery (default sface).")] = None,
    method: Annotated[str | None, typer.Option(
        "--method", "-m", help="Quality estimator weighting a new gallery's images "
        "(default magface).")] = None,
    weighting: Annotated[str, typer.Option(
        help="power:P ((q/100)^P; default power:1), softmax:T (exp(q/T)), topk:K (mean of "
        "the K best) or mean.")
    ] = "",
    floor: Annotated[float | None, typer.Option(
        min=0, max=100, help="Images below this 0–100 quality are left out (default 5).")
    ] = None,
    overwrite: Overwrite = False,
    device: Device = "auto",
    batch_size: BatchSize = 32,
    detector: Detector = DEFAULT_DETECTOR,
) -> None:
    """Build (or extend) a gallery: one quality-weighted template per identity.

    A template is the quality-weighted mean of an identity's normalised embeddings.
    Images below the quality floor, without a face or unreadable are left out and listed,
    with every image's quality, in `<gallery>.report.csv`. Extending keeps the
    gallery's recognizer, estimator, weighting and floor, and gives the same templates as
    enrolling everything at once.

    Examples:

      fiqa enroll people/ -o gallery.fiqa

      fiqa enroll people/ -o gallery.fiqa -m ri --weighting power:2 --floor 30

      fiqa enroll new_people/ --gallery gallery.fiqa
    """
    from .gallery import DEFAULT_FLOOR, DEFAULT_WEIGHTING, Gallery, enroll
    from .imageio import identity_folders
    from .verify import Encoder

    try:
        if (output is None) == (gallery_file is None):
            raise ValueError("give either --output (a new gallery) or --gallery (to extend)")
        if gallery_file is not None:
            gallery, target = Gallery.load(gallery_file), gallery_file
            if weighting or floor is not None or recognizer or method:
                raise ValueError(f"{gallery_file} keeps its recognizer ({gallery.recognizer}), "
                                 f"estimator ({gallery.estimator}), weighting "
                                 f"({gallery.weighting}) and floor ({gallery.floor:g})")
        else:
            target = output
            if target.exists() and not overwrite:
                raise FileExistsError(f"{target} exists: pass --overwrite, or --gallery to extend")
            gallery = Gallery(recognizer or "sface", method or "magface",
                              weighting or DEFAULT_WEIGHTING,
                              DEFAULT_FLOOR if floor is None else floor)
        people = identity_folders(folder)
        encoder = Encoder(gallery.recognizer, gallery.estimator, device, batch_size, detector)
    except (OSError, KeyError, ValueError) as error:
        _fail(error)
    empty = sorted(sub.name for sub in folder.iterdir() if sub.is_dir() and sub.name not in people)
    if empty:
        _warn(f"{len(empty)} sub-folder(s) without images, skipped: {', '.join(empty)}")
    before = len(gallery)
    with _progress() as progress:
        task = progress.add_task("enrolling", total=sum(map(len, people.values())))
        report = enroll(gallery, people, encoder, lambda n: progress.advance(task, n))
    statuses = report["status"].str.split(":").str[0].value_counts()
    console.print(f"{len(people)} identities, {len(report)} images: "
                  + ", ".join(f"{status} {count}" for status, count in statuses.items()))
    missing = sorted(set(people) - set(gallery.identities))
    if missing:
        _warn(f"no usable image, not enrolled: {', '.join(missing)}")
    if not (report["status"] == "enrolled").any():
        console.print(f"[red]nothing enrolled[/red]: no image of {folder} passed (see the "
                      f"statuses above); {target} was not {'changed' if before else 'written'}")
        raise typer.Exit(1)
    try:
        gallery.save(target)
        report_path = target.with_name(target.name + ".report.csv")
        report.to_csv(report_path, mode="a" if gallery_file and report_path.exists() else "w",
                      header=not (gallery_file and report_path.exists()), index=False)
    except OSError as error:
        _fail(error)
    console.print(f"gallery ({len(gallery)} identities, {gallery.recognizer}, "
                  f"{gallery.estimator} {gallery.weighting}, floor {gallery.floor:g}) → {target}; "
                  f"report → {report_path}")


@app.command()
def identify(
    probes: Inputs,
    gallery_file: Annotated[Path, typer.Option(
        "--gallery", help="Gallery made by `fiqa enroll`.", show_default=False)],
    k: Annotated[int, typer.Option("-k", min=1, help="Candidates per probe.")] = 5,
    min_quality: MinQuality = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Also write the candidates to this CSV.")] = None,
    device: Device = "auto",
    batch_size: BatchSize = 32,
    detector: Detector = DEFAULT_DETECTOR,
    alignment: Annotated[str | None, typer.Option(
        help="Rank by aligned scores (IDA; docs/alignment.md): ida-sse (sface, dlib) or ida-dao "
        "(needs --cohort).")] = None,
    cohort: Cohort = None,
) -> None:
    """Who is it? Rank the gallery's identities for the largest face of each probe.

    One row per candidate: probe, status, quality, rank, identity, cosine similarity (the
    aligned score with --alignment). A probe without a face, unreadable or below
    `--min-quality` gets one `rejected: <reason>` row. Exit code 1 when no probe could be
    compared.

    Examples:

      fiqa identify visitor.jpg --gallery gallery.fiqa

      fiqa identify probes/ --gallery gallery.fiqa -k 3 --min-quality 40 -o candidates.csv
    """
    from .gallery import Gallery
    from .gallery import identify as rank
    from .score_alignment import discrepancy_model
    from .verify import Encoder

    try:
        paths = expand_inputs(probes)
        gallery = Gallery.load(gallery_file)
        discrepancy = (None if alignment is None
                       else discrepancy_model(alignment, gallery.recognizer, cohort))
        encoder = Encoder(gallery.recognizer, gallery.estimator, device, batch_size, detector)
    except (OSError, KeyError, ValueError) as error:
        _fail(error)
    samples = encoder.encode(paths)
    result = rank(gallery, [str(p) for p in paths], samples, k, min_quality, discrepancy)
    if output is not None:
        try:
            result.to_csv(output, index=False)
        except OSError as error:
            _fail(error)
    table = Table(title=f"candidates ({len(gallery)} identities, {gallery.recognizer})",
                  title_justify="left")
    for column in result.columns:
        table.add_column(column)
    for row in result.itertuples(index=False):
        table.add_row(row.probe, row.status, f"{row.quality:.0f}",
                      "" if pd.isna(row.rank) else str(row.rank),
                      row.identity if isinstance(row.identity, str) else "",
                      "" if pd.isna(row.similarity) else f"{row.similarity:.4f}")
    Console().print(table)
    if output is not None:
        console.print(f"candidates → {output}")
    if not (result["status"] == "ok").any():
        raise typer.Exit(1)


@app.command()
def explain(
    inputs: Inputs,
    method: Annotated[str, typer.Option(
        "--method", "-m", help="Explainable estimator (per-patch maps): attention.")] = "attention",
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for one PNG per image and explanations.csv.")
    ] = Path("explanations"),
    device: Device = "auto",
    detector: Detector = DEFAULT_DETECTOR,
) -> None:
    """Where is each face poor? A per-patch heatmap over its aligned crop.

    For the largest face of each image, writes `OUTPUT/<name>.png`: the aligned crop and the
    same crop under the estimator's per-patch map (viridis: dark = low quality, yellow = high,
    on the estimator's fixed 0–100 scale so images compare). For `attention` each patch is its
    mean last-block attention logit; their mean is the face's score. `explanations.csv` lists
    path, status, score, quality and PNG. Exit code 1 when no image had a face.

    Examples:

      fiqa explain photo.jpg -o out/

      fiqa explain probes/ -m attention -o explanations/
    """
    import csv

    from .explain import explain_images, write_explanation

    try:
        paths = expand_inputs(inputs)
        estimator = estimators.create(method, device)
        explanations = explain_images(paths, estimator, detector=detector)
        output.mkdir(parents=True, exist_ok=True)
    except (OSError, KeyError, ValueError) as error:
        _fail(error)
    rows, used = [], set()
    with open(output / "explanations.csv", "w", newline="") as file, _progress() as progress:
        writer = csv.DictWriter(file, fieldnames=["path", "status", "score", "quality", "png"])
        writer.writeheader()
        task = progress.add_task("explain", total=len(paths))
        for item in explanations:
            picture = ""
            if item.status == "ok":
                stem = Path(item.path).stem
                name = next(n for n in (f"{stem}.png", *(f"{stem}-{i}.png" for i in
                                                          range(1, len(paths) + 1)))
                            if n not in used)
                used.add(name)
                picture = str(write_explanation(item, estimator.score_range, output / name))
            rows.append({"path": item.path, "status": item.status, "score": item.score,
                         "quality": item.quality, "png": picture})
            writer.writerow(rows[-1])
            file.flush()
            progress.advance(task)
    table = Table(title=f"{method} explanations → {output}/", title_justify="left")
    for column in ("image", "status", "score", "quality"):
        table.add_column(column)
    for row in rows:
        table.add_row(Path(row["path"]).name, row["status"], f"{row['score']:.3f}",
                      f"{row['quality']:.0f}")
    Console().print(table)
    if not any(row["status"] == "ok" for row in rows):
        raise typer.Exit(1)


def _comparisons(data: Path, protocol: str, impostors: int, seed: int):
    """The protocol's comparisons whose images exist, the missing images, and how many
    comparisons those cost (see ``fiqa.evaluation.protocols``)."""
    from .evaluation import protocols

    if protocol == "all":
        pairs = protocols.folder_pairs(data, impostors, seed)
    elif "," in protocol:
        pairs = protocols.pair_lists(*protocol.split(",", 1))
    else:
        pairs = protocols.lfw_pairs(protocol, data)
    return protocols.existing(pairs)


def _fail(error: Exception | str) -> NoReturn:
    """A usage or input problem: one unwrapped ``error:`` line, exit code 2."""
    console.print(Text("error: ", style="red") + Text(str(error)), soft_wrap=True)
    raise typer.Exit(2)


def _warn_if_emulated(scorer: Scorer) -> None:
    """A warning where the scorer's precision has no native arithmetic on its CPU (slower than
    fp32)."""
    from .device import emulated_precision

    if emulated_precision(scorer.device, scorer.precision):
        _warn(f"this CPU has no native {scorer.precision} arithmetic: --precision "
              f"{scorer.precision} runs emulated, several times slower than fp32 (use "
              f"--precision fp32 here)")


def _warn(message: str) -> None:
    """One unwrapped ``warning:`` line; the run goes on."""
    console.print(Text("warning: ", style="yellow") + Text(message), soft_wrap=True)


def _names(text: str) -> list[str]:
    """Comma-separated model names → list, blanks and repeats dropped."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def _run(inputs: list[str], output: str, resume: bool, overwrite: bool, workers: int,
         processes: bool, verb: str, make_scorer: Callable[..., Scorer], engine: _Engine) -> None:
    """Shared body of `score` and `embed`: set up, stream rows into the table, summarise.
    ``make_scorer(device)`` builds the Scorer (its device by default)."""
    if engine.name not in ("local", "ray"):
        _fail(f"--engine must be local or ray, got {engine.name!r}")
    if engine.name == "ray":
        if processes:
            _fail("--decode-processes is for the local engine: Ray actors decode in --workers "
                  "threads, and --actors sets the processes")
        _run_on_ray(inputs, output, resume, overwrite, workers, verb, make_scorer, engine)
        return
    try:
        paths = expand_inputs(inputs)
        scorer = make_scorer()
        _warn_if_emulated(scorer)
        table = ResultTable(output, scorer.columns, resume=resume, overwrite=overwrite)
    except (OSError, OutputLocked, ValueError) as error:
        _fail(error)
    todo = [path for path in paths if str(path) not in table.finished]
    if table.finished:
        console.print(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already done")

    statuses: Counter[str] = Counter()
    start = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(verb, total=len(todo))
        for rows in scorer.run(todo, workers, processes):
            table.append(rows)
            statuses.update(row["status"].split(":")[0] for row in rows)
            progress.advance(task)
    results = table.close()
    _summary(results["status"], statuses, len(todo), time.perf_counter() - start, output)
    if not (results["status"] == "ok").any():
        raise typer.Exit(1)


def _run_on_ray(inputs: list[str], output: str, resume: bool, overwrite: bool, workers: int,
                verb: str, make_scorer: Callable[..., Scorer], engine: _Engine) -> None:
    """`_run` on Ray actors (fiqa.ray_engine): the same rows, as a folder of Parquet shards."""
    if Path(output).suffix.lower() in (".csv", ".npy"):
        _fail(f"with --engine ray, OUTPUT is a folder of Parquet shards: not {output}, but e.g. "
              f"{Path(output).with_suffix('.parquet')}")
    try:
        from . import ray_engine

        ray_engine.require_ray()
        paths = ray_engine.list_inputs(inputs)
        # names and weights checked here, once, on the CPU, rather than failing in each actor
        checked = make_scorer("cpu")
        if engine.address is None and not engine.gpus_per_actor:  # actors on this machine's CPUs
            _warn_if_emulated(checked)
        columns = checked.columns
        folder = ray_engine.ShardFolder(output, columns, resume=resume, overwrite=overwrite)
    except (ImportError, OSError, OutputLocked, ValueError) as error:
        _fail(error)
    todo = [(index, path) for index, path in enumerate(paths) if path not in folder.finished]
    if folder.finished:
        console.print(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already done")
    statuses: Counter[str] = Counter()
    start = time.perf_counter()
    try:
        if todo:  # nothing to do: no cluster to start or join
            ray_engine.connect(engine.address)
        with _progress() as progress:
            task = progress.add_task(f"{verb} on ray", total=len(todo))
            for image_statuses in ray_engine.score(
                    todo, folder.location, make_scorer, actors=engine.actors,
                    cpus_per_actor=engine.cpus_per_actor, gpus_per_actor=engine.gpus_per_actor,
                    images_per_shard=engine.images_per_shard, workers=workers):
                statuses.update(status.split(":")[0] for status in image_statuses)
                progress.advance(task)
    except Exception as error:  # noqa: BLE001 - a cluster failure: keep the shards, say so
        folder.close()
        first_line = str(error).split("\n")[0]
        _fail(f"the Ray job failed ({type(error).__name__}: {first_line}); the shards written so "
              "far are kept: rerun with --resume")
    results = folder.statuses()
    folder.close()
    _summary(results, statuses, len(todo), time.perf_counter() - start, output)
    if not (results == "ok").any():
        raise typer.Exit(1)


@app.command()
def export(
    name: Annotated[str, typer.Argument(
        help="An estimator or recognizer (see `fiqa list`).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ONNX file to write.")
    ] = Path("model.onnx"),
    kind: Annotated[str | None, typer.Option(
        help="estimator (the score) or recognizer (the embedding), for a name that is both "
        "(magface).", show_default=False)] = None,
) -> None:
    """Write an estimator or recognizer as an ONNX file (needs the `onnx` extra).

    Input `crops`: N×3×S×S uint8 RGB faces aligned to the model's crop spec, which
    the file's metadata holds (`fiqa.crop_spec`). Output `score` (N raw scores) for
    an estimator, `embedding` (N×D, unnormalised) for a recognizer. Estimators that
    read detection metadata or fit trees (baseline, detection, landmarks, landmarks68) have none.

    Examples:

      fiqa export ri -o ri.onnx

      fiqa export magface --kind recognizer -o magface_embedding.onnx
    """
    try:
        from . import onnx_export

        model = onnx_export.load(name, kind)
        path = onnx_export.export(model, output)
    except (ImportError, OSError, ValueError) as error:
        _fail(error)
    facts = onnx_export.metadata(model)
    console.print(f"{facts['fiqa.kind']} {name} → {path} ({path.stat().st_size / 1e6:.1f} MB); "
                  f"input crops N×3×{model.crop_spec.size}×{model.crop_spec.size} uint8, "
                  f"output {facts['fiqa.output']}")


@app.command()
def report(
    source: Annotated[Path, typer.Argument(
        help="A table of `fiqa score` (.csv, .parquet, or a folder of shards), or a report "
        "folder of `fiqa evaluate`.", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for index.html (one self-contained page).")
    ] = Path("fiqa_html"),
    thumbnails: Annotated[int, typer.Option(
        min=1, help="Faces shown per estimator in each of: lowest, highest, a random sample.")
    ] = 12,
    folders: Annotated[int, typer.Option(min=1, help="Folders listed in the summary.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the random sample.")] = 0,
    device: Device = "auto",
) -> None:
    """Write an HTML page about a table of scores or an evaluation, for a browser.

    For scores: rows by status, a histogram and quantiles per estimator, the lowest-
    and highest-quality faces and a random sample as aligned thumbnails with their
    component values (with attention's per-patch map), and a summary per folder. For an
    evaluation: its EDC plot and pAUC table. Images are embedded; no network, no
    script; the page stays small for any number of rows.

    Examples:

      fiqa score photos/ -m magface,attention -o scores.csv && fiqa report scores.csv -o report/

      fiqa report evaluation/ -o evaluation_html/
    """
    from .html_report import write_report

    try:
        page = write_report(source, output, thumbnails, folders, seed, device)
    except (OSError, ValueError) as error:
        _fail(error)
    console.print(f"report → {page} ({page.stat().st_size / 1e6:.1f} MB)")


@app.command("list")
def list_models() -> None:
    """Show the estimators, recognizers and weights, with provenance and licence.

    Weights are shown with the first 16 hex digits of their sha256; the whole digests, the
    commands that made the files and notes are in weights/manifest.json.
    """
    estimator_rows = []
    for name in estimators.list_estimators():
        cls = estimators.estimator_class(name)
        low, high = cls.score_range
        estimator_rows.append((name, cls.description, [
            f"raw {low:g} – {high:g}", "needs " + (", ".join(sorted(cls.needs)) or "crops only"),
            "weights " + (", ".join(cls.weights) or "none"),
            *([f"variant {name}:<{cls.variant}>"] if cls.variant else [])]))
    recognizer_rows = []
    for name in recognizers.list_recognizers():
        cls = recognizers.recognizer_class(name)
        spec = cls.crop_spec
        crop = f"crop {spec.size}×{spec.size} {spec.channels}" + (
            f", padding {spec.padding:g}" if spec.padding else "")
        recognizer_rows.append((name, cls.description, [f"{cls.dim}-d", crop,
                                                        "weights " + ", ".join(cls.weights)]))
    weight_rows = [(name, entry["source"], [entry["licence"], entry["file"],
                                            f"sha256 {entry['sha256'][:16]}"])
                   for name, entry in manifest().items()]
    out = Console()
    for title, rows in (("Estimators", estimator_rows), ("Recognizers", recognizer_rows),
                        ("Weights (weights/manifest.json)", weight_rows)):
        table = Table(title=title, title_justify="left", show_header=False, show_lines=True)
        table.add_column("name", no_wrap=True, style="bold")
        table.add_column("details", ratio=1, overflow="fold")
        for name, text, facts in rows:
            table.add_row(name, Text(text + "\n") + Text(" · ".join(facts), style="dim"))
        out.print(table)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _RateColumn(), TimeRemainingColumn(elapsed_when_finished=True), console=console,
    )


class _RateColumn(ProgressColumn):
    """Images per second over the whole task so far (done / elapsed)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("– img/s", style="cyan")
        return Text(f"{task.completed / elapsed:.1f} img/s", style="cyan")


def _summary(results: pd.Series, statuses: Counter, images: int, elapsed: float,
             output: str) -> None:
    """Print the run's size and time, and the output's rows by status (``results``)."""
    console.print(f"{images} images in {elapsed:.1f} s → {output}")
    table = Table(title="rows by status", title_justify="left")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, count in results.str.split(":").str[0].value_counts().items():
        table.add_row(status, str(count))
    console.print(table)
    if statuses:
        console.print("this run: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common()))
if __name__ == "__main__":
    app()
