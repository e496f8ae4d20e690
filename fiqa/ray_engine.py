"""The Ray Data engine of ``fiqa score`` and ``fiqa embed`` (``--engine ray``): the local pipeline
spread over the actors of a Ray cluster, or of a local Ray on one machine.

The driver lists the inputs (:func:`list_inputs`) and makes them a dataset of ``(index, path)``
rows, one block per shard of images. A reading stage fetches each file's encoded bytes (a failure
is kept as the image's status). A pool of actors, each holding one
:class:`~fiqa.pipeline.Scorer` (detector and models loaded once per actor), decodes and scores a
block and writes its rows as a Parquet shard ``part-<index of its first image>.parquet`` into the
output folder (:class:`ShardFolder`). A shard is written under a hidden name and renamed, so it
is whole or absent, and a block retried after a lost actor replaces its own shard: a killed run
loses only the blocks in flight, and a resumed run skips every image already in a shard. Only
``(index, status)`` pairs travel back to the driver. The shards, read in name order
(:func:`fiqa.results.read_table`), are the local run's table row for row.

Needs the optional extra ``fiqa[ray]``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

from .imageio import IMAGE_SUFFIXES, expand_inputs, read_failure
from .pipeline import Scorer
from .results import SHARD_PREFIX, OutputLock, column_dtypes, shard_names

HIDDEN_PREFIX = "."  # what Parquet readers skip: shards being written are ".part-…"


def require_ray():
    """The ``ray`` module, or an ImportError naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate import
    except ImportError as error:
        raise ImportError("the Ray engine needs Ray Data: pip install 'fiqa[ray]'") from error
    return ray


def is_uri(path: str) -> bool:
    """Whether ``path`` names a filesystem by scheme (``s3://…``, ``file://…``)."""
    return "://" in path


def _filesystem(path: str):
    """(pyarrow filesystem, path inside it) for a local path or a URI."""
    from pyarrow import fs

    if is_uri(path):
        return fs.FileSystem.from_uri(path)
    return fs.LocalFileSystem(), str(Path(path).absolute())


def list_inputs(inputs: Iterable[str]) -> list[str]:
    """Image paths of ``inputs``, in order, each once: local files, folders, globs and lists as
    :func:`~fiqa.imageio.expand_inputs`, and URIs of files or folders (searched recursively for
    image suffixes) on any filesystem pyarrow opens. Raises FileNotFoundError for an argument
    that names nothing or a folder without images."""
    inputs = [str(item) for item in inputs]
    if not any(map(is_uri, inputs)):
        return [str(path) for path in expand_inputs(inputs)]
    paths: list[str] = []
    for item in inputs:
        paths += _list_uri(item) if is_uri(item) else map(str, expand_inputs([item]))
    return list(dict.fromkeys(paths))


