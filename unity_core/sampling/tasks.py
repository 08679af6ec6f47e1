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


def packed_noise(shape, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Initial noise of both streams drawn the way ComfyUI draws a LATENT's noise.

    ComfyUI (``comfy.sample.prepare_noise``) seeds a CPU generator and draws one float32 tensor
    over the whole latent; a UnityVideo task latent packs the streams side by side in width
    (``[B, C, F, H, 2W]``, RGB left), so the same seed gives the same video in the pipeline / CLI
    and through ComfyUI's samplers. A freshly seeded ``torch.Generator().manual_seed(seed)`` gives
    the numbers of ``torch.manual_seed(seed)``.

    Args:
        shape: one stream's latent shape ``[B, C, F, H, W]``.
        generator: a CPU generator (seeded by the caller).

    Returns:
        (rgb noise, modality noise), each ``[B, C, F, H, W]`` float32 on the CPU (views of the
        packed draw).
    """
    b, c, f, h, w = (int(s) for s in shape)
    packed = torch.randn((b, c, f, h, 2 * w), generator=generator, dtype=torch.float32, device="cpu")
    return packed[..., :w], packed[..., w:]

