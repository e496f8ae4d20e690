"""The training split: CelebA, FIW and LFW outside View 2, or no LFW at all."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LFW

from fiqa.crop import DEFAULT_CROP
from fiqa.training.data import is_aligned, lfw_pair_identities, load_faces, training_images

DATA = LFW.parent


@pytest.fixture(scope="module")
def everything():
    if not all((DATA / name).is_dir() for name in ("celeba", "fiw", "lfw")):
        pytest.skip(f"training data not found under {DATA}")
    return training_images(DATA, sources=("celeba", "fiw", "lfw"))


def test_sources_and_the_held_out_people(everything):
    identities = {identity for _, identity in everything}
    by_source = {source: {i for i in identities if i.startswith(f"{source}/")}
                 for source in ("celeba", "fiw", "lfw")}
    assert len(by_source["celeba"]) == 298 and len(by_source["fiw"]) == 2066  # README: "299"
    assert len(by_source["lfw"]) == 52  # LFW people outside View 2 with ≥ 2 images
    with_singles = training_images(DATA, min_images=1, sources=("lfw",))
    assert len({identity for _, identity in with_singles}) == 5749 - len(lfw_pair_identities(LFW))
    view2 = lfw_pair_identities(LFW)
    assert not {i.split("/", 1)[1] for i in by_source["lfw"]} & view2
    no_lfw = training_images(DATA, sources=("celeba", "fiw"))
    assert no_lfw and not any(identity.startswith("lfw/") for _, identity in no_lfw)
    with pytest.raises(ValueError, match="unknown sources"):
        training_images(DATA, sources=("celeba", "vggface2"))


def test_aligned_crops_take_the_template(everything, tmp_path):
    picked = [item for item in everything if is_aligned(item[1])][:3]
    picked += [item for item in everything if item[1].startswith("celeba/")][:3]
    faces = load_faces(picked, tmp_path / "cache")
    assert len(faces) == 6
    np.testing.assert_allclose(faces.landmarks[:3], np.repeat(DEFAULT_CROP.landmarks()[None], 3,
                                                             axis=0))
    assert not np.allclose(faces.landmarks[3], DEFAULT_CROP.landmarks())
