"""`fiqa calibrate` and `fiqa score --calibration` on real LFW people, and the shipped maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LFW
from typer.testing import CliRunner

from fiqa.calibration import SHIPPED_RECOGNIZER, Calibration, fit, outcomes, shipped
from fiqa.cli import app
from fiqa.results import read_table
from fiqa.verify import DEFAULT_THRESHOLDS

runner = CliRunner()


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Twelve LFW people with six images each, as a folder per identity (links)."""
    if not (LFW / "images").is_dir():
        pytest.skip(f"LFW not found at {LFW}")
    folder = tmp_path_factory.mktemp("people")
    chosen = [p for p in sorted((LFW / "images").iterdir()) if len(list(p.glob("*.jpg"))) >= 6]
    for person in chosen[::10][:12]:
        (folder / person.name).mkdir()
        for image in sorted(person.glob("*.jpg"))[:6]:
            (folder / person.name / image.name).symlink_to(image)
    return folder


def test_calibrate_then_score_adds_monotone_fnmr(people, tmp_path):
    cal_file, cache = tmp_path / "cal.json", tmp_path / "cache"
    threshold = 0.6  # above SFace's own (0.358): enough non-matches among 180 genuine pairs
    result = runner.invoke(app, ["calibrate", str(people), "-m", "sface-norm", "-r", "sface",
                                 "--threshold", str(threshold), "--cache", str(cache),
                                 "--device", "cpu", "-o", str(cal_file)])
    assert result.exit_code == 0, result.output
    calibration = Calibration.load(cal_file)
    assert calibration.threshold == threshold and calibration.recognizer == "sface"
    assert calibration.about["comparisons"] == 12 * 15
    assert np.all(np.diff(calibration.scores) > 0) and np.all(np.diff(calibration.fnmr) <= 0)
    assert 0 < calibration.about["fnmr_overall"] < 1

    out = tmp_path / "scores.csv"
    scored = runner.invoke(app, ["score", str(people), "-m", "sface-norm", "--calibration",
                                 str(cal_file), "--device", "cpu", "-o", str(out)])
    assert scored.exit_code == 0, scored.output
    table = read_table(out).query("status == 'ok'").sort_values("sface-norm")
    fnmr = table["sface-norm.fnmr"].to_numpy()
    assert np.all((fnmr >= 0) & (fnmr <= 1)) and np.all(np.diff(fnmr) <= 1e-12)
    assert fnmr[0] > fnmr[-1]  # the lowest norms are predicted to fail more

    wrong = runner.invoke(app, ["score", str(people), "-m", "baseline", "--calibration",
                                str(cal_file), "-o", str(tmp_path / "x.csv")])
    assert wrong.exit_code == 2 and "sface-norm" in wrong.output


def test_the_fit_keeps_the_mean_of_its_outcomes_and_counts_both_images():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200)
    scores[7] = np.nan  # an image without a face: its comparisons are left out
    pairs = rng.integers(0, 200, size=(600, 2))
    similarity = 0.5 + 0.2 * np.nan_to_num(scores[pairs].min(axis=1)) + rng.normal(0, 0.2, 600)
    known = (pairs != 7).all(axis=1)
    x, y = outcomes(scores, pairs, similarity, 0.4)  # any mate: both images of each comparison
    assert len(x) == 2 * known.sum() and y.mean() == pytest.approx((similarity[known] < 0.4).mean())
    for mates in ("all", "good"):
        calibration = fit("e", "r", 0.4, scores, pairs, similarity, mates=mates)
        x, y = outcomes(scores, pairs, similarity, 0.4, calibration.mate_cut)
        assert calibration.about["comparisons"] == known.sum()
        assert calibration.about["observations"] == len(x)
        # isotonic regression keeps the mean of what it was fitted on
        assert calibration.predict(x).mean() == pytest.approx(y.mean(), abs=1e-9)
    assert calibration.mate_cut == pytest.approx(np.nanmedian(scores))
    assert 0.3 < len(x) / (2 * known.sum()) < 0.7  # good mates: about half the observations
    assert np.isnan(calibration.predict(np.array([np.nan, 0.0]))).tolist() == [True, False]


def test_shipped_calibrations_are_monotone_and_say_how_they_were_made(tmp_path):
    for name in ("magface", "ri", "ri-proximity", "attention", "sface-norm", "baseline"):
        calibration = shipped(name)
        assert calibration.recognizer == SHIPPED_RECOGNIZER
        assert calibration.threshold == DEFAULT_THRESHOLDS[SHIPPED_RECOGNIZER]
        assert np.all(np.diff(calibration.fnmr) <= 0)
        assert "no LFW" in calibration.about["data"] and "calibrate.py" in \
            calibration.about["made_by"]
        assert calibration.fnmr[0] > calibration.fnmr[-1]  # the score tells something
    with pytest.raises(ValueError, match="shipped"):
        shipped("dlib-norm")
    (tmp_path / "other.json").write_text(json.dumps({"estimator": "magface"}))
    with pytest.raises(ValueError, match="not a fiqa calibration"):
        Calibration.load(tmp_path / "other.json")
