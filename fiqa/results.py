"""Result tables written as they grow, so a killed run keeps its work and can resume.

Rows go to a CSV file, one flush per image, floats at full precision. A ``.parquet`` or ``.npy``
output is journaled as ``<out>.partial.csv`` and converted when the run finishes, with fixed
column types (:func:`column_dtypes`). ``<out>.lock`` keeps two runs from writing one output.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

TEXT_COLUMNS = ("path", "status")
INTEGER_COLUMNS = ("face",)
SHARD_PREFIX = "part-"  # the Parquet shards of a folder output (fiqa.ray_engine)


class ResultTable:
    """Append-only table at ``path`` (.csv, .parquet or .npy) with the given ``columns``.

    A ``.npy`` output holds the columns named ``<model>.<integer>`` (embeddings) as an N×D float32
    matrix, NaN where a row has none, beside ``<out>.rows.csv`` with the other columns.

    resume: keep the rows already there and report their paths in :attr:`finished` (the last
    image of an interrupted file is dropped and redone, since its rows may be incomplete).
    overwrite: replace an existing output. Without either, an existing output is an error.
    Another run writing the same output is an error (:class:`OutputLocked`) until it ends.
    """

    def __init__(self, path: str | Path, columns: list[str], resume: bool = False,
                 overwrite: bool = False) -> None:
        self.path, self.columns = Path(path), columns
        self.kind = self.path.suffix.lower()
        if self.kind not in (".csv", ".parquet", ".npy"):
            raise ValueError(f"output must end in .csv, .parquet or .npy, got {self.path.name}")
        if resume and overwrite:
            raise ValueError("--resume and --overwrite exclude each other: continue the output "
                             "or replace it")
        self.lock = OutputLock(self.path)
        try:
            self._open(resume, overwrite)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, resume: bool, overwrite: bool) -> None:
        """Continue the journal (resume) or start it with the header row."""
        columns = self.columns
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
        data = self.journal.read_bytes()
        rows, ends = complete_records(data)
        if not rows or rows[0] != self.columns:
            raise ValueError(f"{self.journal} has other columns (other estimators?): use a new "
                             "output file, or the same estimators as the run that wrote it")
        paths = [row[0] for row in rows[1:]]
        keep = len(paths)
        while keep and paths[keep - 1] == paths[-1]:
            keep -= 1
        self.journal.write_bytes(data[: ends[keep]])
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
        """Finish the output (convert the journal if needed), release the lock, return the
        table."""
        try:
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
        finally:
            self.lock.release()


class OutputLocked(Exception):
    """Another process is writing the same output."""


class OutputLock:
    """An exclusive lock on ``<path>.lock`` (an OS file lock: it ends with its process, so a killed
    run leaves nothing stale). Raises :class:`OutputLocked` if another process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.file = open(self.path, "a+")  # noqa: SIM115 - held until release()
            if not _try_lock(self.file):
                self.file.close()
                raise OutputLocked(f"{path} is being written by another fiqa run (lock "
                                   f"{self.path}): wait for it, or choose another --output")
            try:  # the holder before us may have removed the file: lock the one on disk
                if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            self.file.close()

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if not self.file.closed:
            self.path.unlink(missing_ok=True)
            self.file.close()


def _try_lock(file) -> bool:
    """A non-blocking exclusive lock on an open file: True when taken."""
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def complete_records(data: bytes) -> tuple[list[list[str]], list[int]]:
    """The whole CSV records of ``data`` (fields may hold quoted newlines) and the byte offset
    just past each (``ends[i]`` for record ``i``, the header being 0). A record torn by a kill
    (unterminated, an open quote, missing fields) and everything after it are left out."""
    lines = data.split(b"\n")[:-1]  # the last piece has no newline: torn or empty
    ends: list[int] = []
    consumed = 0

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += len(line) + 1
            yield line.decode("utf-8", errors="replace") + "\n"

    rows: list[list[str]] = []
    try:
        for row in csv.reader(feed(), strict=True):
            if rows and len(row) != len(rows[0]):
                break
            rows.append(row)
            ends.append(consumed)
    except csv.Error:
        pass
    return rows, ends


def read_table(path: str | Path, vector_names: list[str] | None = None) -> pd.DataFrame:
    """A table written by fiqa: .csv, .parquet, .npy (with its .rows.csv), or a folder of
    Parquet shards (``--engine ray``, read in name order: the input order) as one frame.

    vector_names: column names for an .npy matrix (default ``embedding.0`` …).
    """
    path = Path(path)
    if path.is_dir():
        shards = shard_names(p.name for p in path.iterdir())
        if not shards:
            raise FileNotFoundError(f"{path} holds no Parquet shards ({SHARD_PREFIX}*.parquet)")
        return pd.concat([pd.read_parquet(path / shard) for shard in shards], ignore_index=True)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".npy":
        vectors = np.load(path)
        names = vector_names or [f"embedding.{i}" for i in range(vectors.shape[1])]
        return pd.concat([read_table(_rows_path(path)), pd.DataFrame(vectors, columns=names)],
                         axis=1)
    with open(path, newline="") as file:
        header = next(csv.reader(file), [])
    return pd.read_csv(path, dtype=column_dtypes(header), keep_default_na=False, na_values=[""])


def shard_names(names: Iterable[str]) -> list[str]:
    """The Parquet shard file names among a folder's ``names``, in row order (by name)."""
    return sorted(n for n in names if n.startswith(SHARD_PREFIX) and n.endswith(".parquet"))


def column_dtypes(columns: list[str]) -> dict[str, str]:
    """The fixed type of each column of a fiqa table, whatever its values: ``str`` for path and
    status, nullable ``Int64`` for the face index, ``float32`` for embeddings (``<model>.<i>``),
    ``float64`` for everything else (scores, qualities, components, boxes, landmarks)."""
    vectors = set(_vector_columns(columns))
    return {column: "str" if column in TEXT_COLUMNS else "Int64" if column in INTEGER_COLUMNS
            else "float32" if column in vectors else "float64" for column in columns}


def _vector_columns(columns: list[str]) -> list[str]:
    """The embedding columns, ``<model>.<integer>``."""
    return [c for c in columns if c.rpartition(".")[2].isdigit()]


def _rows_path(npy: Path) -> Path:
    return npy.with_name(npy.name + ".rows.csv")


def _format(value) -> str:
    """Cell text: empty for missing/NaN; floats in the shortest form that reads back to the same
    value of their own type (float32 stays float32-exact, float64 float64-exact)."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        return str(value) if isinstance(value, np.float32 | np.float16) else repr(float(value))
    return str(value)
