"""``fiqa report``: one self-contained HTML page about a table of scores or an evaluation.

For a table written by ``fiqa score`` (.csv, .parquet, or a folder of shards): the rows by status
and the commonest reasons, per estimator a histogram of its 0–100 quality with its quantiles (and
the predicted FNMR where the table has ``<estimator>.fnmr``), its lowest- and highest-scored
faces and a random sample as aligned thumbnails with their component values (with the per-patch
map beside them for an estimator that has one), and a summary per folder. For a report folder of
``fiqa evaluate``: its EDC plot and table. Images are embedded as data URIs and the page has no
script, so it opens anywhere offline; its size is bounded whatever the table's length (at most
``3 × thumbnails`` faces per estimator, ``max_folders`` folder rows).
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from . import __version__
from .crop import DEFAULT_CROP, CropSpec, align
from .estimators import create, estimator_class, list_estimators
from .explain import explainable, overlay
from .imageio import ImageReadError, pixel_tensor, read_image
from .pipeline import LANDMARK_COLUMNS
from .results import read_table

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 2px 8px; text-align: right;
  border-bottom: 1px solid #eee; } th { background: #f4f4f4; } td:first-child { text-align: left; }
.faces { display: flex; flex-wrap: wrap; gap: 8px; } .face { width: 120px; font-size: 11px; }
.face img { display: block; } .face .path { word-break: break-all; color: #666; }
.missing { width: 112px; height: 112px; background: #eee; color: #999; display: flex;
  align-items: center; justify-content: center; text-align: center; }
.note { color: #666; }
"""


def write_report(source: str | Path, output: str | Path, thumbnails: int = 12,
                 max_folders: int = 50, seed: int = 0, device: str = "cpu") -> Path:
    """Write ``output``/index.html about ``source`` (a scores table, or a ``fiqa evaluate``
    report folder); returns the page's path."""
    source = Path(source)
    if source.is_dir() and (source / "summary.json").is_file():
        body = _evaluation(source)
        title = f"fiqa evaluation: {source.name}"
    else:
        table = read_table(source)
        if "status" not in table or "path" not in table:
            raise ValueError(f"{source} is not a fiqa scores table (no path and status columns)")
        title = f"fiqa report: {source.name}"
        body = _scores(table, thumbnails, max_folders, seed, device)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    page = output / "index.html"
    page.write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=\"note\">{html.escape(str(source))} · fiqa "
        f"{__version__} · {time.strftime('%Y-%m-%d %H:%M')}</p>{body}</body></html>\n")
    return page


def _scores(table: pd.DataFrame, thumbnails: int, max_folders: int, seed: int,
            device: str) -> str:
    estimators = [c[: -len(".quality")] for c in table.columns if c.endswith(".quality")]
    ok = table[table["status"] == "ok"]
    parts = [f"<p>{len(table):,} rows, {table['path'].nunique():,} images, {len(ok):,} faces "
             f"scored; estimators: {html.escape(', '.join(estimators) or 'none')}.</p>",
             _statuses(table)]
    crops = _Crops()
    rng = np.random.default_rng(seed)
    for name in estimators:
        parts.append(f"<h2>{html.escape(name)}</h2>")
        scored = ok[ok[name].notna()].sort_values(name, kind="stable")
        if scored.empty:
            parts.append("<p>No face has this score.</p>")
            continue
        parts += [_histogram(scored[f"{name}.quality"].to_numpy()), _quantiles(scored, name)]
        known = name in list_estimators() and explainable(estimator_class(name))
        model = create(name, device) if known else None  # only for its per-patch map
        faces = ["path", "face"]  # a face listed twice (two runs in one table) is shown once
        distinct = scored.drop_duplicates(faces)
        lowest, highest = distinct.head(thumbnails), distinct[::-1].head(thumbnails)
        sample = distinct.iloc[np.sort(rng.choice(len(distinct), min(thumbnails, len(distinct)),
                                                  replace=False))]
        for label, rows in (("lowest", lowest), ("highest", highest),
                            ("a random sample, in score order", sample)):
            parts.append(f"<h3>{html.escape(label)}</h3>" + _faces(rows, name, model, crops))
    parts.append(_folders(table, estimators, max_folders))
    return "\n".join(parts)


def _statuses(table: pd.DataFrame) -> str:
    kinds = table["status"].str.split(":").str[0].value_counts()
    reasons = table.loc[table["status"] != "ok", "status"].value_counts().head(10)
    return ("<h2>Rows by status</h2>" + _table(["status", "rows"], kinds.items())
            + ("<h3>Commonest reasons</h3>" + _table(["status", "rows"], reasons.items())
               if len(reasons) else ""))


def _histogram(quality: np.ndarray, bins: int = 20, width: int = 600, height: int = 160,
               margin: int = 12) -> str:
    """An inline SVG histogram of 0–100 qualities."""
    counts, _ = np.histogram(quality, bins=bins, range=(0, 100))
    bar, tall = (width - 2 * margin) / bins, height - 30
    top = max(counts.max(), 1)
    rects = "".join(
        f'<rect x="{margin + i * bar + 1:.1f}" y="{height - 20 - c / top * tall:.1f}" '
        f'width="{bar - 2:.1f}" height="{c / top * tall:.1f}" fill="#4c78a8">'
        f"<title>{i * 100 // bins}–{(i + 1) * 100 // bins}: {c}</title></rect>"
        for i, c in enumerate(counts))
    ticks = "".join(f'<text x="{margin + x / 100 * (width - 2 * margin):.0f}" y="{height - 4}" '
                    f'font-size="10" text-anchor="middle">{x}</text>' for x in range(0, 101, 20))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="quality histogram">'
            f"{rects}{ticks}</svg><p class=\"note\">quality 0–100, {len(quality):,} faces; "
            f"tallest bar {top:,}</p>")


