"""Flow-matching noise levels (sigmas) and the release's timestep scale.

Flow matching here follows the release: z_t = (1 - t) x + t noise, velocity = noise - x, so
t = 1 is pure noise and sampling integrates t from 1 to 0. The model takes ``t * 1000``.
"""

from __future__ import annotations

import torch

TIMESTEP_SCALE = 1000.0


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift s' = shift * s / (1 + (shift - 1) * s) (shift 1 = identity; >1 spends
    more steps at high noise, as Wan and SD3 do)."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    if shift == 1.0:
        return sigmas
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, shift: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``steps + 1`` noise levels from 1 to 0: ``linspace(1, 0)`` in float32 (UnityVideo's grid),
    then shifted.

    ``dtype=torch.float64`` gives Yume-5B's grid as its sampler computes it in numpy (shift 7:
    4 steps -> 1, 0.954545..., 0.875, 0.7, then 0).

    Raises:
        ValueError: steps < 1.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return shift_sigmas(torch.linspace(1.0, 0.0, int(steps) + 1, dtype=dtype), shift)


def to_timestep(sigma: torch.Tensor | float, batch: int, device=None) -> torch.Tensor:
    """The model's timestep ``[batch]`` float32 = sigma * 1000 (computed in float32, as the release)."""
    s = torch.as_tensor(sigma, dtype=torch.float32)
    return (s * TIMESTEP_SCALE).reshape(1).repeat(batch).to(device)
