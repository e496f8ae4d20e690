"""Result tables written as they grow, so a killed run keeps its work and can resume.

Rows go to a CSV file, one flush per image. A ``.parquet`` output is journaled as
``<out>.partial.csv`` and converted when the run finishes.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd


class ResultTable:
    """Append-only table at ``path`` (.csv or .parquet) with the given ``columns``.

    resume: keep the rows already there and report their paths in :attr:`finished` (the last
    image of an interrupted file is dropped and redone, since its rows may be incomplete).
    overwrite: replace an existing output. Without either, an existing output is an error.
    """

    def __init__(self, path: str | Path, columns: list[str], resume: bool = False,
                 overwrite: bool = False) -> None:
        self.path, self.columns = Path(path), columns
        if self.path.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"output must end in .csv or .parquet, got {self.path.name}")
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.journal = self.path.with_name(self.path.name + ".partial.csv") if self.parquet \
            else self.path
        if self.parquet and self.path.exists() and resume and not self.journal.exists():
            pd.read_parquet(self.path).to_csv(self.journal, index=False)
        exists = self.journal.exists() or self.path.exists()
        if exists and not (resume or overwrite):
            raise FileExistsError(f"{self.path} exists: pass --resume to continue it or "
                                  "--overwrite to replace it")
        self.finished: set[str] = set()
        if resume and self.journal.exists():
            self.finished = self._recover()
        else:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            with open(self.journal, "w", newline="") as file:
                csv.writer(file).writerow(columns)

    def _recover(self) -> set[str]:
        """Check the header, cut a torn tail and the last image's rows; return finished paths."""
        with open(self.journal, newline="") as file:
            header = next(csv.reader(file), [])
        if header != self.columns:
            raise ValueError(f"{self.journal} has other columns (other estimators?): use a new "
                             "output file, or the same estimators as the run that wrote it")
        data = self.journal.read_bytes()
        data = data[: data.rfind(b"\n") + 1]  # a line cut by the kill
        lines = data.splitlines(keepends=True)
        paths = [row[0] for row in csv.reader(io.StringIO(b"".join(lines[1:]).decode()))]
        keep = len(paths)
        while keep and paths[keep - 1] == paths[-1]:
            keep -= 1
        self.journal.write_bytes(b"".join(lines[: keep + 1]))
        return set(paths[:keep])

    def append(self, rows: list[dict]) -> None:
        """Write ``rows`` (dicts keyed by column; missing keys stay empty) and flush."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow([_format(row.get(column)) for column in self.columns])
        with open(self.journal, "a", newline="") as file:
            file.write(buffer.getvalue())

    def close(self) -> pd.DataFrame:
        """Finish the output (convert the journal to Parquet if asked) and return the table."""
        table = read_table(self.journal)
        if self.parquet:
            table.to_parquet(self.path, index=False)
            self.journal.unlink()
        return table


def read_table(path: str | Path) -> pd.DataFrame:
    """A results table written by fiqa (.csv or .parquet)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _format(value) -> str:
    """Cell text: empty for missing/NaN, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{float(value):.6g}"
    return str(value)