def _quantiles(scored: pd.DataFrame, name: str) -> str:
    columns = [c for c in (name, f"{name}.quality", f"{name}.fnmr") if c in scored]
    rows = [(c, *(f"{scored[c].quantile(q):.4g}" for q in (0, 0.01, 0.1, 0.5, 0.9, 0.99, 1)),
             f"{scored[c].mean():.4g}") for c in columns]
    return _table(["column", "min", "1 %", "10 %", "median", "90 %", "99 %", "max", "mean"], rows)


def _faces(rows: pd.DataFrame, name: str, model, crops: _Crops) -> str:
    """Thumbnails (the default 112 crop) of ``rows`` with their values; with ``model``, an
    explainable estimator, its per-patch map over its own crop beside each."""
    components = [c for c in rows.columns if c.startswith(f"{name}.")
                  and c != f"{name}.quality"]
    cells = []
    for _, row in rows.iterrows():
        crop = crops.get(row, DEFAULT_CROP)
        pictures = _missing() if crop is None else _image(crop)
        own = None if model is None else crops.get(row, model.crop_spec)
        if own is not None:
            heatmap = model.explain(torch.from_numpy(own).permute(2, 0, 1)[None])[0]
            pictures += _image(overlay(own, heatmap, model.score_range))
        values = "<br>".join(f"{html.escape(c.split('.', 1)[1])} {row[c]:.4g}"
                             for c in components if pd.notna(row[c]))
        cells.append(f'<div class="face">{pictures}<b>{row[name]:.4g}</b> (quality '
                     f'{row[f"{name}.quality"]:.0f})<br>{values}<div class="path">'
                     f"{html.escape(str(row['path']))} #{row['face']}</div></div>")
    return f'<div class="faces">{"".join(cells)}</div>'


class _Crops:
    """Aligned crops of table rows, made once per (path, face, crop spec) from the original
    photo and the row's landmarks; None where the photo cannot be read any more."""

    def __init__(self) -> None:
        self.made: dict[tuple, np.ndarray | None] = {}

    def get(self, row: pd.Series, spec: CropSpec) -> np.ndarray | None:
        key = (row["path"], row["face"], spec)
        if key not in self.made:
            self.made[key] = self._make(row, spec)
        return self.made[key]

    @staticmethod
    def _make(row: pd.Series, spec: CropSpec) -> np.ndarray | None:
        try:
            image = read_image(row["path"])
        except ImageReadError:
            return None
        points = row[LANDMARK_COLUMNS].to_numpy(np.float64).reshape(1, 5, 2) * image.scale
        if np.isnan(points).any():
            return None
        pixels = pixel_tensor(image.pixels).permute(2, 0, 1)
        return align(pixels, points, spec)[0].permute(1, 2, 0).numpy()


def _image(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    side = pixels.shape[0]
    return f'<img src="data:image/jpeg;base64,{data}" width="{side}" height="{side}" alt="">'


def _missing() -> str:
    return '<div class="missing">image not found</div>'


def _folders(table: pd.DataFrame, estimators: list[str], limit: int) -> str:
    folders = table["path"].map(lambda p: str(Path(p).parent))
    ok = table["status"] == "ok"
    grouped = pd.DataFrame({"folder": folders, "path": table["path"], "ok": ok,
                            **{e: table[f"{e}.quality"].where(ok) for e in estimators}})
    summary = grouped.groupby("folder").agg(images=("path", "nunique"), faces=("ok", "sum"),
                                            **{e: (e, "mean") for e in estimators})
    summary = summary.sort_values("images", ascending=False)
    rows = [(folder, f"{r['images']:,}", f"{int(r['faces']):,}",
             *(f"{r[e]:.1f}" if pd.notna(r[e]) else "–" for e in estimators))
            for folder, r in summary.iloc[:limit].iterrows()]
    note = (f"<p class=\"note\">{len(summary) - limit:,} more folders not shown.</p>"
            if len(summary) > limit else "")
    return ("<h2>By folder</h2>" + _table(["folder", "images", "faces scored",
                                            *(f"mean {e} quality" for e in estimators)], rows)
            + note)


def _evaluation(folder: Path) -> str:
    summary = json.loads((folder / "summary.json").read_text())
    about = summary.get("about", {})
    parts = ["<p>" + html.escape(", ".join(f"{k}: {v}" for k, v in about.items())) + "</p>"]
    if (folder / "edc.png").is_file():
        data = base64.b64encode((folder / "edc.png").read_bytes()).decode()
        parts.append(f'<img src="data:image/png;base64,{data}" alt="EDC curves" '
                     'style="max-width: 100%">')
    keys = ("recognizer", "estimator", "genuine", "impostor", "fnmr_start", "pauc",
            "pauc_low", "pauc_high", "pauc_random", "pauc_normalized")
    rows = [[_cell(r.get(k)) for k in keys] for r in summary.get("results", [])]
    parts.append("<h2>pAUC of the FNMR EDC</h2>" + _table(list(keys), rows))
    parts += [f"<p class=\"note\">warning: {html.escape(w)}</p>"
              for w in summary.get("warnings", [])]
    return "\n".join(parts)


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "–" if value is None else str(value)


def _table(header: list[str], rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
