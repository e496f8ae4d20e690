"""`fiqa score` and `fiqa list` end to end on real LFW images."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from fiqa.cli import app
from fiqa.results import read_table

runner = CliRunner()


def score(*args: str):
    return runner.invoke(app, ["score", *args, "--device", "cpu"])


def test_bad_inputs_get_status_rows_and_the_run_completes(tmp_path, bad_inputs):
    folder = bad_inputs
    out = tmp_path / "scores.csv"
    result = score(str(folder), "-o", str(out), "--batch-size", "4")
    assert result.exit_code == 0, result.output
    table = read_table(out).set_index("path")
    status = {os.path.basename(p): s for p, s in table["status"].items()}
    assert len(status) == len(table) == 10  # one row per image, every image present
    for name in ("a_valid.jpg", "f_gray16.png", "g_cmyk.jpg", "i_huge.jpg", "j_valid.jpg"):
        assert status[name] == "ok", (name, status[name])
    for name in ("e_tiny.png", "h_no_face.png"):
        assert status[name] == "no_face", (name, status[name])
    for name in ("b_empty.jpg", "c_truncated.jpg", "d_text.jpg"):
        assert status[name].startswith("unreadable: "), (name, status[name])
    assert "truncated" in status["c_truncated.jpg"]
    huge = table.loc[str(folder / "i_huge.jpg")]
    assert huge["x2"] - huge["x1"] > 3000  # reported in the 12,000-pixel original's pixels
    ok = table[table["status"] == "ok"]
    assert ok["baseline"].between(0, 1).all() and ok["baseline.quality"].between(0, 100).all()
    assert "unreadable" in result.output and "no_face" in result.output


def test_nothing_scored_exits_1_and_typos_exit_2(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    assert score(str(tmp_path / "x.jpg"), "-o", str(tmp_path / "o.csv")).exit_code == 1
    missing = score(str(tmp_path / "nope"), "-o", str(tmp_path / "o2.csv"))
    assert missing.exit_code == 2 and "nope" in missing.output
    unknown = score(str(tmp_path / "x.jpg"), "-m", "nonsense", "-o", str(tmp_path / "o3.csv"))
    assert unknown.exit_code == 2 and "available" in unknown.output
    (tmp_path / "empty").mkdir()
    empty = score(str(tmp_path / "empty"), "-o", str(tmp_path / "o4.csv"))
    assert empty.exit_code == 2 and "no images in folder" in empty.output
    assert not (tmp_path / "o4.csv").exists()


def test_existing_output_is_protected_and_parquet_works(tmp_path, lfw_paths):
    out = tmp_path / "q.parquet"
    assert score(str(lfw_paths[0]), "-o", str(out)).exit_code == 0
    again = score(str(lfw_paths[0]), "-o", str(out))
    assert again.exit_code == 2 and "--resume" in again.output
    assert score(str(lfw_paths[0]), str(lfw_paths[1]), "-o", str(out), "--resume").exit_code == 0
    table = pd.read_parquet(out)
    assert list(table["path"]) == [str(lfw_paths[0]), str(lfw_paths[1])]
    assert not (tmp_path / "q.parquet.partial.csv").exists()


def test_precision_without_native_arithmetic_is_warned_of(tmp_path, lfw_paths):
    import torch

    from fiqa.device import emulated_precision

    emulated = emulated_precision(torch.device("cpu"), "bf16")
    fast = score(str(lfw_paths[0]), "-m", "sface-norm", "-o", str(tmp_path / "a.csv"))
    slow = score(str(lfw_paths[0]), "-m", "sface-norm", "--precision", "bf16",
                 "-o", str(tmp_path / "b.csv"))
    assert fast.exit_code == slow.exit_code == 0
    assert "emulated" not in fast.output
    assert ("no native bf16 arithmetic" in slow.output) == emulated
    assert not emulated_precision(torch.device("cuda"), "bf16")  # accelerators are not judged
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and platform.machine() == "x86_64":  # the kernel's word, against torch's
        flags = set(cpuinfo.read_text().split())
        assert emulated == (not {"avx512_bf16", "amx_tile"} & flags)
    # the emulated run still gives the fp32 score, within bf16's rounding
    a, b = read_table(tmp_path / "a.csv"), read_table(tmp_path / "b.csv")
    assert np.isclose(a["sface-norm"][0], b["sface-norm"][0], rtol=0.02)


def test_aligned_and_all_faces(tmp_path, lfw_paths):
    crop_dir = tmp_path / "crops"
    crop_dir.mkdir()
    Image.open(lfw_paths[0]).crop((69, 69, 181, 181)).save(crop_dir / "c.png")
    out = tmp_path / "a.csv"
    assert score(str(crop_dir), "--aligned", "-o", str(out)).exit_code == 0
    row = read_table(out).iloc[0]
    assert row["status"] == "ok" and np.isnan(row["det_score"]) and row["x2"] == 112
    group = Image.new("RGB", (500, 250))
    group.paste(Image.open(lfw_paths[0]), (0, 0))
    group.paste(Image.open(lfw_paths[1]), (250, 0))
    group.save(tmp_path / "two.jpg")
    counts = {}
    for flag in ("--no-all-faces", "--all-faces"):
        out = tmp_path / f"group{flag}.csv"
        assert score(str(tmp_path / "two.jpg"), flag, "-o", str(out)).exit_code == 0
        counts[flag] = len(read_table(out))
    assert counts == {"--no-all-faces": 1, "--all-faces": counts["--all-faces"]}
    assert counts["--all-faces"] >= 2


def test_list_shows_estimators_and_weights():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "baseline" in result.output and "mtcnn" in result.output and "MIT" in result.output
    assert "ri-proximity:<recognizer>" in result.output.replace("\n", "")  # variants shown


def test_killed_run_resumes_to_the_same_table(tmp_path, lfw_paths):
    paths = [str(path) for path in lfw_paths] * 5  # long enough to be killed halfway
    command = [sys.executable, "-m", "fiqa.cli", "score", *paths,
               "--device", "cpu", "--batch-size", "2"]
    full, partial = tmp_path / "full.csv", tmp_path / "partial.csv"
    subprocess.run([*command, "-o", str(full)], check=True, capture_output=True)

    process = subprocess.Popen([*command, "-o", str(partial)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (
            not partial.exists() or len(partial.read_text().splitlines()) < 4):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(read_table(partial))
    assert 0 < done < len(paths), "the run was not interrupted halfway"

    subprocess.run([*command, "-o", str(partial), "--resume"], check=True, capture_output=True)
    expected, resumed = read_table(full), read_table(partial)
    assert list(resumed["path"]) == list(expected["path"])
    assert list(resumed["status"]) == list(expected["status"])
    pd.testing.assert_frame_equal(resumed, expected, rtol=1e-4, atol=1e-3)


def test_central_face_is_the_subject_not_the_larger_bystander(tmp_path, lfw_paths):
    """A centred subject beside a larger face at the border: --face central picks the subject."""
    canvas = Image.new("RGB", (900, 600), (200, 200, 200))
    canvas.paste(Image.open(lfw_paths[0]).resize((500, 500)), (-180, 50))  # large, cut off left
    canvas.paste(Image.open(lfw_paths[1]), (325, 175))  # the centred subject
    canvas.save(tmp_path / "group.jpg")
    centres = {}
    for face in ("largest", "central"):
        out = tmp_path / f"{face}.csv"
        result = score(str(tmp_path / "group.jpg"), "--face", face, "-o", str(out))
        assert result.exit_code == 0, result.output
        row = read_table(out).iloc[0]
        centres[face] = ((row["x1"] + row["x2"]) / 2, (row["y1"] + row["y2"]) / 2)
    assert centres["largest"][0] < 300 and abs(centres["central"][0] - 450) < 60
