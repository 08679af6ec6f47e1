"""Depth <-> UnityVideo's depth visualisation (warm near, cool far).

Values: relative depth ``[F, H, W]`` in [0, 1], 0 = nearest, 1 = farthest. The colour map is
Turbo (Google's perceptual rainbow, evaluated from its published polynomial fit) from 0.95
(near, red) down to 0.10 (far, blue), as the release's modality prompt says ("near in warm
colors and far in cool colors"). Decoding finds the nearest colour on the map and refines it
along the map's polyline, so 8-bit video round-trips to well under 1 % of the range.
"""

from __future__ import annotations

from typing import Optional

import torch

_COEFFS = torch.tensor([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
], dtype=torch.float64)
LUT_SIZE = 512
#: Part of the Turbo range used: its darkest ends are left out so far stays clearly blue.
NEAR_X, FAR_X = 0.95, 0.10


def turbo(x: torch.Tensor) -> torch.Tensor:
    """Turbo colour ``[..., 3]`` in [0, 1] for x in [0, 1] (0 = dark blue, 1 = dark red)."""
    x = x.to(torch.float64).clamp(0, 1)[..., None]
    powers = torch.stack([x[..., 0] ** i for i in range(6)], dim=-1)
    return (powers[..., None, :] * _COEFFS).sum(-1).clamp(0, 1)


_LUT = turbo(NEAR_X + (FAR_X - NEAR_X) * torch.linspace(0, 1, LUT_SIZE, dtype=torch.float64)).float()  # 0 = near


def encode(depth: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Relative depth ``[F, H, W]`` in [0, 1] (0 near) -> frames ``[F, H, W, 3]`` in [0, 1].

    The colour map is evaluated ``chunk`` pixels at a time (it is per pixel, so the result does
    not depend on ``chunk``): its float64 polynomial needs about 220 bytes per pixel, 450 MB for
    one 1080p frame at once, against 14 MB per chunk.

    Raises:
        ValueError: not 3-D, or values outside [0, 1] (metric depth must be made relative first,
            e.g. with :func:`relative_depth`).
    """
    if depth.ndim != 3:
        raise ValueError(f"depth must be [F, H, W], got {tuple(depth.shape)}")
    if depth.numel() and (depth.min() < -1e-3 or depth.max() > 1 + 1e-3):
        raise ValueError(f"relative depth must be in [0, 1] (0 near), got [{float(depth.min()):.3g}, "
                         f"{float(depth.max()):.3g}]; convert metric depth with relative_depth() first")
    flat = depth.reshape(-1)
    out = torch.empty(flat.shape[0], 3, dtype=torch.float32, device=depth.device)
    for s in range(0, flat.shape[0], max(1, int(chunk))):
        out[s:s + chunk] = turbo(NEAR_X + (FAR_X - NEAR_X) * flat[s:s + chunk].double().clamp(0, 1))
    return out.reshape(*depth.shape, 3)


def decode(frames: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` -> relative depth ``[F, H, W]`` in [0, 1] (nearest colour on the map,
    refined by projecting onto the neighbouring segment of the map)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    flat = frames.reshape(-1, 3).float()
    lut = _LUT.to(flat.device)
    out = torch.empty(flat.shape[0], device=flat.device)
    n = lut.shape[0]
    for s in range(0, flat.shape[0], chunk):
        px = flat[s:s + chunk]
        idx = torch.cdist(px, lut).argmin(dim=1)
        best = idx.float()
        # Refine on both neighbouring segments; keep the closer projection.
        best_err = torch.full_like(best, float("inf"))
        for lo in (idx - 1, idx):
            lo = lo.clamp(0, n - 2)
            a, b = lut[lo], lut[lo + 1]
            ab = b - a
            f = ((px - a) * ab).sum(1) / (ab * ab).sum(1).clamp_min(1e-12)
            f = f.clamp(0, 1)
            err = ((a + f[:, None] * ab - px) ** 2).sum(1)
            take = err < best_err
            best = torch.where(take, lo.float() + f, best)
            best_err = torch.where(take, err, best_err)
        out[s:s + chunk] = best / (n - 1)
    return out.reshape(frames.shape[:3])


def relative_depth(metric: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Metric depth ``[F, H, W]`` (metres, > 0) -> relative depth in [0, 1], 0 near.

    Normalised per clip in inverse depth (disparity), as relative-depth estimators output it:
    r = (d_max - 1/z) / (d_max - d_min), so the nearest point is 0 and the farthest 1.
    """
    disp = 1.0 / metric.float().clamp_min(1e-6)
    vals = disp[valid] if valid is not None else disp
    lo, hi = vals.min(), vals.max()
    return ((hi - disp) / (hi - lo).clamp_min(1e-9)).clamp(0, 1)
