"""Quality-weighted enrollment and identification (`fiqa.Gallery`, `fiqa enroll`, `fiqa
identify`) on real images of LFW View 2 people (held out from the learned estimators)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import LFW
from PIL import Image
from safetensors.numpy import save_file
from typer.testing import CliRunner

from fiqa import Gallery
from fiqa.cli import app
from fiqa.gallery import Weighting, identify
from fiqa.verify import Encoder

PEOPLE = ("Ahmed_Chalabi", "Clint_Eastwood", "John_Manley", "Lucy_Liu")  # 5–8 images each


@pytest.fixture(scope="module")
def faces() -> dict[str, tuple[list, np.ndarray, np.ndarray]]:
    """Per person: its first five image paths, their unit embeddings and magface qualities."""
    if not (LFW / "images").is_dir():
        pytest.skip(f"LFW not found at {LFW}")
    encoder = Encoder("dlib", "magface", "cpu")
    out = {}
    for person in PEOPLE:
        paths = sorted((LFW / "images" / person).glob("*.jpg"))[:5]
        samples = encoder.encode(paths)
        assert all(s.status == "ok" for s in samples)
        out[person] = (paths, np.stack([s.embedding for s in samples]),
                       np.array([s.quality for s in samples]))
    return out


def gallery_of(faces, weighting: str, upto: slice = slice(0, 4), floor: float = 0) -> Gallery:
    gallery = Gallery("dlib", "magface", weighting, floor)
    for person, (_, embeddings, quality) in faces.items():
        gallery.add(person, embeddings[upto], quality[upto])
    return gallery


@pytest.mark.parametrize("weighting", ["softmax:10", "power:2", "topk:2", "mean"])
def test_extending_gives_exactly_the_templates_of_enrolling_at_once(faces, weighting, tmp_path):
    whole = gallery_of(faces, weighting)
    part = gallery_of(faces, weighting, slice(0, 2))
    part.save(tmp_path / "g.fiqa")
    part = Gallery.load(tmp_path / "g.fiqa", recognizer="dlib")
    for person, (_, embeddings, quality) in reversed(faces.items()):  # any order of identities
        part.add(person, embeddings[2:4], quality[2:4])
    order = [part.identities.index(name) for name in whole.identities]
    assert np.array_equal(part.templates[order], whole.templates)
    assert np.array_equal(part.counts[order], whole.counts) and whole.counts.tolist() == [4] * 4
    norms = np.linalg.norm(whole.templates, axis=1)
    assert np.allclose(norms, 1, atol=1e-5)


def test_weightings_favour_the_better_images():
    quality = np.array([10.0, 50.0, 90.0])
    assert np.allclose(Weighting.parse("mean").weights(quality), 1)
    for text in ("softmax:10", "power:2"):
        weights = Weighting.parse(text).weights(quality)
        assert np.all(np.diff(weights) > 0) and str(Weighting.parse(text)) == text
    for bad in ("softmax", "mean:2", "topk:1.5", "power:-1", "best:3", "softmax:x"):
        with pytest.raises(ValueError, match="weighting"):
            Weighting.parse(bad)


def test_floor_leaves_poor_images_out(faces):
    _, embeddings, _ = faces[PEOPLE[0]]
    gallery = Gallery("dlib", "magface", "softmax:10", floor=30)
    used = gallery.add("x", embeddings[:3], [10.0, 50.0, np.nan])
    assert used.tolist() == [False, True, False] and gallery.counts.tolist() == [1]
    assert np.allclose(gallery.templates[0], embeddings[1], atol=1e-6)
    assert not gallery.add("y", embeddings[:1], [5.0]).any() and len(gallery) == 1
    with pytest.raises(ValueError, match="qualities"):
        gallery.add("x", embeddings[:2], [50.0])


def test_save_load_round_trip_checks_version_and_recognizer(faces, tmp_path):
    gallery = gallery_of(faces, "topk:3", floor=10)
    path = gallery.save(tmp_path / "g.fiqa")
    loaded = Gallery.load(path)
    assert loaded.identities == list(PEOPLE) and str(loaded.weighting) == "topk:3"
    assert (loaded.recognizer, loaded.estimator, loaded.floor) == ("dlib", "magface", 10)
    assert np.array_equal(loaded.templates, gallery.templates)
    meta = loaded.metadata()
    assert meta["format_version"] == 1 and len(meta["recognizer_sha256"][0]) == 64
    with pytest.raises(ValueError, match="enrolled with recognizer 'dlib'"):
        Gallery.load(path, recognizer="faceres")
    tensors = {"templates": gallery.templates}
    save_file(tensors, tmp_path / "v9.fiqa", metadata={"fiqa": json.dumps({**meta,
                                                                            "format_version": 9})})
    with pytest.raises(ValueError, match="format version 9"):
        Gallery.load(tmp_path / "v9.fiqa")
    save_file(tensors, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="without fiqa gallery metadata"):
        Gallery.load(tmp_path / "plain.safetensors")
    (tmp_path / "junk.fiqa").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable gallery"):
        Gallery.load(tmp_path / "junk.fiqa")


def test_a_held_out_image_ranks_its_identity_first(faces):
    gallery = gallery_of(faces, "softmax:10", slice(0, 4))
    probes = np.stack([embeddings[4] for _, embeddings, _ in faces.values()])
    indices, similarity = gallery.identify(probes, k=3)
    assert [gallery.identities[i] for i in indices[:, 0]] == list(PEOPLE)
    assert indices.shape == (4, 3) and np.all(np.diff(similarity, axis=1) <= 0)


def test_cli_enroll_extend_and_identify(faces, tmp_path):
    people = tmp_path / "people"
    for person, (paths, _, _) in list(faces.items())[:3]:
        (people / person).mkdir(parents=True)
        for path in paths[:3]:
            shutil.copy(path, people / person / path.name)
    Image.new("RGB", (160, 160), (90, 140, 200)).save(people / PEOPLE[0] / "no_face.png")
    (people / PEOPLE[1] / "broken.jpg").write_bytes(b"broken")
    more = tmp_path / "more" / PEOPLE[3]
    more.mkdir(parents=True)
    for path in faces[PEOPLE[3]][0][:3]:
        shutil.copy(path, more / path.name)
    runner = CliRunner()
    gallery = tmp_path / "gallery.fiqa"
    result = runner.invoke(app, ["enroll", str(people), "-o", str(gallery), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = pd.read_csv(tmp_path / "gallery.fiqa.report.csv")
    assert len(report) == 11 and (report["status"] == "enrolled").sum() == 9
    assert set(report["status"]) == {"enrolled", "no_face", "unreadable: cannot identify image "
                                     "file"}
    again = runner.invoke(app, ["enroll", str(people), "-o", str(gallery), "--device", "cpu"])
    assert again.exit_code == 2 and "exists" in again.output
    result = runner.invoke(app, ["enroll", str(tmp_path / "more"), "--gallery", str(gallery),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Gallery.load(gallery).identities == list(PEOPLE)
    result = runner.invoke(app, ["enroll", str(tmp_path / "more"), "--gallery", str(gallery),
                                 "-r", "faceres"])
    assert result.exit_code == 2 and "recognizer (sface)" in result.output
    assert len(pd.read_csv(tmp_path / "gallery.fiqa.report.csv")) == 14

    probes = [str(faces[person][0][4]) for person in PEOPLE] + [str(people / PEOPLE[0] /
                                                                    "no_face.png")]
    out = tmp_path / "candidates.csv"
    result = runner.invoke(app, ["identify", *probes, "--gallery", str(gallery), "-k", "2",
                                 "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    best = table[table["rank"] == 1].set_index("probe")["identity"]
    assert [best[p] for p in probes[:4]] == list(PEOPLE)
    assert (table["status"] == "ok").sum() == 8
    assert table["status"].iloc[-1] == "rejected: no face in probe"
    result = runner.invoke(app, ["identify", probes[0], "--gallery", str(gallery),
                                 "--min-quality", "100", "--device", "cpu"])
    assert result.exit_code == 1 and "recapture" in result.output
    result = runner.invoke(app, ["identify", probes[0], "--gallery", str(out)])
    assert result.exit_code == 2 and "not a readable gallery" in result.output


def test_identify_with_an_empty_gallery_rejects_every_probe(faces):
    samples = Encoder("dlib", "magface", "cpu").encode([faces[PEOPLE[0]][0][0]])
    table = identify(Gallery("dlib", "magface"), ["p.jpg"], samples)
    assert table["status"].tolist() == ["rejected: empty gallery"]
