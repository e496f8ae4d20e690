"""Weights shipped in ``weights/``: safetensors files described by ``weights/manifest.json``.

Every entry of the manifest names its file, sha256, source, licence and the command that made it.
Nothing is ever downloaded: a missing or altered file is an error that says how to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def weights_dir() -> Path:
    """The folder holding the manifest: ``$FIQA_WEIGHTS``, the source checkout, or the install.

    A wheel installs the repository's ``weights/`` as the package data folder
    ``fiqa/model_weights`` (see pyproject.toml).
    """
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("FIQA_WEIGHTS"), here.parent / "weights", here / "model_weights"]
    for folder in candidates:
        if folder and (Path(folder) / "manifest.json").is_file():
            return Path(folder)
    raise FileNotFoundError("fiqa weights not found: set FIQA_WEIGHTS to the weights/ folder")


@cache
def manifest() -> dict[str, dict]:
    """Name → entry (file, sha256, source, licence, made_by, ...)."""
    return json.loads((weights_dir() / "manifest.json").read_text())


def provenance(name: str) -> dict:
    """The manifest entry of weights ``name`` (KeyError with the known names otherwise)."""
    entries = manifest()
    if name not in entries:
        raise KeyError(f"no weights named {name!r} in the manifest; known: {sorted(entries)}")
    return entries[name]


@cache
def weights_path(name: str) -> Path:
    """The file of weights ``name``, checked against its manifest sha256 (error if missing or
    altered)."""
    entry = provenance(name)
    path = weights_dir() / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: {entry['made_by']}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise ValueError(f"{path} does not match its manifest sha256; rebuild: {entry['made_by']}")
    return path


def save_weights(name: str, tensors: dict[str, torch.Tensor], **entry: str) -> Path:
    """Write ``<name>.safetensors`` into the weights folder and its manifest entry.

    entry: source, licence, made_by (the command), notes, ... (file and sha256 are added).
    Used by the conversion and training scripts; returns the file's path.
    """
    target = weights_dir() / f"{name}.safetensors"
    save_file({key: value.contiguous() for key, value in tensors.items()}, target)
    return record_weights(name, target, **entry)


def record_weights(name: str, target: Path, **entry: str) -> Path:
    """Add (or replace) the manifest entry of a file already written into the weights folder."""
    path = weights_dir() / "manifest.json"
    entries = json.loads(path.read_text())  # re-read: keep entries written meanwhile
    entries[name] = {"file": target.name, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                     **entry}
    path.write_text(json.dumps(entries, indent=2) + "\n")
    manifest.cache_clear()
    weights_path.cache_clear()
    return target


def load_weights(name: str) -> dict[str, torch.Tensor]:
    """The tensors of weights ``name`` (checked against the manifest's sha256), on the CPU."""
    return load_file(weights_path(name))
