"""Usage and input problems: a one-line error and exit code 2, never a traceback; statuses and
warnings where work can go on."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from rich.progress import Progress
from safetensors.numpy import save_file
from typer.testing import CliRunner

from fiqa import __version__
from fiqa.cli import _RateColumn, app
from fiqa.results import read_table

runner = CliRunner()


def cli(*args: str, code: int):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.output


def one_line_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def test_version_and_exit_codes_in_help():
    assert cli("--version", code=0).strip() == f"fiqa {__version__}"
    assert "Exit codes" in cli("--help", code=0)


@pytest.mark.parametrize("args, message", [
    (("--device", "tpu"), "unknown device 'tpu'"),
    (("--resume", "--overwrite"), "exclude each other"),
    (("--precision", "fp8"), "precision must be one of"),
    (("--engine", "ray", "--decode-processes"), "--decode-processes is for the local engine"),
])
def test_bad_options_are_one_line_errors(tmp_path, lfw_paths, args, message):
    output = cli("score", str(lfw_paths[0]), "-o", str(tmp_path / "o.csv"), *args, code=2)
    assert message in one_line_error(output)


def test_out_of_range_options_are_usage_errors(tmp_path, lfw_paths):
    for option in ("--max-side", "--max-pixels"):
        output = cli("score", str(lfw_paths[0]), "-o", str(tmp_path / "o.csv"), option, "0",
                     code=2)
        assert option in output


def test_unwritable_output_is_an_error(tmp_path, lfw_paths):
    (tmp_path / "file").write_text("not a folder")
    for target in (tmp_path / "file" / "o.csv", tmp_path / "file" / "sub" / "o.parquet"):
        output = cli("score", str(lfw_paths[0]), "-o", str(target), "--device", "cpu", code=2)
        one_line_error(output)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` but holds almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_max_pixels_decides_above_pillows_own_limit(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20_000, 20_000))  # 400 MP: over Pillow's 179 MP refusal
    for limit, expected in ((None, "--max-pixels"), ("1000000000", "truncated")):
        out = tmp_path / f"{limit}.csv"
        extra = ("--max-pixels", limit) if limit else ()
        cli("score", str(bomb), "-o", str(out), "--device", "cpu", *extra, code=1)
        status = read_table(out)["status"][0]
        assert status.startswith("unreadable") and expected in status, status
        assert "decompression bomb" not in status


def test_evaluate_input_problems(tmp_path, lfw_paths):
    people = tmp_path / "people"
    for i, path in enumerate(lfw_paths[:4]):
        (people / f"p{i // 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, people / f"p{i // 2}" / path.name)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 1\nnobody 1 2\nnobody 1 someone 1\n")
    base = ("evaluate", str(people), "-r", "dlib", "--bootstrap", "0", "--device", "cpu",
            "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "r"))
    assert "none of the 3 images" in one_line_error(cli(*base, "--protocol", str(pairs), code=2))
    pairs.write_text("1 1\nnobody one two\nnobody 1 someone 1\n")
    assert "line 2" in one_line_error(cli(*base, "--protocol", str(pairs), code=2))

    same, different = tmp_path / "same.txt", tmp_path / "diff.txt"
    names = [f"p{i // 2}/{p.name}" for i, p in enumerate(lfw_paths[:4])]
    same.write_text(f"people/{names[0]} people/{names[1]}\npeople/{names[2]} people/gone.jpg\n")
    different.write_text(f"people/{names[0]} people/{names[2]}\n")
    output = cli(*base, "--protocol", f"{same},{different}", "--fnmr", "0.5", code=0)
    assert "1 comparisons left out: 1 listed images do not exist" in output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(),
                         parse_constant=lambda name: pytest.fail(f"{name} in summary.json"))
    assert summary["about"]["comparisons_without_image"] == 1
    assert summary["results"][0]["pauc_low"] is None  # no bootstrap: null, not NaN

    damaged = sorted((tmp_path / "cache").glob("dlib-*.npz"))
    assert damaged
    damaged[0].write_bytes(b"")
    output = cli(*base, "--protocol", f"{same},{different}", "--fnmr", "0.5", code=0)
    assert "damaged" in output and "Aborted" not in output
    assert damaged[0].with_name(damaged[0].name + ".corrupt").exists()


def test_enroll_with_nothing_usable_and_empty_folders(tmp_path):
    people = tmp_path / "people"
    (people / "empty").mkdir(parents=True)
    (people / "bad").mkdir()
    (people / "bad" / "x.jpg").write_bytes(b"not an image")
    output = cli("enroll", str(people), "-o", str(tmp_path / "g.fiqa"), "--device", "cpu",
                 code=1)
    assert "nothing enrolled" in output and "without images, skipped: empty" in output
    assert not (tmp_path / "g.fiqa").exists()


@pytest.fixture(scope="module")
def gallery_file(tmp_path_factory, lfw_paths):
    folder = tmp_path_factory.mktemp("gallery")
    for path in lfw_paths[:2]:
        (folder / "people" / path.parent.name).mkdir(parents=True)
        shutil.copy(path, folder / "people" / path.parent.name)
    # floor 0: both people enrolled (magface scores Adam_Scott_0001, eyes shaded by a cap, 0.1)
    cli("enroll", str(folder / "people"), "-o", str(folder / "g.fiqa"), "--device", "cpu",
        "--floor", "0", code=0)
    return folder / "g.fiqa"


def test_identify_writes_integer_ranks(tmp_path, gallery_file, lfw_paths):
    out = tmp_path / "c.csv"
    cli("identify", str(lfw_paths[0]), "--gallery", str(gallery_file), "-o", str(out),
        "--device", "cpu", code=0)
    lines = out.read_text().splitlines()
    assert lines[1].split(",")[3] == "1" and lines[2].split(",")[3] == "2"


@pytest.mark.parametrize("damage", ["not_an_object", "seven_d", "fewer_identities"])
def test_crafted_gallery_metadata_is_refused(tmp_path, gallery_file, lfw_paths, damage):
    from safetensors import safe_open

    with safe_open(str(gallery_file), "np") as file:
        meta = json.loads(file.metadata()["fiqa"])
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    if damage == "not_an_object":
        header = "[1,2]"
    else:
        if damage == "seven_d":
            tensors["sums"] = tensors["sums"][:, :7].copy()
            tensors["templates"] = tensors["templates"][:, :7].copy()
        else:
            meta["identities"] = meta["identities"][:1]
        header = json.dumps(meta)
    crafted = tmp_path / "crafted.fiqa"
    save_file(tensors, crafted, metadata={"fiqa": header})
    output = cli("identify", str(lfw_paths[0]), "--gallery", str(crafted), "--device", "cpu",
                 code=2)
    assert "crafted.fiqa" in one_line_error(output)


def test_rate_is_images_over_elapsed_time():
    clock = [0.0]
    progress = Progress(get_time=lambda: clock[0])
    task = progress.add_task("x", total=12)
    for _ in range(12):
        clock[0] += 0.8
        progress.advance(task)
    assert str(_RateColumn().render(progress.tasks[0])) == "1.2 img/s"


def test_list_fits_an_80_column_terminal():
    result = runner.invoke(app, ["list"], env={"COLUMNS": "80"}, terminal_width=80)
    lines = result.output.splitlines()
    assert result.exit_code == 0 and max(map(len, lines)) <= 80
    assert "…" not in result.output  # no cell cut short
    assert "sha256" in result.output and np.mean([len(line.split()) for line in lines]) > 5
