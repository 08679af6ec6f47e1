"""Per-modality codecs between values and UnityVideo's RGB visualisation videos.

``encode(modality, values)`` gives frames ``[F, H, W, 3]`` float32 in [0, 1] that the model
consumes; ``decode(modality, frames)`` turns the model's visualisations back into values:

==============  ==========================================  =================================
modality        values                                       visualisation
==============  ==========================================  =================================
depth           ``[F, H, W]`` relative depth, 0 near, 1 far   Turbo, warm near / cool far
raft            ``[F, H, W, 2]`` (u, v) pixels               Middlebury colour wheel
segmentation    ``[F, H, W]`` int64 labels, 0 background     white on black (or a palette)
skeleton        ``[F, P, 18, 3]`` (x, y, confidence)         OpenPose 18-keypoint rendering
densepose       ``[F, H, W, 3]`` (part 0..24, U, V)          IUV image
==============  ==========================================  =================================
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from unity_core.constants import resolve_modality
from unity_core.modalities import densepose, depth, optical_flow, segmentation, skeleton

_CODECS = {"depth": depth, "raft": optical_flow, "segmentation": segmentation, "skeleton": skeleton,
           "densepose": densepose}


def encode(modality: str, values, size: Optional[Tuple[int, int]] = None, **opts) -> torch.Tensor:
    """Values -> visualisation frames ``[F, H, W, 3]`` float32 in [0, 1] (see the table above).

    ``size`` is the frame size ``(height, width)`` in pixels: skeleton values are keypoints and
    carry no frame size, so skeletons need it (or ``height=``/``width=``); the other modalities'
    values are images and ignore it. Raises ``ValueError`` for an unknown modality, values of the
    wrong shape, or a skeleton without a size.
    """
    name = resolve_modality(modality)
    if name == "skeleton" and size is not None:
        opts.setdefault("height", int(size[0]))
        opts.setdefault("width", int(size[1]))
    if name == "skeleton" and not {"height", "width"} <= opts.keys():
        raise ValueError("skeleton values are keypoints with no frame size: pass size=(height, width) in pixels")
    return _CODECS[name].encode(torch.as_tensor(values), **opts)


def decode(modality: str, frames: torch.Tensor, **opts):
    """Visualisation frames ``[F, H, W, 3]`` in [0, 1] -> values (see the table above)."""
    return _CODECS[resolve_modality(modality)].decode(frames, **opts)


def legend(modality: str) -> Dict[str, Any]:
    """What a colour means, for UI legends: a title, a units line and colour stops
    ``[(position or label, [r, g, b] 0-255), ...]``."""
    name = resolve_modality(modality)
    if name == "depth":
        stops = [(round(float(x), 2), [int(c * 255) for c in depth.encode(torch.tensor([[[float(x)]]]))[0, 0, 0]])
                 for x in torch.linspace(0, 1, 9)]
        return {"title": "Depth", "units": "relative depth: 0 near (warm) to 1 far (cool)", "stops": stops}
    if name == "raft":
        dirs = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}
        stops = [(k, [int(c * 255) for c in optical_flow.encode(torch.tensor([[[[u, v]]]]), max_flow=1.0)[0, 0, 0]])
                 for k, (u, v) in dirs.items()]
        return {"title": "Optical flow", "units": "hue = direction, saturation = speed (full at 1/16 of the frame width per frame)", "stops": stops}
    if name == "segmentation":
        return {"title": "Segmentation", "units": "white = foreground", "stops": [("background", [0, 0, 0]), ("foreground", [255, 255, 255])]}
    if name == "skeleton":
        return {"title": "Skeleton", "units": "OpenPose 18 keypoints",
                "stops": [(n, skeleton.COLORS[i].tolist()) for i, n in enumerate(skeleton.KEYPOINT_NAMES)]}
    return {"title": "DensePose", "units": "red = body part (1-24), green = U, blue = V",
            "stops": [(f"part {i}", [int(255 * i / 24), 128, 128]) for i in (1, 6, 12, 18, 24)]}


__all__ = ["decode", "encode", "legend"]
