"""Score alignment (IDA-DAO, IDA-SSE; fiqa.score_alignment) on real faces and real models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import LFW, pair_list_command
from PIL import Image
from typer.testing import CliRunner

from fiqa import Verifier
from fiqa.cli import app
from fiqa.gallery import Gallery, identify
from fiqa.imageio import identity_folders
from fiqa.recognizers import recognizer
from fiqa.score_alignment import (
    CohortDiscrepancy,
    SupportSetEstimator,
    aligned,
    discrepancies,
    discrepancy_model,
)
from fiqa.training.support_set import side_of
from fiqa.verify import ALIGNED_THRESHOLDS

FIW = LFW.parent / "fiw" / "images"
SAME = (LFW / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg",
        LFW / "images" / "Colin_Powell" / "Colin_Powell_0002.jpg")
OTHER = LFW / "images" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"


def sface_embeddings(paths: list) -> np.ndarray:
    """Unit SFace embeddings of FIW's already aligned 112×112 faces."""
    crops = np.stack([np.asarray(Image.open(p).convert("RGB").resize((112, 112))) for p in paths])
    crops = torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()
    return recognizer("sface", "cpu").embed(crops, normalize=True).numpy()


def fiw_people(side: str, count: int) -> list[tuple[str, list]]:
    if not FIW.is_dir():
        pytest.skip(f"FIW not found at {FIW}")
    return [(name, files) for name, files in identity_folders(FIW).items()
            if side_of("fiw", name) == side][:count]


@pytest.fixture(scope="module")
def fiw_cohort() -> tuple[np.ndarray, np.ndarray]:
    """SFace embeddings of 240 train-side FIW faces (120 people) and their identities."""
    people = fiw_people("train", 120)
    labels = np.array([name for name, files in people for _ in files[:2]])
    return sface_embeddings([path for _, files in people for path in files[:2]]), labels


def test_support_sets_leave_the_faces_own_identity_out(fiw_cohort):
    embeddings, labels = fiw_cohort
    with_self = discrepancies(embeddings, embeddings, k=1)
    assert np.allclose(with_self, 1, atol=1e-5)  # a face is its own nearest neighbour
    inter_class = discrepancies(embeddings, embeddings, 5, labels, labels)
    nearest_other = [np.sort(embeddings[labels != labels[i]] @ embeddings[i])[-5:].mean()
                     for i in range(len(labels))]
    assert np.allclose(inter_class, nearest_other, atol=1e-5)
    assert (inter_class < 0.9).all() and inter_class.std() > 0.01
    with pytest.raises(ValueError, match="k must be"):
        discrepancies(embeddings, embeddings[:3], k=5)


def test_aligned_scores_subtract_the_mean_discrepancy():
    assert np.allclose(aligned(np.array([0.5, 0.2]), np.array([0.3, 0.1]), np.array([0.1, 0.3])),
                       [0.3, 0.0])


def test_the_sse_head_predicts_the_cohorts_discrepancy(fiw_cohort):
    """The shipped SFace head, on FIW test-side faces it never saw, ranks their discrepancy
    against a train-side cohort (not the one it was trained against) like the cohort does."""
    cohort, _ = fiw_cohort
    probes = sface_embeddings([files[0] for _, files in fiw_people("test", 60)])
    predicted = SupportSetEstimator.pretrained("sface")(probes)
    measured = CohortDiscrepancy(cohort, k=10)(probes)
    assert predicted.shape == (60,) and np.corrcoef(predicted, measured)[0, 1] > 0.5


