"""The Recognizer interface: registry, user models (module, TorchScript, ONNX), autocast, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import fiqa
from fiqa.cli import app
from fiqa.crop import CropSpec
from fiqa.recognizers import list_recognizers, recognizer
from fiqa.recognizers.custom import CustomRecognizer
from fiqa.results import read_table


@pytest.fixture(scope="module")
def lfw_located(lfw_paths):
    """Decoded real LFW images and their landmarks, for cropping to any spec."""
    scorer = fiqa.Scorer((), device="cpu")
    images = [fiqa.read_image(p) for p in lfw_paths[:8]]
    return scorer, images, [points for _, points in scorer.locate(images)]


def small_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 8, stride=8), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 14 * 14, 16)).eval()


def test_registry():
    assert {"dlib", "faceres"} <= set(list_recognizers())
    model = recognizer("dlib", device="cpu")
    assert model.dim == 128 and model.provenance()[0]["licence"] == "CC0-1.0"
    with pytest.raises(ValueError, match="available: .*dlib"):
        recognizer("nope")
    with pytest.raises(ValueError, match="precision"):
        recognizer("dlib", precision="int4")


# FaceRes under bf16 reaches only cosine ≈ 0.994 (docs/recognizers.md): fp16 is its option.
@pytest.mark.parametrize("name, precision", [("dlib", "fp16"), ("dlib", "bf16"),
                                             ("faceres", "fp16")])
def test_autocast_matches_fp32(lfw_located, name, precision):
    scorer, images, points = lfw_located
    fp32 = recognizer(name, device="cpu")
    crops = scorer.crops(images, points, fp32.crop_spec)
    reference = fp32.embed(crops, normalize=True)
    low = recognizer(name, device="cpu", precision=precision).embed(crops, normalize=True)
    assert low.dtype == torch.float32
    cosine = (reference * low).sum(1)
    assert cosine.min() >= 0.999, cosine


def test_user_models_module_torchscript_onnx(tmp_path, lfw_located):
    scorer, images, points = lfw_located
    spec = CropSpec(size=112, mean=(127.5,) * 3, std=(128.0,) * 3)
    net = small_net()
    crops = scorer.crops(images, points, spec)
    expected = net(spec.normalize(crops)).detach()
    from_module = CustomRecognizer(net, spec, name="mine", device="cpu")
    assert from_module.dim == 16
    assert torch.allclose(from_module.embed(crops), expected, atol=1e-5)
    torch.jit.save(torch.jit.trace(net, spec.normalize(crops[:1])), tmp_path / "net.pt")
    from_script = CustomRecognizer(tmp_path / "net.pt", spec, device="cpu")
    assert torch.allclose(from_script.embed(crops), expected, atol=1e-5)
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.onnx.export(net, (spec.normalize(crops[:1]),), str(tmp_path / "net.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    from_onnx = CustomRecognizer(tmp_path / "net.onnx", spec, device="cpu")
    assert torch.allclose(from_onnx.embed(crops), expected, atol=1e-4)
    with pytest.raises(FileNotFoundError):
        CustomRecognizer(tmp_path / "missing.onnx", spec)
    with pytest.raises(ValueError, match="112×112"):
        from_module.embed(crops[:, :, :64, :64])


def test_fiqa_embed_writes_embeddings_that_match_the_api(tmp_path, lfw_paths, lfw_located):
    runner = CliRunner()
    out = tmp_path / "emb.npy"
    inputs = [str(p) for p in lfw_paths[:8]]
    (tmp_path / "bad.jpg").write_bytes(b"")
    result = runner.invoke(app, ["embed", *inputs, str(tmp_path / "bad.jpg"), "-r", "dlib",
                                 "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    vectors = np.load(out)
    assert vectors.shape == (9, 128) and np.isnan(vectors[8]).all()
    rows = read_table(out, [f"dlib.{i}" for i in range(128)])
    assert rows["status"].iloc[8].startswith("unreadable")
    scorer, images, points = lfw_located
    model = recognizer("dlib", device="cpu")
    direct = model.embed(scorer.crops(images, points, model.crop_spec)).numpy()
    assert np.allclose(vectors[:8], direct, atol=1e-4)
    both = tmp_path / "both.parquet"
    result = runner.invoke(app, ["embed", *inputs[:2], "-r", "dlib,faceres", "-o", str(both),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = read_table(both)
    assert {"dlib.127", "faceres.1023"} <= set(table.columns) and len(table) == 2
    npy_of_two = runner.invoke(app, ["embed", inputs[0], "-r", "dlib,faceres", "-o",
                                     str(tmp_path / "x.npy")])
    assert npy_of_two.exit_code == 2
