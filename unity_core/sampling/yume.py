"""Yume's sampling add-ons (arXiv 2507.17744): time travel, the anti-artifact mechanism (AAM)
and block-residual caching. Each is off unless its config object is given, and then reduces
exactly to the plain sampler when its parameters switch it off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from diffusers.utils import BaseOutput


@dataclass
class TimeTravel:
    """Time-travel sampling (TTS): every ``interval`` steps, look ``lookahead`` Euler steps
    ahead and take the real step with the velocity found at the furthest look-ahead point.

    Paper: s = 5, l = 5; Yume's code: interval 2, lookahead 2. ``sde=True`` uses the TTS-SDE
    update z <- z + dt v + beta dt + eta sqrt(|dt|) eps with x0_hat = z - t v and
    beta = -eta^2 / 2 * (-(z - (1 - t) x0_hat) / t^2) (eta 0.3 in the paper).
    ``lookahead=0`` and ``eta=0`` give plain Euler exactly.
    """

    interval: int = 2
    lookahead: int = 2
    sde: bool = False
    eta: float = 0.3

    def __post_init__(self) -> None:
        if self.interval < 1 or self.lookahead < 0 or self.eta < 0:
            raise ValueError(f"time travel needs interval >= 1, lookahead >= 0, eta >= 0; got {self}")


def sde_step(z: torch.Tensor, v: torch.Tensor, t: float, dt: float, eta: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One TTS-SDE step (formula in :class:`TimeTravel`) from t to t + dt (dt < 0); plain Euler
    where eta = 0, at t = 0, and on the last step, which lands on t = 0 and must add no noise."""
    if eta == 0.0 or t <= 0.0 or t + dt <= 0.0:
        return z + dt * v
    x0_hat = z - t * v
    beta = -0.5 * eta**2 * (-(z - (1 - t) * x0_hat) / t**2)
    eps = torch.randn(z.shape, generator=generator, dtype=torch.float32, device="cpu").to(z)
    return z + dt * v + beta * dt + eta * abs(dt) ** 0.5 * eps


# ----------------------------------------------------------------------------------------------
# AAM
# ----------------------------------------------------------------------------------------------


@dataclass
class AAM:
    """Anti-artifact mechanism: two passes from the same initial noise.

    Pass 1 samples ``first_pass_steps`` steps without CFG to get z_orig. Pass 2 samples with the
    requested CFG and, before each of its first ``k`` steps, replaces the low-frequency part of
    the latent by that of the forward-noised z_orig: z <- B((1 - t) z_orig + t noise) + (z - B z),
    with B = A^+ A the range projector of a separable blur A (kernels [0.1, 0.8, 0.1] along
    height, [0.2, 0.6, 0.2] along width).

    A same-size blur with these kernels is invertible (diagonally dominant), which would make
    B the identity; so A blurs and keeps every ``stride``-th row/column (stride 2 by default),
    and B projects onto the smooth, half-resolution subspace. ``k = 0`` gives the plain sampler.
    Paper: 30 + 30 steps, k = 5 (90 evaluations against 100 for 50 CFG steps).
    """

    k: int = 5
    first_pass_steps: Optional[int] = None
    stride: int = 2
    kernel_h: Tuple[float, ...] = (0.1, 0.8, 0.1)
    kernel_w: Tuple[float, ...] = (0.2, 0.6, 0.2)

    def __post_init__(self) -> None:
        if self.k < 0 or self.stride < 2 or (self.first_pass_steps is not None and self.first_pass_steps < 1):
            raise ValueError(f"AAM needs k >= 0, stride >= 2 (stride 1 makes the projector the identity) and "
                             f"first_pass_steps >= 1 or None; got {self}")


def blur_matrix(n: int, kernel: Sequence[float], stride: int) -> torch.Tensor:
    """1-D blur (zero padding) followed by keeping every ``stride``-th sample, as a matrix
    ``[ceil(n / stride), n]`` in float64."""
    r = len(kernel) // 2
    full = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j, w in enumerate(kernel):
            col = i + j - r
            if 0 <= col < n:
                full[i, col] = w
    return full[::stride]


def range_projector(n: int, kernel: Sequence[float], stride: int) -> torch.Tensor:
    """B = A^+ A ``[n, n]`` for the 1-D operator of :func:`blur_matrix`."""
    a = blur_matrix(n, kernel, stride)
    return torch.linalg.pinv(a) @ a


def project_low_frequency(z: torch.Tensor, aam: AAM) -> torch.Tensor:
    """Apply B = (B_H kron B_W) to the last two axes (H, W) of a latent ``[..., H, W]``."""
    ph = range_projector(z.shape[-2], aam.kernel_h, aam.stride).to(z)
    pw = range_projector(z.shape[-1], aam.kernel_w, aam.stride).to(z)
    return torch.einsum("ij,...jk,lk->...il", ph, z, pw)


# ----------------------------------------------------------------------------------------------
# Block-residual cache
# ----------------------------------------------------------------------------------------------


@dataclass
class BlockCache:
    """Per-block residual reuse (Yume's cache): for the blocks in ``blocks``, the residual
    block(x) - x computed at a refresh evaluation is reused for the next ``interval - 1``
    model evaluations instead of running the block. ``blocks`` empty or ``interval = 1`` gives
    the plain sampler. Yume caches 10 of 40 blocks, chosen by :func:`rank_blocks_by_removal`.
    """

    blocks: Iterable[int] = ()
    interval: int = 2
    _residuals: Dict[int, torch.Tensor] = field(default_factory=dict, repr=False)
    _calls: int = field(default=0, repr=False)
    skipped: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.blocks = frozenset(int(b) for b in self.blocks)
        if self.interval < 1:
            raise ValueError(f"cache interval must be >= 1, got {self.interval}")

    def start_evaluation(self) -> None:
        """Called once before every model evaluation."""
        self._calls += 1

    def reset(self) -> None:
        """Forget everything, statistics included (before a new sampling run)."""
        self.clear()
        self.skipped = 0

    def clear(self) -> None:
        """Forget the stored residuals and start counting evaluations afresh (between passes of
        one run, and to free memory after it); ``skipped`` is kept."""
        self._residuals.clear()
        self._calls = 0

    def __call__(self, index: int, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if index not in self.blocks:
            return fn(x)
        refresh = (self._calls - 1) % self.interval == 0
        cached = self._residuals.get(index)
        if refresh or cached is None or cached.shape != x.shape:
            out = fn(x)
            self._residuals[index] = (out - x).detach()
            return out
        self.skipped += 1
        return x + cached


def _as_tuple(out):
    """A diffusers output (``UnityVideoTransformerOutput``) as the tuple of its tensors; tuples as they are."""
    return out.to_tuple() if isinstance(out, BaseOutput) else out


def rank_blocks_by_removal(model, *args, **kwargs) -> List[int]:
    """Block indices ordered from least to most important: the MSE of the model's output when
    that single block is skipped (identity), on one forward with the given arguments (Yume ranks
    blocks this way over 32 videos)."""
    with torch.no_grad():
        ref = _as_tuple(model(*args, **kwargs))
        scores = []
        for i in range(len(model.blocks)):
            def skip(index, fn, x, i=i):
                return x if index == i else fn(x)
            out = _as_tuple(model(*args, block_runner=skip, **kwargs))
            err = sum(((a - b).float() ** 2).mean().item() for a, b in zip(out, ref) if a is not None)
            scores.append((err, i))
    return [i for _, i in sorted(scores)]
