"""The ``fiqa`` command line: ``fiqa score`` and ``fiqa list``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated

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

from . import estimators as registry
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, expand_inputs
from .weights import manifest

app = typer.Typer(
    help="Face image quality assessment: score how useful each face is for recognition.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def score(
    inputs: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively), globs, or .txt/.lst files of paths.",
        show_default=False)],
    methods: Annotated[str, typer.Option(
        "--methods", "-m", help="Estimators, comma-separated (see `fiqa list`).")] = "baseline",
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Results table, .csv or .parquet, written as the run goes.")
    ] = Path("fiqa_scores.csv"),
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(
        min=1, help="Images per detection batch and faces per estimator batch.")] = 32,
    workers: Annotated[int, typer.Option(min=1, help="Threads decoding images.")] = 2,
    aligned: Annotated[bool, typer.Option(
        help="Inputs are already 112×112-template aligned crops: skip detection.")] = False,
    all_faces: Annotated[bool, typer.Option(
        help="Score every face found, not just the largest.")] = False,
    resume: Annotated[bool, typer.Option(
        help="Continue an interrupted run: keep OUTPUT's rows and skip their images.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
    max_side: Annotated[int, typer.Option(
        help="Larger images are reduced to this side before detection.")] = DEFAULT_MAX_SIDE,
    max_pixels: Annotated[int, typer.Option(
        help="Refuse images with more pixels (decompression-bomb guard).")] = DEFAULT_MAX_PIXELS,
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
    """
    from .pipeline import Scorer
    from .results import ResultTable

    try:
        paths = expand_inputs(inputs)
        names = [name.strip() for name in methods.split(",") if name.strip()]
        for name in names:
            registry.estimator_class(name)
        scorer = Scorer(names, device, batch_size, aligned, all_faces, max_side, max_pixels)
        table = ResultTable(output, scorer.columns, resume=resume, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    todo = [path for path in paths if str(path) not in table.finished]
    if table.finished:
        console.print(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already done")

    statuses: Counter[str] = Counter()
    start = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("scoring", total=len(todo))
        for rows in scorer.run(todo, workers):
            table.append(rows)
            statuses.update(row["status"].split(":")[0] for row in rows)
            progress.advance(task)
    results = table.close()
    elapsed = time.perf_counter() - start
    _summary(results, statuses, len(todo), elapsed, output)
    if not (results["status"] == "ok").any():
        raise typer.Exit(1)


@app.command("list")
def list_models() -> None:
    """Show the estimators and the weights they use, with provenance and licence."""
    estimators = Table(title="Estimators", title_justify="left")
    for column in ("name", "what it measures", "raw range", "needs", "weights"):
        estimators.add_column(column)
    for name in registry.list_estimators():
        cls = registry.estimator_class(name)
        low, high = cls.score_range
        estimators.add_row(name, cls.description, f"{low:g} – {high:g}",
                           ", ".join(sorted(cls.needs)) or "-", ", ".join(cls.weights) or "none")
    weights = Table(title="Models and weights (weights/manifest.json)", title_justify="left")
    for column in ("name", "file", "source", "licence"):
        weights.add_column(column)
    for name, entry in manifest().items():
        weights.add_row(name, entry["file"], entry["source"], entry["licence"])
    out = Console()
    out.print(estimators)
    out.print(weights)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _RateColumn(), TimeRemainingColumn(elapsed_when_finished=True), console=console,
    )


class _RateColumn(ProgressColumn):
    """Images per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} img/s" if speed else "– img/s", style="cyan")


def _summary(results, statuses: Counter, images: int, elapsed: float, output: Path) -> None:
    console.print(f"{images} images in {elapsed:.1f} s → {output}")
    table = Table(title="rows by status", title_justify="left")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, count in results["status"].str.split(":").str[0].value_counts().items():
        table.add_row(status, str(count))
    console.print(table)
    if statuses:
        console.print("this run: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common()))
if __name__ == "__main__":
    app()
