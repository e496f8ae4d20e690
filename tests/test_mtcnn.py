"""fiqa.mtcnn: parity with facenet-pytorch's MTCNN on LFW, mixed sizes, batching, flips."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fiqa.mtcnn import MTCNN, Detections

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw"
needs_lfw = pytest.mark.skipif(
    not (LFW / "images").is_dir(), reason=f"LFW images not found under {LFW}"
)
PARITY_STEP = 100  # first image of every 100th person (sorted): 58 images
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def lfw_sample(step: int) -> list[Path]:
    """First image (sorted) of every ``step``-th person folder (sorted)."""
    people = sorted(path for path in (LFW / "images").iterdir() if path.is_dir())
    return [sorted(person.glob("*.jpg"))[0] for person in people[::step]]


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """torchvision.ops.batched_nms, plainly: per index, by descending score, drop IoU > t."""
    boxes, scores, idxs = boxes.cpu().numpy(), scores.cpu().numpy(), idxs.cpu().numpy()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    for index in np.unique(idxs):
        members = np.flatnonzero(idxs == index)
        members = members[np.argsort(-scores[members], kind="stable")]
        alive = np.ones(len(members), dtype=bool)
        for i, box in enumerate(members):
            if not alive[i]:
                continue
            keep.append(box)
            rest = members[i + 1 :]
            low = np.maximum(boxes[box, :2], boxes[rest, :2])
            high = np.minimum(boxes[box, 2:], boxes[rest, 2:])
            inter = np.clip(high - low, 0, None).prod(1)
            alive[i + 1 :] &= ~(inter / (area[box] + area[rest] - inter) > iou_threshold)
    keep = np.array(keep, dtype=np.int64)
    return torch.from_numpy(keep[np.argsort(-scores[keep], kind="stable")])


def to_tensor(picture) -> torch.Tensor:
    """torchvision.transforms.functional.to_tensor for H×W×C arrays and PIL images."""
    array = np.array(picture)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    return tensor.float() / 255 if array.dtype == np.uint8 else tensor


@pytest.fixture(scope="module")
def facenet_mtcnn():
    """facenet-pytorch's MTCNN class, imported with a stand-in torchvision when none is installed.

    The package's ``__init__`` also imports its InceptionResnetV1 (needs ``requests``), so the
    package is entered as a bare namespace and only ``models.mtcnn`` is imported.
    """
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None:
        pytest.skip("facenet-pytorch not installed: pip install --no-deps facenet-pytorch==2.6.0")
    stand_ins = {}
    if importlib.util.find_spec("torchvision") is None:
        names = ["torchvision", "torchvision.ops", "torchvision.ops.boxes"]
        names += ["torchvision.transforms", "torchvision.transforms.functional"]
        stand_ins = {name: types.ModuleType(name) for name in names}
        for name, module in stand_ins.items():
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(stand_ins[parent], child, module)
        stand_ins["torchvision.ops.boxes"].batched_nms = batched_nms
        stand_ins["torchvision.transforms.functional"].to_tensor = to_tensor
    package = types.ModuleType("facenet_pytorch")
    package.__path__ = list(spec.submodule_search_locations)
    stand_ins["facenet_pytorch"] = package
    with pytest.MonkeyPatch.context() as patch:
        for name, module in stand_ins.items():
            patch.setitem(sys.modules, name, module)
        yield importlib.import_module("facenet_pytorch.models.mtcnn").MTCNN
        for name in [name for name in sys.modules if name.startswith("facenet_pytorch.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN(device="cpu")


def match(ours: Detections, theirs_boxes: np.ndarray) -> np.ndarray:
    """For each of their boxes, the index of our box of highest IoU."""
    low = np.maximum(ours.boxes[None, :, :2], theirs_boxes[:, None, :2])
    high = np.minimum(ours.boxes[None, :, 2:], theirs_boxes[:, None, 2:])
    inter = np.clip(high - low, 0, None).prod(2)
    area_ours = np.prod(ours.boxes[:, 2:] - ours.boxes[:, :2], 1)
    area_theirs = np.prod(theirs_boxes[:, 2:] - theirs_boxes[:, :2], 1)
    return (inter / (area_ours[None] + area_theirs[:, None] - inter)).argmax(1)


@needs_lfw
def test_parity_with_facenet_pytorch_on_lfw(detector, facenet_mtcnn):
    paths = lfw_sample(PARITY_STEP)
    images = [load(path) for path in paths]
    reference = facenet_mtcnn(keep_all=True, device="cpu")
    ours = detector.detect(images)
    boxes, scores, points = [], [], []
    for image in images:
        # one image a call: in a batch, facenet's last NMS sorts all images' faces together with
        # numpy's unstable argsort (tied scores, saturated at 1, then pick at random) and offsets
        # the images' boxes by a margin too small for boxes with negative corners
        (box,), (score,), (point,) = reference.detect([Image.fromarray(image)], landmarks=True)
        faceless = box is None
        boxes.append(np.zeros((0, 4)) if faceless else box.astype(np.float32))
        scores.append(np.zeros(0) if faceless else score.astype(np.float32))
        points.append(np.zeros((0, 5, 2)) if faceless else point.astype(np.float32))
    counts = [len(box) for box in boxes]
    assert len(images) >= 50 and sum(count > 1 for count in counts) >= 3, counts
    mismatched = [
        str(path) for path, det, n in zip(paths, ours, counts, strict=True) if len(det.boxes) != n
    ]
    assert not mismatched, f"face counts differ on {mismatched}"
    box_diff = point_diff = score_diff = 0.0
    for det, box, score, point in zip(ours, boxes, scores, points, strict=True):
        if len(box) == 0:
            continue
        pair = match(det, box)
        box_diff = max(box_diff, np.abs(det.boxes[pair] - box).max())
        point_diff = max(point_diff, np.abs(det.landmarks[pair] - point).max())
        score_diff = max(score_diff, np.abs(det.scores[pair] - score).max())
        assert sorted(pair) == list(range(len(box))), "faces do not pair one to one"
    summary = (
        f"{len(images)} images, {sum(counts)} faces: max |Δbox| {box_diff:.2e} px, "
        f"|Δlandmark| {point_diff:.2e} px, |Δscore| {score_diff:.2e}"
    )
    assert box_diff < 1 and point_diff < 1 and score_diff < 1e-3, summary


@needs_lfw
def test_mixed_sizes_and_batching(detector):
    face = load(lfw_sample(PARITY_STEP)[0])
    images = [
        face,
        np.asarray(Image.fromarray(face).resize((400, 300), Image.BILINEAR)),
        np.full((10, 10, 3), 128, dtype=np.uint8),
        np.zeros((250, 250, 3), dtype=np.uint8),
        face[::-1].copy(),  # same size as the first: batched with it
    ]
    batched = detector.detect(images)
    assert [len(det.scores) > 0 for det in batched[:4]] == [True, True, False, False]
    for det in batched[2:4]:
        assert det.boxes.shape == (0, 4) and det.scores.shape == (0,)
        assert det.landmarks.shape == (0, 5, 2)
    for det, image in zip(batched, images, strict=True):
        (single,) = detector.detect([image])
        assert det.boxes.dtype == det.scores.dtype == det.landmarks.dtype == np.float32
        assert np.all(np.diff(det.scores) <= 0) and np.all((det.scores >= 0) & (det.scores <= 1))
        np.testing.assert_allclose(det.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(det.scores, single.scores, atol=1e-5)
        np.testing.assert_allclose(det.landmarks, single.landmarks, atol=1e-3)
    assert detector.detect([]) == []


@needs_lfw
def test_flipped_and_rotated_faces(detector):
    picture = Image.open(lfw_sample(PARITY_STEP)[1]).convert("RGB")
    width = picture.width
    upright, flipped, rotated = detector.detect(
        [np.asarray(picture), np.asarray(picture)[:, ::-1].copy(), np.asarray(picture.rotate(15))]
    )
    for det in (upright, flipped, rotated):
        assert len(det.scores) > 0 and det.scores[0] > 0.9
        left_eye, right_eye, _, left_mouth, right_mouth = det.landmarks[0]
        assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    # the mirror image's image-left eye is the original's image-right eye, mirrored
    mirrored = upright.landmarks[0][[1, 0, 2, 4, 3]] * [-1, 1] + [width - 1, 0]
    assert np.abs(flipped.landmarks[0] - mirrored).max() < 4
    left_eye, right_eye = rotated.landmarks[0][:2]
    assert left_eye[1] > right_eye[1], "turned counter-clockwise: the image-left eye is lower"
