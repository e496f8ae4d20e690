"""`fiqa score/embed --engine ray` on a local Ray with 2 CPUs: the same table as the local engine,
row for row, for bad inputs, URIs, and a run killed halfway and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fiqa.cli import app
from fiqa.results import read_table

ray = pytest.importorskip("ray")
runner = CliRunner()
RAY = ("--engine", "ray", "--actors", "2", "--images-per-shard", "3", "--device", "cpu")


def shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("part-*.parquet"))


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs in this process, which the CLI's runs join."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(bad_inputs: Path, lfw_paths: list[Path], tmp_path_factory) -> Path:
    """A list naming the bad-inputs folder's files, six more LFW faces and a missing file."""
    listing = tmp_path_factory.mktemp("ray_inputs") / "inputs.txt"
    names = [*sorted(bad_inputs.iterdir()), *lfw_paths[4:10], bad_inputs / "missing.jpg"]
    listing.write_text("".join(f"{path}\n" for path in names))
    return listing


def test_killed_ray_run_resumes_to_the_local_table(inputs: Path, tmp_path: Path, request):
    command = [sys.executable, "-m", "fiqa.cli", "score", str(inputs), *RAY]
    local, folder = tmp_path / "local.csv", tmp_path / "ray.parquet"
    subprocess.run([*command[:5], "--device", "cpu", "-o", str(local)], check=True,
                   capture_output=True)
    one_by_one = [*command, "--images-per-shard", "1", "--actors", "1", "-o", str(folder)]
    process = subprocess.Popen(one_by_one, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own group: Ray's processes too
    deadline = time.time() + 240
    while time.time() < deadline and len(shards(folder)) < 3 and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = -1  # a Ray worker outside the group may still rename the shard it was writing
    while done != (done := len(shards(folder))):
        time.sleep(1)
    assert 3 <= done < 17, f"the run was not interrupted halfway ({done} shards)"
    (folder / ".part-000000000099-torn.parquet").write_bytes(b"PAR1 torn")  # a write in flight
    request.getfixturevalue("local_ray")  # only now: the killed run had its own Ray

    again = runner.invoke(app, ["score", str(inputs), *RAY, "-o", str(folder)])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(app, ["score", str(inputs), *RAY, "-o", str(folder), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"{done} of 17 images already done" in resumed.output
    assert not list(folder.glob(".*")), "the torn shard was left in the folder"
    pd.testing.assert_frame_equal(read_table(folder), read_table(local), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("command, models", [("score", ("-m", "baseline,magface")),
                                             ("embed", ("-r", "sface"))])
def test_ray_table_equals_the_local_one_row_for_row(inputs: Path, tmp_path: Path, command: str,
                                                    models: tuple[str, str], local_ray):
    local, folder = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    result = runner.invoke(app, [command, str(inputs), *models, "--device", "cpu", "-o",
                                 str(local)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [command, str(inputs), *models, *RAY, "-o", str(folder)])
    assert result.exit_code == 0, result.output
    expected, table = read_table(local), read_table(folder)
    assert len(shards(folder)) == 6  # 17 images, 3 per shard
    assert list(table["path"]) == list(expected["path"])  # shards in name order: input order
    statuses = dict(zip(table["path"].map(os.path.basename), table["status"], strict=True))
    assert statuses["missing.jpg"] == "unreadable: file not found"
    assert statuses["h_no_face.png"] == "no_face" and statuses["i_huge.jpg"] == "ok"
    pd.testing.assert_frame_equal(table, expected, rtol=1e-4, atol=1e-4)


def test_uris_are_listed_and_read_and_bad_outputs_refused(bad_inputs: Path, tmp_path: Path,
                                                          local_ray):
    folder = tmp_path / "uri.parquet"
    result = runner.invoke(app, ["score", f"file://{bad_inputs}", *RAY, "-o", f"file://{folder}"])
    assert result.exit_code == 0, result.output
    table = read_table(folder)
    assert list(table["path"]) == [f"file://{p}" for p in sorted(bad_inputs.iterdir())]
    assert (table["status"] == "ok").sum() == 5
    csv = runner.invoke(app, ["score", str(bad_inputs), *RAY, "-o", str(tmp_path / "x.csv")])
    assert csv.exit_code == 2 and "folder of Parquet shards" in csv.output
    stranger = tmp_path / "mixed"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    mixed = runner.invoke(app, ["score", str(bad_inputs), *RAY, "-o", str(stranger)])
    assert mixed.exit_code == 2 and "notes.txt" in mixed.output
    empty = runner.invoke(app, ["score", f"file://{stranger}", *RAY, "-o", f"file://{folder}2"])
    assert empty.exit_code == 2 and "no images in folder" in empty.output


def test_actors_on_this_cpu_are_warned_of_emulated_precision(lfw_paths: list[Path],
                                                              tmp_path: Path, local_ray,
                                                              monkeypatch):
    import fiqa.device

    # as on a CPU without bf16 units (the detection itself: tests/test_cli.py)
    monkeypatch.setattr(fiqa.device, "emulated_precision", lambda device, precision:
                        device.type == "cpu" and precision == "bf16")
    args = ["score", str(lfw_paths[0]), *RAY, "-m", "sface-norm"]
    here = runner.invoke(app, [*args, "--precision", "bf16", "-o", str(tmp_path / "a.parquet")])
    assert here.exit_code == 0, here.output
    assert "no native bf16 arithmetic" in here.output
    remote = runner.invoke(app, [*args, "--precision", "bf16", "--address", "auto",
                                 "-o", str(tmp_path / "b.parquet")])
    assert remote.exit_code == 0, remote.output
    assert "emulated" not in remote.output  # a cluster's CPUs are not this machine's
