"""Result tables written as they grow, so a killed run keeps its work and can resume.

Rows go to a CSV file, one flush per image. A ``.parquet`` or ``.npy`` output is journaled as
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
    """Append-only table at ``path`` (.csv, .parquet or .npy) with the given ``columns``.

    A ``.npy`` output holds the columns named ``<model>.<integer>`` (embeddings) as an N×D float32
    matrix, NaN where a row has none, beside ``<out>.rows.csv`` with the other columns.

    resume: keep the rows already there and report their paths in :attr:`finished` (the last
    image of an interrupted file is dropped and redone, since its rows may be incomplete).
    overwrite: replace an existing output. Without either, an existing output is an error.
    """

    def __init__(self, path: str | Path, columns: list[str], resume: bool = False,
                 overwrite: bool = False) -> None:
        self.path, self.columns = Path(path), columns
        self.kind = self.path.suffix.lower()
        if self.kind not in (".csv", ".parquet", ".npy"):
            raise ValueError(f"output must end in .csv, .parquet or .npy, got {self.path.name}")
        self.journal = self.path if self.kind == ".csv" else \
            self.path.with_name(self.path.name + ".partial.csv")
        if self.kind != ".csv" and self.path.exists() and resume and not self.journal.exists():
            read_table(self.path, _vector_columns(columns)).to_csv(self.journal, index=False)
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
        """Finish the output (convert the journal if needed) and return the table."""
        table = read_table(self.journal)
        if self.kind == ".parquet":
            table.to_parquet(self.path, index=False)
        elif self.kind == ".npy":
            vectors = _vector_columns(self.columns)
            np.save(self.path, table[vectors].to_numpy(np.float32))
            table.drop(columns=vectors).to_csv(_rows_path(self.path), index=False)
        if self.journal != self.path:
            self.journal.unlink()
        return table


def read_table(path: str | Path, vector_names: list[str] | None = None) -> pd.DataFrame:
    """A table written by fiqa: .csv, .parquet, or .npy (with its .rows.csv) as one frame.

    vector_names: column names for an .npy matrix (default ``embedding.0`` …).
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".npy":
        vectors = np.load(path)
        names = vector_names or [f"embedding.{i}" for i in range(vectors.shape[1])]
        return pd.concat([read_table(_rows_path(path)), pd.DataFrame(vectors, columns=names)],
                         axis=1)
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _vector_columns(columns: list[str]) -> list[str]:
    """The embedding columns, ``<model>.<integer>``."""
    return [c for c in columns if c.rpartition(".")[2].isdigit()]


def _rows_path(npy: Path) -> Path:
    return npy.with_name(npy.name + ".rows.csv")


def _format(value) -> str:
    """Cell text: empty for missing/NaN, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{float(value):.6g}"
    return str(value)
