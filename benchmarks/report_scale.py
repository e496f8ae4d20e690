"""`fiqa report` on a table of 1,000,000 rows: seconds, page size, and a Chromium screenshot.

    python benchmarks/report_scale.py [--rows 1000000]

The rows are made from real ones: the speed issue's 500 mixed-size photos
(``benchmarks/throughput.py``) are scored with ``magface,attention`` and the shipped calibrations,
then their rows repeated to ``--rows`` with each raw score jittered (so the lowest and highest
faces are not the same few) and its quality and FNMR recomputed from it, written as Parquet.
Reported: the seconds to write the report, its size, the seconds Chromium takes to render it,
and whether Chromium logged any console message.
Results in ``benchmarks/results/report_scale.json``; the screenshot is ``docs/img/report.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from throughput import ROOT, mixed_folder

from fiqa import Scorer
from fiqa.calibration import shipped
from fiqa.html_report import write_report
from fiqa.results import column_dtypes

METHODS = ("magface", "attention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    paths = mixed_folder(500, ROOT / ".fiqa-cache" / "throughput")
    scorer = Scorer(METHODS, device="cpu", calibrations=[shipped(m) for m in METHODS])
    rows = [row for rows in scorer.run(paths) for row in rows]
    real = pd.DataFrame.from_records(rows, columns=scorer.columns).astype(
        column_dtypes(scorer.columns))
    rng = np.random.default_rng(0)
    table = real.iloc[np.arange(args.rows) % len(real)].reset_index(drop=True)
    for estimator in scorer.estimators:
        name = estimator.name
        jitter = rng.normal(0, 0.02, len(table)) * (table[name].max() - table[name].min())
        table[name] = table[name] + jitter
        table[f"{name}.quality"] = estimator.to_quality(table[name].to_numpy())
        table[f"{name}.fnmr"] = scorer.calibrations[name].predict(table[name].to_numpy())
    work = Path(tempfile.mkdtemp())
    source = work / "scores.parquet"
    table.to_parquet(source, index=False)
    started = time.perf_counter()
    page = write_report(source, work / "html")
    report_s = time.perf_counter() - started
    result = {"rows": len(table), "real_rows": len(real), "report_s": round(report_s, 1),
              "page_mb": round(page.stat().st_size / 1e6, 2)}
    chromium = shutil.which("chromium")
    if chromium:
        shot = work / "shot.png"
        started = time.perf_counter()
        rendered = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={work / 'profile'}", "--enable-logging=stderr",
             "--v=0", "--window-size=1280,2600", f"--screenshot={shot}", page.as_uri()],
            capture_output=True, text=True, timeout=300)
        result["chromium_s"] = round(time.perf_counter() - started, 1)
        result["console_messages"] = [line for line in rendered.stderr.splitlines()
                                      if ":CONSOLE" in line]
        Image.open(shot).convert("RGB").save(ROOT / "docs" / "img" / "report.png",
                                             optimize=True)
    print(json.dumps(result, indent=1))
    (ROOT / "benchmarks" / "results" / "report_scale.json").write_text(
        json.dumps(result, indent=1) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
