"""`fiqa export`: every exportable model, traced to ONNX, matches itself in onnxruntime on real
aligned LFW crops, and carries its crop spec in the file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

from fiqa import Scorer, read_image
from fiqa import onnx_export as ox
from fiqa.cli import app

MODELS = ox.exportable()


@pytest.fixture(scope="module")
def located(lfw_paths):
    """Four LFW photos and their detected landmarks."""
    scorer = Scorer((), device="cpu")
    images = [read_image(path) for path in lfw_paths[:4]]
    return scorer, images, [points for _, points in scorer.locate(images)]


def test_every_network_is_exportable_and_the_rest_refused():
    names = {name for _, name in MODELS}
    assert {"magface", "ri", "ri-proximity", "attention", "sface-norm", "sface", "dlib",
            "mobilefacenet", "faceres", "vit"} <= names
    for name in ("baseline", "landmarks", "detection"):
        with pytest.raises(ValueError, match="no ONNX export"):
            ox.load(name)
    with pytest.raises(ValueError, match="--kind"):
        ox.load("magface")


@pytest.mark.parametrize("kind, name", MODELS)
def test_onnx_matches_torch_on_real_crops(kind, name, located, tmp_path):
    scorer, images, points = located
    model = ox.load(name, kind)
    crops = scorer.crops(images, points, model.crop_spec)
    path = ox.export(model, tmp_path / f"{name}.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"crops": crops.numpy()})[0]
    if kind == "recognizer":
        expected = model.embed(crops).numpy()
        scale = np.abs(expected).max()  # an embedding has no score range: its largest value
    else:
        expected = model.network_score(crops).numpy()
        np.testing.assert_allclose(expected, model.score(crops, None), rtol=1e-6, atol=1e-6)
        low, high = model.score_range
        scale = high - low
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * scale
    facts = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    assert json.loads(facts["fiqa.crop_spec"]) == json.loads(json.dumps(
        dataclasses.asdict(model.crop_spec)))
    assert facts["fiqa.name"] == name and facts["fiqa.kind"] == kind


def test_cli_export_writes_a_file_a_session_runs(tmp_path):
    out = tmp_path / "q.onnx"
    result = CliRunner().invoke(app, ["export", "magface", "--kind", "estimator", "-o", str(out)])
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    crops = torch.zeros((3, 3, 112, 112), dtype=torch.uint8).numpy()
    assert session.run(None, {"crops": crops})[0].shape == (3,)
    refused = CliRunner().invoke(app, ["export", "baseline", "-o", str(tmp_path / "b.onnx")])
    assert refused.exit_code == 2 and "no ONNX export" in refused.output
