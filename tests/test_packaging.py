"""The wheel on its own: built from the tree, installed with its dependencies into a fresh
virtual environment, every command run from there, outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(str(p.parent.relative_to(ROOT)).replace(os.sep, ".")
                  for p in (ROOT / "fiqa").rglob("__init__.py"))


# what a build leaves in the tree or a developer keeps beside it, never part of the source
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", ".venv", ".fiqa-cache",
                                    "node_modules", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree: a ``build/`` folder left by an earlier
    build would otherwise put modules deleted since into it."""
    source, out = tmp_path_factory.mktemp("source") / "fiqa", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    return next(out.glob("fiqa-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel and its dependencies (torch pinned to the
    build these tests run on, as the README's install does); returns its bin folder."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    bin_dir = env / ("Scripts" if os.name == "nt" else "bin")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True,
                   capture_output=True)
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    return bin_dir


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Outside the checkout: example photos as two folders per person (clean and degraded)."""
    work = tmp_path_factory.mktemp("outside")
    for clean in sorted((ROOT / "examples" / "lfw").glob("*.jpg")):
        person = clean.stem.rsplit("_", 1)[0]
        (work / "people" / person).mkdir(parents=True)
        shutil.copy(clean, work / "people" / person)
        for degraded in (ROOT / "examples" / "degraded").glob(f"{clean.stem}_*.jpg"):
            shutil.copy(degraded, work / "people" / person)
    return work


def fiqa(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "FIQA_WEIGHTS", "VIRTUAL_ENV")}
    environment.update(PATH=f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}",
                       OMP_NUM_THREADS="1", COLUMNS="100")
    return subprocess.run([str(bin_dir / "fiqa"), *args], cwd=cwd, env=environment, text=True,
                          capture_output=True, timeout=600)


def test_wheel_holds_every_package_and_the_weights(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert PACKAGES and all(f"{p.replace('.', '/')}/__init__.py" in names for p in PACKAGES)
    assert {"fiqa.evaluation", "fiqa.training"} <= set(PACKAGES)
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "fiqa").rglob("*.py")}
    assert {name for name in names if name.endswith(".py")} == modules
    assert "fiqa/model_weights/manifest.json" in names
    shipped = {name.rsplit("/", 1)[1] for name in names if name.endswith(".safetensors")}
    assert shipped == {p.name for p in (ROOT / "weights").glob("*.safetensors")}
    calibrations = {name.rsplit("/", 1)[1] for name in names
                    if name.startswith("fiqa/model_weights/calibrations/")}
    assert calibrations == {p.name for p in (ROOT / "weights" / "calibrations").glob("*.json")}


def test_installed_wheel_runs_every_command_outside_the_checkout(installed, workdir):
    def run(*args: str, code: int = 0) -> str:
        result = fiqa(installed, workdir, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout + result.stderr

    assert run("--version").strip() == "fiqa 0.1.0"
    where = subprocess.run([str(installed / "python"), "-c", "import fiqa, fiqa.weights as w; "
                            "print(fiqa.__file__); print(w.weights_dir())"], cwd=workdir,
                           text=True, capture_output=True, check=True).stdout.split()
    assert all(str(ROOT) not in path and "site-packages" in path for path in where)
    device = ("--device", "cpu")
    run("score", "people", "-m", "baseline,magface", "--calibration", "shipped", "-o",
        "scores.csv", *device)
    lines = (workdir / "scores.csv").read_text().splitlines()
    assert len(lines) == 13 and "magface.fnmr" in lines[0]  # header + 12 photos; calibrations
    run("report", "scores.csv", "-o", "html", *device)
    assert "magface" in (workdir / "html" / "index.html").read_text()
    run("embed", "people", "-r", "dlib", "-o", "emb.csv", *device)
    run("evaluate", "people", "--protocol", "all", "-m", "baseline", "-r", "dlib",
        "--bootstrap", "0", "--fnmr", "0.5", "-o", "report", *device)
    assert (workdir / "report" / "summary.json").is_file()
    run("enroll", "people", "-o", "gallery.fiqa", *device)
    out = run("identify", "people/Colin_Powell", "--gallery", "gallery.fiqa", "-k", "1",
              *device)
    assert "Colin_Powell" in out
    verify = run("verify", "people/Colin_Powell/Colin_Powell_0001.jpg",
                 "people/Colin_Powell/Colin_Powell_0001_dark.jpg", *device)
    assert "match" in verify
    run("explain", "people/Serena_Williams", "-o", "maps", *device)
    assert len(list((workdir / "maps").glob("*.png"))) == 2
    assert "magface" in run("list")
    assert "pip install 'fiqa[ray]'" in run("score", "people", "--engine", "ray", "-o", "s.parquet",
                                            code=2)  # an optional extra, not in the core install
