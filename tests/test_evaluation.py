"""Protocols, the feature cache, the many-against-many evaluation and `fiqa evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import pair_list_command
from typer.testing import CliRunner

from fiqa.cli import app
from fiqa.evaluation.features import FeatureCache, compute_features, embedding_column
from fiqa.evaluation.protocols import folder_pairs, impostor_pairs, pair_lists
from fiqa.evaluation.report import evaluate
from fiqa.pipeline import Scorer


def test_folder_pairs_and_pair_lists(tmp_path):
    for person, count in (("a", 3), ("b", 2), ("c", 1)):
        (tmp_path / person).mkdir()
        for i in range(count):
            (tmp_path / person / f"{i}.jpg").write_bytes(b"x")
    pairs = folder_pairs(tmp_path, impostors=5, seed=1)
    assert pairs["same"].sum() == 3 + 1  # C(3,2) + C(2,2)
    impostor = pairs[~pairs["same"]]
    assert len(impostor) == 5 and (impostor["identity_a"] != impostor["identity_b"]).all()
    assert pairs.equals(folder_pairs(tmp_path, impostors=5, seed=1))
    assert (~folder_pairs(tmp_path, impostors=10**6)["same"]).sum() == 3 * 2 + 3 * 1 + 2 * 1
    (tmp_path / "same.txt").write_text("a/0.jpg a/1.jpg\n# comment\n")
    (tmp_path / "diff.txt").write_text("a/0.jpg,b/0.jpg\n")
    lists = pair_lists(tmp_path / "same.txt", tmp_path / "diff.txt")
    assert lists["same"].tolist() == [True, False]
    assert lists["identity_b"].tolist() == ["a", "b"]


def test_impostor_pairs_are_uniform_over_all_images():
    labels = np.repeat(np.arange(1000), 8)
    pairs = impostor_pairs(labels, 100_000, seed=2)
    assert pairs.shape == (100_000, 2) and (pairs[:, 0] < pairs[:, 1]).all()
    assert (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    # the smaller index of a uniform pair has mean N/3 and reaches the end of the list
    assert abs(pairs[:, 0].mean() / len(labels) - 1 / 3) < 0.01
    assert pairs[:, 0].max() > 0.99 * len(labels)
    assert np.array_equal(pairs, impostor_pairs(labels, 100_000, seed=2))
    assert len(impostor_pairs(np.array([0, 0, 1, 2]), 10**6)) == 2 + 2 + 1


def test_feature_cache_reuses_results(tmp_path, lfw_paths):
    paths = [str(p) for p in lfw_paths[:6]] + [str(tmp_path / "missing.jpg")]
    scorer = Scorer(["baseline"], ["dlib"], device="cpu")
    first, stats = compute_features(paths, scorer, FeatureCache(tmp_path / "cache"))
    assert stats["baseline"] == {"hits": 0, "misses": 6}
    assert np.isnan(first["baseline"][6]) and first[embedding_column("dlib")].shape == (7, 128)
    again, stats = compute_features(paths, scorer, FeatureCache(tmp_path / "cache"))
    assert stats[embedding_column("dlib")] == {"hits": 6, "misses": 0}
    dlib = embedding_column("dlib")
    assert np.allclose(again[dlib], first[dlib], equal_nan=True)
    assert np.allclose(again["baseline"], first["baseline"], equal_nan=True)


def test_evaluate_many_against_many_with_baselines():
    rng = np.random.default_rng(0)
    people, per_person, dim = 60, 4, 16
    centres = rng.normal(size=(people, dim))
    quality = rng.uniform(0, 1, people * per_person)
    noise = rng.normal(size=(people * per_person, dim)) * (2.5 - 2 * quality[:, None])
    embeddings = np.repeat(centres, per_person, axis=0) + noise
    paths = [f"p{i // per_person}/{i}.jpg" for i in range(people * per_person)]
    genuine = [(paths[i], paths[j], True) for i in range(len(paths))
               for j in range(i + 1, len(paths)) if i // per_person == j // per_person]
    impostor = [(paths[i], paths[j], False) for i, j in rng.integers(len(paths), size=(3000, 2))
                if i // per_person != j // per_person]
    pairs = pd.DataFrame(genuine + impostor, columns=["path_a", "path_b", "same"])
    pairs["identity_a"] = pairs["path_a"].str.split("/").str[0]
    features = {embedding_column("rec"): embeddings, "good": quality,
                "noise": rng.uniform(size=len(paths))}
    result = evaluate(pairs, features, paths, ["good", "noise"], ["rec"], fmr=1e-2,
                      bootstrap=50)
    summary = result.summary.set_index("estimator")
    assert (summary["pauc_oracle"] <= summary["pauc"]).all()
    assert summary.loc["good", "pauc"] < summary.loc["noise", "pauc"]
    assert summary.loc["good", "pauc_low"] <= summary.loc["good", "pauc"]
    assert summary.loc["good", "pauc"] <= summary.loc["good", "pauc_high"]
    assert summary.loc["noise", "pauc_normalized"] > 0.6
    assert not result.warnings  # 1 % of ~2,950 impostors: ~29 false matches, enough
    strict = evaluate(pairs, features, paths, ["good"], ["rec"], fmr=1e-3, bootstrap=0)
    assert "rests on" in strict.warnings[0]  # ~3 false matches
    by_fnmr = evaluate(pairs, features, paths, ["good"], ["rec"], fmr=None, fnmr=0.1,
                       bootstrap=0)
    assert by_fnmr.summary["fnmr_start"].iloc[0] == pytest.approx(0.1, abs=0.01)


def test_fiqa_evaluate_writes_a_report_and_reuses_the_cache(tmp_path, lfw_paths):
    command = pair_list_command(tmp_path, lfw_paths, "dlib", bootstrap=10)
    runner = CliRunner()
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "(0%)" in first.output
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert report["results"][0]["genuine"] == 2 and report["results"][0]["impostor"] == 7
    for name in ("summary.md", "curves.csv", "edc.png"):
        assert (tmp_path / "report" / name).is_file()
    second = runner.invoke(app, command)
    assert second.exit_code == 0 and "(100%)" in second.output


def test_images_without_a_face_count_as_errors_or_are_left_out(tmp_path, lfw_paths):
    """A genuine pair whose second photo shows no face: by default (listed pairs) a non-match of
    the lowest quality, discarded first; with --failures left-out, dropped; both counted."""
    from PIL import Image

    people = tmp_path / "people"
    (people / "a").mkdir(parents=True)
    (people / "b").mkdir()
    for i, path in enumerate(lfw_paths[:2]):
        (people / "a" / f"{i}.jpg").write_bytes(path.read_bytes())
    Image.new("RGB", (250, 250), (90, 120, 160)).save(people / "a" / "blank.jpg")
    for i, path in enumerate(lfw_paths[2:4]):
        (people / "b" / f"{i}.jpg").write_bytes(path.read_bytes())
    (tmp_path / "same.txt").write_text("people/a/0.jpg people/a/1.jpg\n"
                                       "people/a/0.jpg people/a/blank.jpg\n"
                                       "people/b/0.jpg people/b/1.jpg\n")
    (tmp_path / "diff.txt").write_text("people/a/0.jpg people/b/0.jpg\n"
                                       "people/a/1.jpg people/b/1.jpg\n")
    summaries = {}
    for failures in ("auto", "left-out"):
        out = tmp_path / failures
        result = CliRunner().invoke(app, [
            "evaluate", str(people), "--protocol", f"{tmp_path}/same.txt,{tmp_path}/diff.txt",
            "-r", "dlib", "-m", "baseline,ri-proximity:dlib", "--fnmr", "0", "--bootstrap", "0",
            "--failures", failures, "--cache", str(tmp_path / "cache"), "-o", str(out),
            "--device", "cpu"])
        assert result.exit_code == 0, result.output
        rows = {row["estimator"]: row for row in
                json.loads((out / "summary.json").read_text())["results"]}
        assert set(rows) == {"baseline", "ri-proximity:dlib"}  # a variant gets its own rows
        summaries[failures] = rows["baseline"]
    errors, left_out = summaries["auto"], summaries["left-out"]
    assert errors["failures"] == "as-errors" and errors["failed_genuine"] == 1
    assert errors["genuine"] == 3 and errors["left_out"] == 0
    assert errors["fnmr_start"] == pytest.approx(1 / 3)  # the no-face pair fails at any threshold
    assert left_out["genuine"] == 2 and left_out["left_out"] == 1 and left_out["fnmr_start"] == 0


def test_two_runs_sharing_a_cache_keep_each_others_values(tmp_path):
    first, second = FeatureCache(tmp_path), FeatureCache(tmp_path)
    first.table("m")["a"], second.table("m")["b"] = np.ones(2), np.zeros(2)
    first.save("m")
    second.save("m")
    assert set(FeatureCache(tmp_path).table("m")) == {"a", "b"}
