"""Control extraction from real video: DIS optical flow, MediaPipe pose and person masks.

``extract_control(modality, frames)`` gives the modality values for a clip, or a clear error
for depth and DensePose, which have no offline estimator here.
"""

from __future__ import annotations

import torch

from unity_core.constants import resolve_modality
from unity_core.preprocess.optical_flow import estimate_flow, warp_backward
from unity_core.preprocess.pose import estimate_person_mask, estimate_pose


def extract_control(modality: str, frames: torch.Tensor):
    """Modality values for ``frames`` ``[F, H, W, 3]`` in [0, 1] (see :mod:`unity_core.modalities`).

    Raises:
        ValueError: unknown modality, or depth / densepose (no offline estimator: supply the
            control video yourself, e.g. from Depth Anything or DensePose run elsewhere).
    """
    name = resolve_modality(modality)
    if name == "raft":
        return estimate_flow(frames)
    if name == "skeleton":
        return estimate_pose(frames)
    if name == "segmentation":
        return estimate_person_mask(frames)
    raise ValueError(
        f"no offline {name} estimator is available (its weights need a download); provide a {name} "
        "visualisation video as the control instead, or estimate it with the UnityVideo model"
    )


__all__ = ["estimate_flow", "estimate_person_mask", "estimate_pose", "extract_control", "warp_backward"]
