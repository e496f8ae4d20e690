"""Verification with a quality gate (`fiqa.Verifier`, `fiqa verify`) on real LFW images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LFW
from typer.testing import CliRunner

from fiqa import Verifier, read_image
from fiqa.cli import app
from fiqa.training.degrade import resolution
from fiqa.verify import DEFAULT_THRESHOLDS, default_threshold, min_quality_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAME = (LFW / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg",
        LFW / "images" / "Colin_Powell" / "Colin_Powell_0002.jpg")
OTHER = EXAMPLES / "lfw" / "Aaron_Eckhart_0001.jpg"
BLURRED = EXAMPLES / "degraded" / "Aaron_Eckhart_0001_blur.jpg"


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    if not SAME[0].is_file():
        pytest.skip(f"LFW not found at {LFW}")
    return Verifier("dlib", "magface", device="cpu")


def test_same_person_matches_and_different_people_do_not(verifier):
    same = verifier.verify(*SAME)
    assert same.decision == "match", same
    assert same.similarity >= verifier.threshold == DEFAULT_THRESHOLDS["dlib"]
    assert 0 <= same.quality_a <= 100 and 0 <= same.quality_b <= 100
    other = verifier.verify(SAME[0], OTHER)
    assert other.decision == "no match", other
    assert other.similarity < verifier.threshold and "<" in other.reason


def test_the_gate_rejects_a_degraded_probe_with_a_reason(verifier):
    verifier.min_quality = 40
    try:
        result = verifier.verify(OTHER, BLURRED)
        assert result.decision == "rejected"
        assert result.quality_b < 40 <= result.quality_a
        assert result.reason.startswith("B quality") and "recapture" in result.reason
        # an array input, degraded with fiqa.training.degrade: 8-pixel resolution
        pixels = torch.from_numpy(read_image(SAME[1]).pixels).permute(2, 0, 1)[None]
        tiny = resolution(pixels, 1.0)[0].permute(1, 2, 0).numpy()
        result = verifier.verify(SAME[0], tiny)
        assert result.decision == "rejected" and result.reason.startswith(("B quality", "no face"))
        assert verifier.verify(*SAME).decision == "match"  # good images pass the gate
    finally:
        verifier.min_quality = None


def test_missing_faces_and_bad_inputs_are_rejected_not_raised(verifier, tmp_path):
    blank = np.full((200, 200, 3), 128, np.uint8)
    result = verifier.verify(SAME[0], blank)
    assert result.decision == "rejected" and result.reason == "no face in B"
    assert np.isnan(result.similarity) and np.isnan(result.quality_b)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    result = verifier.verify(tmp_path / "broken.jpg", np.zeros((5, 5), np.float32))
    assert result.decision == "rejected"
    assert "A unreadable" in result.reason and "B unreadable: an array must be" in result.reason


def test_thresholds_and_arguments_are_checked():
    with pytest.raises(ValueError, match="no default threshold"):
        default_threshold("my-model")
    with pytest.raises(ValueError, match="min_quality"):
        Verifier(min_quality=140, device="cpu")


def test_min_quality_for_a_target_discard_or_fnmr():
    quality = np.arange(100.0)  # genuine pairs; the 20 worst all fail the threshold
    similarity = np.where(quality < 20, 0.1, 0.9)
    assert min_quality_for(quality, similarity, 0.5, target_discard=0.1) == 10
    assert min_quality_for(quality, similarity, 0.5, target_discard=0.0) == 0
    assert min_quality_for(quality, similarity, 0.5, target_fnmr=0.0) == 20
    assert min_quality_for(quality, similarity, 0.5, target_fnmr=0.2) == 0
    with pytest.raises(ValueError, match="exactly one"):
        min_quality_for(quality, similarity, 0.5)
    with pytest.raises(ValueError, match="no quality gate"):
        min_quality_for(quality, np.zeros(100), 0.5, target_fnmr=0.01)
    with pytest.raises(ValueError, match="finite"):
        min_quality_for([np.nan, 1.0], [0.9, 0.9], 0.5, target_discard=0.1)


def test_cli_exit_codes_match_no_match_rejected():
    if not SAME[0].is_file():
        pytest.skip(f"LFW not found at {LFW}")
    runner = CliRunner()
    base = ["verify", "--device", "cpu"]
    result = runner.invoke(app, [*base, *map(str, SAME)])
    assert result.exit_code == 0 and "match" in result.output and "similarity" in result.output
    result = runner.invoke(app, [*base, str(SAME[0]), str(OTHER), "-m", "ri"])
    assert result.exit_code == 1 and "no match" in result.output
    result = runner.invoke(app, [*base, str(OTHER), str(BLURRED), "--min-quality", "40"])
    assert result.exit_code == 2 and "rejected" in result.output and "recapture" in result.output
    result = runner.invoke(app, [*base, str(OTHER), str(BLURRED), "-r", "nope"])
    assert result.exit_code == 2 and "error" in result.output
