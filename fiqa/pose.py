"""Head pose (yaw, pitch, roll) from five landmarks with a weak-perspective fit to a mean face."""

from __future__ import annotations

import numpy as np

# Mean adult face per detector, in millimetres, x to the image right, y down, z away from the
# camera, nose tip at the origin. x, y: the median of that detector's landmarks over all LFW faces
# after similarity alignment, scaled to a 63 mm inter-eye distance (so a typical LFW face reads
# as frontal: the detectors place the points differently, YuNet's mouth corners 4.5 mm higher);
# depths from anthropometric averages (eyes ~25 mm, mouth corners ~20 mm behind the nose tip).
MEAN_FACES_3D = {
    "mtcnn": np.array([
        [-31.5, -36.8, 25.0],  # image-left eye
        [31.5, -36.8, 25.0],  # image-right eye
        [0.0, 0.0, 0.0],  # nose tip
        [-27.0, 32.3, 20.0],  # image-left mouth corner
        [27.0, 32.3, 20.0],  # image-right mouth corner
    ]),
    "yunet": np.array([  # the 13,233 faces of benchmarks/lfw_detection.py --detector yunet
        [-31.5, -35.2, 25.0],
        [31.5, -35.2, 25.0],
        [0.0, 0.0, 0.0],
        [-27.0, 27.8, 20.0],
        [27.0, 27.8, 20.0],
    ]),
}
MEAN_FACE_3D = MEAN_FACES_3D["mtcnn"]


def head_pose(landmarks: np.ndarray, detector: str = "mtcnn") -> np.ndarray:
    """N×5×2 landmarks of ``detector`` → N×3 angles in degrees: yaw, pitch, roll.

    yaw > 0: the nose moves towards the image's left; pitch > 0: the face
    tilts down (nose moves down); roll > 0: the eye line turns clockwise in the image.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    mean_face = MEAN_FACES_3D[detector]
    model = mean_face - mean_face.mean(0)
    pseudo_inverse = np.linalg.pinv(model)  # 3×5
    angles = np.empty((len(landmarks), 3))
    for i, points in enumerate(landmarks):
        projection = (pseudo_inverse @ (points - points.mean(0))).T  # 2×3 = scale · R[:2]
        row_x = projection[0] / np.linalg.norm(projection[0])
        row_y = projection[1] - (projection[1] @ row_x) * row_x
        row_y /= np.linalg.norm(row_y)
        rotation = np.stack([row_x, row_y, np.cross(row_x, row_y)])
        angles[i] = _euler_degrees(rotation)
    return angles


def _euler_degrees(rotation: np.ndarray) -> np.ndarray:
    """R = Rz(roll) · Rx(pitch) · Ry(yaw) → (yaw, pitch, roll) in degrees."""
    pitch = np.arcsin(np.clip(rotation[2, 1], -1, 1))
    yaw = np.arctan2(-rotation[2, 0], rotation[2, 2])
    roll = np.arctan2(-rotation[0, 1], rotation[1, 1])
    return np.degrees([yaw, pitch, roll])


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The 3×3 rotation that :func:`head_pose` inverts (degrees in, as Rz·Rx·Ry)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry
