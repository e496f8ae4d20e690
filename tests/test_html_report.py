"""`fiqa report`: a self-contained page about real scores, rendered in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fiqa.cli import app
from fiqa.results import read_table

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Sources(HTMLParser):
    """Every src/href of a page, and its headings."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.headings: list[str] = []
        self._heading = False

    def handle_starttag(self, tag, attrs):
        self.links += [value for key, value in attrs if key in ("src", "href")]
        self._heading = tag in ("h2", "h3")

    def handle_data(self, data):
        if self._heading:
            self.headings.append(data)
            self._heading = False


@pytest.fixture(scope="module")
def scored(bad_inputs: Path, lfw_paths: list[Path], tmp_path_factory) -> Path:
    """Scores (baseline, sface-norm and attention, with the shipped calibrations) of the
    bad-inputs folder and ten more LFW faces, one of which is then deleted."""
    folder = tmp_path_factory.mktemp("report_in")
    shutil.copytree(bad_inputs, folder / "bad")
    (folder / "lfw").mkdir()
    for path in lfw_paths[4:14]:
        shutil.copy(path, folder / "lfw" / path.name)
    table = folder / "scores.csv"
    result = runner.invoke(app, ["score", str(folder), "-m", "baseline,sface-norm,attention",
                                 "--calibration", "shipped", "--device", "cpu", "-o", str(table)])
    assert result.exit_code == 0, result.output
    (folder / "lfw" / lfw_paths[4].name).unlink()  # moved since: a placeholder, not a crash
    return table


def test_report_is_self_contained_and_bounded(scored: Path, tmp_path: Path):
    result = runner.invoke(app, ["report", str(scored), "-o", str(tmp_path / "html"),
                                 "--thumbnails", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "html" / "index.html").read_text()
    parser = _Sources()
    parser.feed(page)
    assert parser.links and all(link.startswith("data:image/") for link in parser.links)
    assert {"Rows by status", "baseline", "sface-norm", "attention", "lowest", "highest",
            "By folder"} <= set(parser.headings)
    table = read_table(scored)
    ok = int((table["status"] == "ok").sum())
    assert f"{ok:,} faces scored" in page and "unreadable: cannot identify image file" in page
    # 3 sets of 4 per estimator; attention adds its per-patch map beside each face
    assert len(parser.links) <= 3 * 4 * (1 + 1 + 2)
    assert "mean sface-norm quality" in page  # the folder summary, for a name with a dash
    assert "image not found" in page and "baseline.fnmr" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (.ci/run installs it)")
def test_report_renders_in_chromium_without_console_errors(scored: Path, tmp_path: Path):
    assert runner.invoke(app, ["report", str(scored), "-o", str(tmp_path / "html"),
                               "--device", "cpu"]).exit_code == 0
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--window-size=1280,2000"]
    url = (tmp_path / "html" / "index.html").as_uri()
    rendered = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", url],
                              capture_output=True, text=True, timeout=120)
    console = [line for line in rendered.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.stat().st_size > 50_000  # a page with pictures, not a blank one
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120).stdout
    assert "attention" in dom and "<img" in dom
