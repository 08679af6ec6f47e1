"""UnityVideo's three tasks and dynamic noising.

=========== ======================= ================= ===============
release     paper                   noised (sampled)  clean (t = 0)
=========== ======================= ================= ===============
text2all    joint generation        rgb, modality     -
video2flow  estimation              modality          rgb
flow2video  controllable generation rgb               modality
=========== ======================= ================= ===============

The clean stream is fed exactly as given at every step; the model is conditioned on the single
t of the noised stream(s) (the release's choice). "flow" in the release's names means any
auxiliary modality.
"""

from __future__ import annotations

from typing import Tuple

import torch

from unity_core.constants import TASKS, resolve_task


def noised_streams(task: str) -> Tuple[bool, bool]:
    """(rgb is noised, modality is noised) for a task name or alias."""
    noised = TASKS[resolve_task(task)]["noised"]
    return "rgb" in noised, "modality" in noised


def add_noise(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """z_t = (1 - t) x + t noise, with t ``[B]`` broadcast over ``[B, C, F, H, W]``."""
    t = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return (1 - t) * x + t * noise