def _list_uri(uri: str) -> list[str]:
    from pyarrow import fs

    filesystem, root = _filesystem(uri)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.File:
        return [uri]
    if info.type != fs.FileType.Directory:
        raise FileNotFoundError(f"no such file or folder: {uri}")
    base, mark, query = uri.partition("?")  # s3://bucket/dir?endpoint_override=…
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    images = sorted(f"{base.rstrip('/')}/{f.path[len(root):].lstrip('/')}{mark}{query}"
                    for f in found
                    if f.type == fs.FileType.File and Path(f.path).suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no images in folder {uri}")
    return images


def read_bytes(path: str, attempts: int = 3) -> bytes:
    """The whole file at a local path or URI; a URI's read is tried ``attempts`` times (an object
    store's throttling or time-out passes) before its OSError is kept as the image's status."""
    if not is_uri(path):
        return Path(path).read_bytes()
    for attempt in range(attempts - 1):
        try:
            return _read_uri(path)
        except FileNotFoundError:
            raise
        except OSError:
            time.sleep(0.5 * 2 ** attempt)
    return _read_uri(path)


def _read_uri(uri: str) -> bytes:
    filesystem, inner = _filesystem(uri)
    with filesystem.open_input_file(inner) as file:
        return file.read()


class ShardFolder:
    """The output of a Ray run: a folder (local path or URI) of Parquet shards of ``columns``.

    resume: keep the shards there and report their images in :attr:`finished`; overwrite: delete
    them. Without either, a folder with shards is an error; so is a folder holding anything but
    shards (and hidden files), and a file in its place. A local folder is locked
    (``<folder>.lock``) against a second run until :meth:`close`; a URI folder is not.
    """

    def __init__(self, output: str | Path, columns: list[str], resume: bool = False,
                 overwrite: bool = False) -> None:
        from pyarrow import fs

        self.output, self.columns = str(output), columns
        if resume and overwrite:
            raise ValueError("--resume and --overwrite exclude each other: continue the output "
                             "or replace it")
        self.filesystem, self.root = _filesystem(self.output)
        #: where actors write: the URI, or the local folder's absolute path
        self.location = self.output if is_uri(self.output) else self.root
        kind = self.filesystem.get_file_info(self.root).type
        if kind == fs.FileType.File:
            raise ValueError(f"{self.output} is a file: the Ray engine writes a folder of Parquet "
                             "shards (choose a new --output, e.g. scores.parquet/)")
        self.lock = None if is_uri(self.output) else OutputLock(Path(self.output))
        try:
            self.finished = self._open(kind == fs.FileType.Directory, resume, overwrite)
        except BaseException:
            self.close()
            raise

    def _open(self, exists: bool, resume: bool, overwrite: bool) -> set[str]:
        """Check the folder, drop torn shards and (overwrite) old ones; the finished paths."""
        from pyarrow import parquet

        names = self._names() if exists else []
        strangers = [n for n in names if not n.startswith((SHARD_PREFIX, HIDDEN_PREFIX))]
        hidden = [n for n in names if n.startswith(HIDDEN_PREFIX + SHARD_PREFIX)]
        if strangers:
            raise ValueError(f"{self.output} holds other files ({strangers[0]}, …): the Ray "
                             "engine writes into an empty folder of its own")
        shards = shard_names(names)
        if shards and not (resume or overwrite):
            raise FileExistsError(f"{self.output} holds shards: pass --resume to continue it or "
                                  "--overwrite to replace it")
        for name in hidden + (shards if overwrite else []):  # torn writes; old shards
            self.filesystem.delete_file(f"{self.root}/{name}")
        self.filesystem.create_dir(self.root)
        if overwrite or not resume:
            return set()
        for name in shards:
            schema = parquet.read_schema(f"{self.root}/{name}", filesystem=self.filesystem)
            if schema.names != self.columns:
                raise ValueError(f"{self.output} has other columns (other estimators?): use a "
                                 "new output folder, or the same estimators as the run that "
                                 "wrote it")
        return set(self._column("path", shards))

    def statuses(self) -> pd.Series:
        """The status column of every shard now in the folder."""
        return pd.Series(self._column("status", shard_names(self._names())), dtype="str")

    def _names(self) -> list[str]:
        """The file names in the folder."""
        from pyarrow import fs

        found = self.filesystem.get_file_info(fs.FileSelector(self.root))
        return [Path(info.path).name for info in found]

    def _column(self, column: str, shards: list[str]) -> list:
        """One column of the given shards, concatenated in their order."""
        from pyarrow import parquet

        return [value for name in shards
                for value in parquet.read_table(f"{self.root}/{name}", columns=[column],
                                                filesystem=self.filesystem
                                                ).column(column).to_pylist()]

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self.lock is not None:
            self.lock.release()


def write_shard(output: str, columns: list[str], rows: list[dict], first: int) -> None:
    """``rows`` as one shard of ``output``, named after its first image's ``first`` index (so a
    block Ray retries after a lost actor overwrites its own shard), with fiqa's fixed column
    types; written under a hidden name, then renamed into place."""
    from pyarrow import Table, parquet

    filesystem, root = _filesystem(output)
    frame = pd.DataFrame.from_records(rows, columns=columns).astype(column_dtypes(columns))
    name = f"{SHARD_PREFIX}{first:012d}.parquet"  # a retried block replaces its first copy
    hidden = f"{root}/{HIDDEN_PREFIX}{name}.{uuid.uuid4().hex[:8]}"
    filesystem.create_dir(root)  # a no-op where the driver made it; not every node sees that
    with filesystem.open_output_stream(hidden) as stream:
        parquet.write_table(Table.from_pandas(frame, preserve_index=False), stream)
    filesystem.move(hidden, f"{root}/{name}")


def _fetch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reading stage: each path's bytes, or the reason it cannot be read."""
    data, errors = [], []
    for path in batch["path"]:
        try:
            data.append(read_bytes(path))
            errors.append("")
        except OSError as error:
            data.append(b"")
            errors.append(f"unreadable: {read_failure(error)}")
    return {**batch, "data": np.array(data, dtype=object), "error": np.array(errors)}


class _ShardScorer:
    """The actor: one Scorer made by ``make_scorer``, turning blocks of encoded images into
    shards of ``output`` (decoded by ``workers`` threads with the Scorer's read-ahead of two
    model batches; models on ``threads`` torch threads)."""

    def __init__(self, make_scorer: Callable[[], Scorer], output: str, workers: int,
                 threads: int) -> None:
        import torch

        from .device import retain_freed_memory

        torch.set_num_threads(threads)
        retain_freed_memory()  # as the CLI does: CPU passes reuse freed pages
        self.scorer, self.output, self.workers = make_scorer(), output, workers

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sources = zip(batch["path"].tolist(), zip(batch["data"], batch["error"].tolist(),
                                                  strict=True), strict=True)
        per_image = list(self.scorer.run_sources(sources, self.workers, self._decode))
        indices = batch["index"].tolist()
        for run in _consecutive_runs(indices):
            rows = [row for i in run for row in per_image[i]]
            write_shard(self.output, self.scorer.columns, rows, indices[run[0]])
        return {"index": np.array([i for i, rows in zip(indices, per_image, strict=True)
                                   for _ in rows]),
                "status": np.array([row["status"] for rows in per_image for row in rows])}

    def _decode(self, source: tuple[bytes, str]):
        """(encoded bytes, reading failure or "") → the image or its status."""
        data, error = source
        return error or self.scorer.decode(BytesIO(data))


def _consecutive_runs(indices: Sequence[int]) -> list[list[int]]:
    """Positions of ``indices`` grouped into runs of consecutive values, so that every shard
    covers one unbroken range of the input list and shards sorted by name are in input order."""
    runs: list[list[int]] = []
    for position, index in enumerate(indices):
        if runs and index == indices[runs[-1][-1]] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to), or start a
    local Ray with every core of this machine when None; quiet, no dashboard."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def score(todo: Sequence[tuple[int, str]], output: str, make_scorer: Callable[[], Scorer], *,
          actors: int = 1, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
          images_per_shard: int = 256, workers: int = 2) -> Iterator[list[str]]:
    """Score ``todo`` ((index in the whole input list, path) pairs) into the shard folder
    ``output`` (opened by :class:`ShardFolder`) on the connected Ray (:func:`connect`).

    Yields, per image as its shard is written (not in input order), the statuses of its rows.
    """
    ray = require_ray()
    if not todo:
        return
    frame = pd.DataFrame(todo, columns=["index", "path"])
    blocks = [frame[start:start + images_per_shard]
              for start in range(0, len(frame), images_per_shard)]
    dataset = ray.data.from_pandas(blocks).map_batches(  # reading is I/O: no CPU reserved
        _fetch, batch_size=None, batch_format="numpy", num_cpus=0,
        compute=ray.data.TaskPoolStrategy(size=actors + 1))
    dataset = dataset.map_batches(
        _ShardScorer, batch_size=None, batch_format="numpy",
        fn_constructor_args=(make_scorer, output, workers, max(1, int(cpus_per_actor))),
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor)
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        statuses: dict[int, list[str]] = {}
        for index, status in zip(batch["index"].tolist(), batch["status"].tolist(), strict=True):
            statuses.setdefault(index, []).append(status)
        yield from statuses.values()
