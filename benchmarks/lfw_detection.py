"""Detection and alignment on all of LFW: face-found rate, eye error, speed, a contact sheet.

    python benchmarks/lfw_detection.py [--detector mtcnn|yunet] [--lfw ../shared/data/lfw]

Scores every LFW image with `fiqa score --detector D` (resumable: rerun to continue; the speed is
that of the last, uninterrupted run), then writes benchmarks/results/lfw_detection_<D>.json and
docs/img/lfw_contact_sheet_<D>.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw

from fiqa import DEFAULT_CROP, align, read_image
from fiqa.crop import alignment_matrices
from fiqa.pipeline import LANDMARK_COLUMNS
from fiqa.results import read_table

ROOT = Path(__file__).resolve().parents[1]


def eye_errors(table) -> np.ndarray:
    """Per face: mean distance (112-px crop pixels) of the aligned eye centres to the template."""
    landmarks = table[LANDMARK_COLUMNS].to_numpy().reshape(-1, 5, 2)
    matrices = alignment_matrices(landmarks, DEFAULT_CROP)
    eyes = np.einsum("nij,nkj->nki", matrices[:, :, :2], landmarks[:, :2]) + matrices[:, None, :, 2]
    return np.linalg.norm(eyes - DEFAULT_CROP.landmarks()[:2], axis=2).mean(1)


def contact_sheet(table, path: Path, count: int = 80, columns: int = 10) -> None:
    """Aligned crops of ``count`` random faces (seeded), worst baseline scores on the last row."""
    rng = np.random.default_rng(0)
    picks = pd.concat([table.iloc[rng.choice(len(table), count - columns, replace=False)],
                       table.nsmallest(columns, "baseline")])
    sheet = Image.new("RGB", (columns * 112, (len(picks) + columns - 1) // columns * 126), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(picks.itertuples()):
        image = read_image(row.path)
        landmarks = np.array([[getattr(row, column) for column in LANDMARK_COLUMNS]])
        crop = align(torch.from_numpy(image.pixels).permute(2, 0, 1),
                     landmarks.reshape(1, 5, 2) * image.scale)[0]
        x, y = i % columns * 112, i // columns * 126
        sheet.paste(Image.fromarray(crop.permute(1, 2, 0).numpy()), (x, y))
        draw.text((x + 2, y + 112), f"q {row.baseline * 100:.0f}", fill="black")
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--detector", default="mtcnn")
    args = parser.parse_args()
    output = ROOT / "benchmarks" / "results" / f"lfw_baseline_{args.detector}.csv"
    command = [sys.executable, "-m", "fiqa.cli", "score", str(args.lfw / "images"), "-o",
               str(output), "--device", args.device, "--detector", args.detector, "--resume"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    elapsed = time.perf_counter() - start
    table = read_table(output)
    ok = table[table["status"] == "ok"]
    errors = eye_errors(ok)
    summary = {
        "images": int(table["path"].nunique()),
        "face_found": int(ok["path"].nunique()),
        "face_found_rate": ok["path"].nunique() / table["path"].nunique(),
        "statuses": table["status"].value_counts().to_dict(),
        "eye_error_px_112_mean": float(errors.mean()),
        "eye_error_px_112_p95": float(np.percentile(errors, 95)),
        "inter_eye_px_median": float(ok["baseline.inter_eye_px"].median()),
        "turned_upright": int((ok["rotated"] != 0).sum()),
        "median_det_score": float(ok["det_score"].median()),
        "last_run_s": elapsed,
        "images_per_s_end_to_end": table["path"].nunique() / elapsed,
        "no_face_images": sorted(table.loc[table["status"] != "ok", "path"].map(
            lambda p: Path(p).name)),
        "command": f"python benchmarks/lfw_detection.py --detector {args.detector}",
    }
    (ROOT / "benchmarks" / "results" / f"lfw_detection_{args.detector}.json").write_text(
        json.dumps(summary, indent=2) + "\n")
    contact_sheet(ok, ROOT / "docs" / "img" / f"lfw_contact_sheet_{args.detector}.png")
    print(json.dumps({k: v for k, v in summary.items() if k != "no_face_images"}, indent=2))


if __name__ == "__main__":
    main()
