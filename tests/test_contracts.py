"""Every registered model, today's and every one added later, passes the contract checks."""

from __future__ import annotations

import pytest

from fiqa.estimators import QualityEstimator, list_estimators
from fiqa.recognizers import list_recognizers
from fiqa.testing import check_estimator, check_recognizer


@pytest.fixture(scope="module")
def images(lfw_paths):
    return lfw_paths[:4]


@pytest.mark.parametrize("name", list_estimators())
def test_estimator_contract(name, images):
    if name == "landmarks68":
        pytest.importorskip("dlib", reason="landmarks68 needs the landmarks68 extra")
    check_estimator(name, images)


@pytest.mark.parametrize("name", list_recognizers())
def test_recognizer_contract(name, images):
    check_recognizer(name, images)


class _BatchDependent(QualityEstimator):
    """Broken on purpose: each score depends on the rest of the batch."""

    name, description, score_range = "batch-dependent", "broken", (0.0, 255.0)

    def measure(self, crops, faces):
        means = crops.float().mean((1, 2, 3))
        return {"score": (means - means.mean() + 128).numpy()}


class _OutOfRange(_BatchDependent):
    """Broken on purpose: scores far outside the declared range."""

    name, score_range = "out-of-range", (0.0, 1.0)

    def measure(self, crops, faces):
        return {"score": crops.float().mean((1, 2, 3)).numpy()}


@pytest.mark.parametrize("broken, message", [(_BatchDependent, "one by one"),
                                             (_OutOfRange, "outside")])
def test_checks_catch_broken_estimators(images, broken, message):
    with pytest.raises(AssertionError, match=message):
        check_estimator(broken(device="cpu"), images)