def test_the_verifier_aligns_its_scores(fiw_cohort, tmp_path):
    if not SAME[0].is_file():
        pytest.skip(f"LFW not found at {LFW}")
    sse = Verifier("sface", device="cpu", alignment="ida-sse")
    assert sse.threshold == ALIGNED_THRESHOLDS["ida-sse", "sface"]
    same, other = sse.verify(*SAME), sse.verify(SAME[0], OTHER)
    assert same.decision == "match" and other.decision == "no match", (same, other)
    assert same.score < same.similarity and "ida-sse score" in same.reason
    cohort, labels = fiw_cohort
    gallery = Gallery("sface")
    for name in np.unique(labels):
        gallery.add(name, cohort[labels == name], np.full((labels == name).sum(), 50.0))
    path = gallery.save(tmp_path / "cohort.fiqa")
    with pytest.raises(ValueError, match="depends on the cohort"):
        Verifier("sface", device="cpu", alignment="ida-dao", cohort=path)
    dao = Verifier("sface", device="cpu", alignment="ida-dao", cohort=path, threshold=0.06)
    result = dao.verify(*SAME)
    expected = aligned(result.similarity, *CohortDiscrepancy(gallery.templates)(
        np.stack([sample.embedding for sample in sse.encoder.encode(list(SAME))])))
    assert result.score == pytest.approx(float(expected), abs=1e-5)
    with pytest.raises(ValueError, match="needs a cohort"):
        discrepancy_model("ida-dao", "sface", None)
    with pytest.raises(ValueError, match="no IDA-SSE head"):
        Verifier("faceres", device="cpu", alignment="ida-sse", threshold=0.5)
    with pytest.raises(ValueError, match="dlib"):
        Verifier("dlib", device="cpu", alignment="ida-dao", cohort=path, threshold=0.02)
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "--device", "cpu", "--alignment", "ida-sse",
                                 *map(str, SAME)])
    assert result.exit_code == 0 and "ida-sse score" in result.output, result.output


def test_evaluate_reports_plain_and_aligned_side_by_side(tmp_path, lfw_paths):
    command = pair_list_command(tmp_path, lfw_paths, "dlib", bootstrap=0)
    runner = CliRunner()
    result = runner.invoke(app, [*command, "--alignment", "ida-sse"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "report" / "summary.json").read_text())["results"]
    by_name = {row["recognizer"]: row for row in rows}
    assert set(by_name) == {"dlib", "dlib+ida-sse"}
    plain, sse = by_name["dlib"], by_name["dlib+ida-sse"]
    assert plain["genuine"] == sse["genuine"] == 2 and plain["threshold"] != sse["threshold"]
    report = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert report["about"]["alignment"] == "ida-sse" and report["about"]["k"] == 100
    failed = runner.invoke(app, [*command, "--alignment", "ida-dao"])
    assert failed.exit_code == 2 and "needs a cohort" in failed.output
    no_head = runner.invoke(app, [*command, "-r", "faceres", "--alignment", "ida-sse"])
    assert no_head.exit_code == 2 and "no IDA-SSE head" in no_head.output


def test_identify_ranks_by_aligned_scores(fiw_cohort, tmp_path):
    """A gallery of 120 FIW people and Colin Powell (his first LFW photo): his second photo
    finds him first with ida-sse, the reported score is the aligned one, and the CLI agrees."""
    if not SAME[0].is_file():
        pytest.skip(f"LFW not found at {LFW}")
    cohort, labels = fiw_cohort
    enrolled, probe = Verifier("sface", device="cpu").encoder.encode(list(SAME))
    gallery = Gallery("sface")
    for name in np.unique(labels):
        gallery.add(name, cohort[labels == name], np.full((labels == name).sum(), 50.0))
    gallery.add("Colin_Powell", enrolled.embedding[None], np.array([50.0]))
    sse = SupportSetEstimator.pretrained("sface")
    table = identify(gallery, ["probe"], [probe], k=3, discrepancy=sse)
    assert table["identity"].iloc[0] == "Colin_Powell"
    template = gallery.templates[gallery.identities.index("Colin_Powell")]
    expected = aligned(float(probe.embedding @ template), *sse(np.stack([probe.embedding,
                                                                        template])))
    assert table["similarity"].iloc[0] == pytest.approx(float(expected), abs=1e-5)
    path = gallery.save(tmp_path / "gallery.fiqa")
    result = CliRunner().invoke(app, ["identify", str(SAME[1]), "--gallery", str(path),
                                      "--alignment", "ida-sse", "--device", "cpu", "-k", "1"])
    assert result.exit_code == 0 and "Colin_Powell" in result.output, result.output
