"""Progress reporting and interruption shared by every sampler."""

from __future__ import annotations

from typing import Callable, Optional

import torch

#: ``callback(step, total, rgb_latent, modality_latent)`` after every step (1-based step).
StepCallback = Callable[[int, int, Optional[torch.Tensor], Optional[torch.Tensor]], None]


class SamplingInterrupted(Exception):
    """Raised when ``should_interrupt()`` returns True; the node layer maps it to ComfyUI's
    interruption. Sampling leaves no state behind (caches are cleared, inputs untouched)."""


def check_interrupt(should_interrupt: Optional[Callable[[], bool]], step: int, total: int) -> None:
    """Raise :class:`SamplingInterrupted` if the user asked to stop."""
    if should_interrupt is not None and should_interrupt():
        raise SamplingInterrupted(f"sampling interrupted before step {step + 1} of {total}")
