"""Result tables: row-aware resume, one writer per output, full precision and fixed types."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fiqa import Scorer, read_image
from fiqa.cli import app
from fiqa.results import OutputLock, ResultTable, complete_records, read_table

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [*args, "--device", "cpu"])


def test_complete_records_keep_quoted_newlines_and_drop_a_torn_tail():
    data = b'a,b\r\n"x\ny",1\r\nz,2\r\n"torn\n'
    rows, ends = complete_records(data)
    assert rows == [["a", "b"], ["x\ny", "1"], ["z", "2"]]
    assert data[:ends[-1]] == b'a,b\r\n"x\ny",1\r\nz,2\r\n'
    assert complete_records(b'a,b\r\nx,1\r\ny')[0] == [["a", "b"], ["x", "1"]]  # unterminated
    assert complete_records(b'a,b\r\nx\r\n')[0] == [["a", "b"]]  # missing fields


@pytest.mark.parametrize("cut", ["inside_quoted_name", "inside_last_row"])
def test_resume_counts_rows_not_lines(tmp_path, lfw_paths, cut):
    """A file name holding a newline spans two physical lines; an interrupted run is continued to
    the same table whatever was cut."""
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a.jpg", "b\nnewline.jpg", "c.jpg", "d.jpg"]
    for name, source in zip(names, lfw_paths, strict=False):
        shutil.copy(source, folder / name)
    full, partial = tmp_path / "full.csv", tmp_path / "partial.csv"
    assert cli("score", str(folder), "-o", str(full)).exit_code == 0
    data = full.read_bytes()
    quoted = data.index(b"b\nnewline")
    end = quoted + 2 if cut == "inside_quoted_name" else len(data) - 7
    partial.write_bytes(data[:end])
    result = cli("score", str(folder), "-o", str(partial), "--resume")
    assert result.exit_code == 0, result.output
    expected, resumed = read_table(full), read_table(partial)
    assert list(resumed["path"]) == list(expected["path"]) and len(resumed) == 4
    pd.testing.assert_frame_equal(resumed, expected)


def test_a_second_writer_of_the_same_output_is_refused(tmp_path, lfw_paths):
    out = tmp_path / "same.csv"
    lock = OutputLock(out)
    try:
        result = cli("score", str(lfw_paths[0]), "-o", str(out))
        assert result.exit_code == 2 and "another fiqa run" in result.output
        assert not out.exists()
    finally:
        lock.release()
    assert cli("score", str(lfw_paths[0]), "-o", str(out)).exit_code == 0
    assert not (tmp_path / "same.csv.lock").exists()
    with pytest.raises(ValueError, match="exclude each other"):
        ResultTable(out, ["path"], resume=True, overwrite=True)


def test_parquet_and_npy_keep_full_precision_and_fixed_types(tmp_path, lfw_paths):
    paths = [str(p) for p in lfw_paths[:2]]
    rows = [row for rows in Scorer(["baseline"], ["faceres"], device="cpu").run(paths)
            for row in rows]
    assert cli("embed", *paths, "-r", "faceres", "-o", str(tmp_path / "e.parquet")).exit_code == 0
    assert cli("embed", *paths, "-r", "faceres", "-o", str(tmp_path / "e.npy")).exit_code == 0
    assert cli("score", *paths, "-o", str(tmp_path / "s.parquet")).exit_code == 0
    table = pd.read_parquet(tmp_path / "e.parquet")
    vectors = [f"faceres.{i}" for i in range(1024)]
    assert (table[vectors].dtypes == np.float32).all()
    assert table["face"].dtype == "Int64" and table["x1"].dtype == np.float64
    expected = np.array([[row[c] for c in vectors] for row in rows], np.float32)
    np.testing.assert_array_equal(table[vectors].to_numpy(), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), expected)
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert scores["baseline.inter_eye_px"].dtype == np.float64
    np.testing.assert_array_equal(scores["baseline"], [float(row["baseline"]) for row in rows])


def test_names_and_paths_given_twice_count_once(tmp_path, lfw_paths):
    out = tmp_path / "o.csv"
    again = str(lfw_paths[0].parent / ".." / lfw_paths[0].parent.name / lfw_paths[0].name)
    result = cli("score", str(lfw_paths[0]), again, "-m", "baseline,baseline", "-o", str(out))
    assert result.exit_code == 0
    table = read_table(out)
    assert len(table) == 1 and list(table.columns).count("baseline") == 1


def test_read_image_uses_our_pixel_limit_not_pillows(tmp_path, lfw_paths):
    from fiqa.imageio import ImageReadError

    with pytest.raises(ImageReadError, match="--max-pixels"):
        read_image(lfw_paths[0], max_pixels=1000)
    assert read_image(lfw_paths[0], max_pixels=250 * 250).pixels.shape == (250, 250, 3)
