"""Weights are written with their manifest entry and refused when altered."""

from __future__ import annotations

import json

import pytest
import torch

from fiqa import weights


@pytest.fixture()
def weights_folder(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text("{}")
    monkeypatch.setenv("FIQA_WEIGHTS", str(tmp_path))
    weights.manifest.cache_clear()
    weights.weights_path.cache_clear()
    yield tmp_path
    weights.manifest.cache_clear()
    weights.weights_path.cache_clear()


def test_save_then_load_and_detect_tampering(weights_folder):
    tensors = {"layer.weight": torch.arange(6.0).view(2, 3)}
    path = weights.save_weights("tiny", tensors, source="a test", licence="CC0-1.0",
                                made_by="pytest")
    entry = json.loads((weights_folder / "manifest.json").read_text())["tiny"]
    assert entry["file"] == "tiny.safetensors" and len(entry["sha256"]) == 64
    assert weights.provenance("tiny")["made_by"] == "pytest"
    assert torch.equal(weights.load_weights("tiny")["layer.weight"], tensors["layer.weight"])
    weights.weights_path.cache_clear()
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        weights.load_weights("tiny")
    with pytest.raises(KeyError, match="tiny"):
        weights.provenance("missing")


def test_shipped_weights_match_their_manifest():
    for name, entry in weights.manifest().items():
        assert weights.load_weights(name), name
        assert {"source", "licence", "made_by"} <= set(entry)
