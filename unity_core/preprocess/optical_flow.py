"""Optical flow from real video with OpenCV's DIS (dense inverse search), offline and fast."""

from __future__ import annotations

import numpy as np
import torch

from unity_core.io.video import frames_to_uint8


def estimate_flow(frames: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Forward flow ``[F, H, W, 2]`` (u right, v down, pixels) of a clip ``[F, H, W, 3]`` in [0, 1].

    Frame i holds the flow from frame i to i + 1; the last frame repeats the previous flow (a
    clip of one frame gets zero flow), matching :mod:`unity_core.modalities.optical_flow`.

    Args:
        preset: DIS preset, ``ultrafast``, ``fast`` or ``medium``.

    Raises:
        ValueError: wrong shape, frames not float in [0, 1], or an unknown preset.
    """
    import cv2

    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(presets)}")
    video = frames_to_uint8(frames)
    dis = cv2.DISOpticalFlow_create(presets[preset])
    grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video]
    out = np.zeros((*video.shape[:3], 2), dtype=np.float32)
    for i in range(len(grays) - 1):
        out[i] = dis.calc(grays[i], grays[i + 1], None)
    if len(grays) > 1:
        out[-1] = out[-2]
    return torch.from_numpy(out)


def warp_backward(next_frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample frame t+1 ``[F, H, W, C]`` at x + flow_t(x): the reconstruction of frame t
    (bilinear, border clamp). Used for warping errors."""
    import torch.nn.functional as F

    f, h, w, _ = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (xs[None] + flow[..., 0]) / max(w - 1, 1) * 2 - 1
    gy = (ys[None] + flow[..., 1]) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)
    img = next_frames.permute(0, 3, 1, 2).float()
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True).permute(0, 2, 3, 1)
