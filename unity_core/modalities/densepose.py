"""DensePose <-> IUV visualisation videos.

Values: ``[F, H, W, 3]`` = (part index I in 0..24 as float, U, V in [0, 1]); I = 0 is
background (its U, V are 0). The visualisation is DensePose's IUV image normalised to [0, 1]:
red = I / 24, green = U, blue = V, so body parts read as bands of red and the UV charts as
green/blue gradients. Decoding rounds red back to the nearest part index (steps of 1/24 are
far larger than video coding error) and reads U, V directly.
"""

from __future__ import annotations

import torch

NUM_PARTS = 24


def encode(iuv: torch.Tensor) -> torch.Tensor:
    """IUV ``[F, H, W, 3]`` -> frames ``[F, H, W, 3]`` in [0, 1].

    Raises:
        ValueError: wrong shape or part index outside 0..24.
    """
    if iuv.ndim != 4 or iuv.shape[-1] != 3:
        raise ValueError(f"densepose values must be [F, H, W, 3] (I, U, V), got {tuple(iuv.shape)}")
    part = iuv[..., 0].round()
    if part.min() < 0 or part.max() > NUM_PARTS:
        raise ValueError(f"part index must be in 0..{NUM_PARTS}")
    fg = (part > 0).float()
    return torch.stack([part / NUM_PARTS, iuv[..., 1].clamp(0, 1) * fg, iuv[..., 2].clamp(0, 1) * fg], dim=-1).float()


def decode(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` -> IUV ``[F, H, W, 3]`` (I integral as float, U, V in [0, 1])."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    part = (frames[..., 0].float() * NUM_PARTS).round().clamp(0, NUM_PARTS)
    fg = (part > 0).float()
    return torch.stack([part, frames[..., 1].float() * fg, frames[..., 2].float() * fg], dim=-1)
