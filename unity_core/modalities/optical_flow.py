"""Optical flow <-> the Middlebury / RAFT colour wheel (the release's "raft" modality).

Values: ``[F, H, W, 2]`` (u right, v down) in pixels; frame i holds the flow from frame i to
i + 1 (the last frame repeats the previous flow). Hue encodes direction, saturation encodes
magnitude relative to ``max_flow``; flow beyond ``max_flow`` is clipped to it. By default
``max_flow`` is a fixed share of the frame width (:data:`FULL_SPEED_PER_WIDTH`: 4 px/frame at
64 px wide, 80 px/frame at 1280), so a visualisation means the same motion after it is resized,
and small frames, whose motion is a few pixels, still get saturated colours. Decoding inverts
the wheel: every wheel colour has one channel at 1 and one at 0, so the magnitude is
1 - min(rgb) and the hue gives the wheel position.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

#: Wheel segments (Baker et al., Middlebury): red-yellow 15, yellow-green 6, green-cyan 4,
#: cyan-blue 11, blue-magenta 13, magenta-red 6 colours.
SEGMENTS = (15, 6, 4, 11, 13, 6)
#: Full saturation at this share of the frame width per frame (``max_flow = width / 16``).
FULL_SPEED_PER_WIDTH = 1.0 / 16.0


def default_max_flow(width: int) -> float:
    """Speed in pixels/frame drawn at full saturation for frames ``width`` pixels wide."""
    return float(width) * FULL_SPEED_PER_WIDTH


def color_wheel() -> torch.Tensor:
    """The 55 wheel colours ``[55, 3]`` in [0, 1]."""
    ry, yg, gc, cb, bm, mr = SEGMENTS
    rows = []
    rows += [(1.0, i / ry, 0.0) for i in range(ry)]
    rows += [(1.0 - i / yg, 1.0, 0.0) for i in range(yg)]
    rows += [(0.0, 1.0, i / gc) for i in range(gc)]
    rows += [(0.0, 1.0 - i / cb, 1.0) for i in range(cb)]
    rows += [(i / bm, 0.0, 1.0) for i in range(bm)]
    rows += [(1.0, 0.0, 1.0 - i / mr) for i in range(mr)]
    return torch.tensor(rows, dtype=torch.float64)


_WHEEL = color_wheel()


def _hue(rgb: torch.Tensor) -> torch.Tensor:
    """HSV hue in [0, 360) of colours ``[..., 3]``."""
    r, g, b = rgb.unbind(-1)
    mx, _ = rgb.max(-1)
    mn, _ = rgb.min(-1)
    d = (mx - mn).clamp_min(1e-12)
    h = torch.where(mx == r, ((g - b) / d) % 6, torch.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return (h * 60.0) % 360.0


_WHEEL_HUE = torch.cat([_hue(_WHEEL), torch.tensor([360.0], dtype=torch.float64)])  # monotone 0..360


def encode(flow: torch.Tensor, max_flow: Optional[float] = None) -> torch.Tensor:
    """Flow ``[F, H, W, 2]`` pixels -> frames ``[F, H, W, 3]`` in [0, 1] (white = no motion).

    ``max_flow``: pixels/frame at full saturation; None uses :func:`default_max_flow` of W.
    Raises ValueError for a wrong shape or a ``max_flow`` that is not positive.
    """
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be [F, H, W, 2] (u, v), got {tuple(flow.shape)}")
    max_flow = default_max_flow(flow.shape[2]) if max_flow is None else max_flow
    if max_flow <= 0:
        raise ValueError(f"max_flow must be > 0, got {max_flow}")
    u, v = flow[..., 0].double(), flow[..., 1].double()
    rad = (torch.sqrt(u * u + v * v) / max_flow).clamp(max=1.0)
    n = _WHEEL.shape[0]
    fk = (torch.atan2(-v, -u) / math.pi + 1) / 2 * (n - 1)
    k0 = fk.floor().long().clamp(0, n - 1)
    k1 = (k0 + 1) % n
    f = (fk - k0)[..., None]
    col = (1 - f) * _WHEEL[k0] + f * _WHEEL[k1]
    return (1 - rad[..., None] * (1 - col)).float()


def decode(frames: torch.Tensor, max_flow: Optional[float] = None) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` -> flow ``[F, H, W, 2]`` pixels (inverse of :func:`encode`, with
    the same ``max_flow`` rule)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    max_flow = default_max_flow(frames.shape[2]) if max_flow is None else max_flow
    c = frames.double().clamp(0, 1)
    rad = 1 - c.min(-1).values
    col = 1 - (1 - c) / rad.clamp_min(1e-6)[..., None]
    hue = _hue(col)
    n = _WHEEL.shape[0]
    fk = _interp(hue, _WHEEL_HUE, torch.arange(n + 1, dtype=torch.float64))
    fk = torch.where(fk > n - 1, torch.zeros_like(fk), fk)  # the closing sector (k 54 -> 0) sits at hue 360
    theta = (fk / (n - 1) * 2 - 1) * math.pi
    mag = rad * max_flow
    return torch.stack([-mag * torch.cos(theta), -mag * torch.sin(theta)], dim=-1).float()


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = (x - x0) / (x1 - x0).clamp_min(1e-12)
    return fp[idx - 1] + w * (fp[idx] - fp[idx - 1])
