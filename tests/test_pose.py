"""Head pose from five landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from fiqa.pose import MEAN_FACE_3D, head_pose, rotation_matrix


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (0, -20, 0), (25, -15, 10),
                                    (-45, 10, -30)])
def test_recovers_the_pose_of_a_projected_mean_face(angles):
    projected = (MEAN_FACE_3D @ rotation_matrix(*angles).T)[:, :2] * 3.1 + [120, 90]
    assert np.allclose(head_pose(projected[None])[0], angles, atol=1e-6)


def test_signs_follow_the_image():
    frontal = MEAN_FACE_3D[:, :2] + 100
    nose_left = frontal.copy()
    nose_left[2, 0] -= 8
    nose_down = frontal.copy()
    nose_down[2, 1] += 8
    yaw, pitch, _ = head_pose(np.stack([nose_left, nose_down])).T
    assert yaw[0] > 10 and abs(pitch[0]) < 3
    assert pitch[1] > 10 and abs(yaw[1]) < 3
