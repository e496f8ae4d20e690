"""A wheel carries the weights, so an installed fiqa works offline without the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_weights_and_loads_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("fiqa-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "fiqa/model_weights/manifest.json" in names
    assert "fiqa/model_weights/mtcnn.safetensors" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    probe = ("import fiqa.weights as w; print(w.weights_dir()); "
             "print(len(w.load_weights('mtcnn')))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True, text=True,
                         capture_output=True, env={"PYTHONPATH": str(target)}).stdout.split()
    assert out[0] == str(target / "fiqa" / "model_weights") and int(out[1]) > 0
