"""The pack's socket types and shared inputs (V3 ``comfy_api.latest.io``), and CONDITIONING helpers.

Custom socket types (``io.Custom``): what travels between our nodes that core has no type for.

=================================  ==============================================================
``CODEC``  UNITYVIDEO_CODEC        a :class:`unity_core.codec.LatentCodec` (the embedded default's
                                   built-in video codec; the 5B uses core's VAE with Wan2.2's VAE)
``TEXT_ENCODER``                   a :class:`unity_core.text.TextEncoder` (the default's MiniLM;
UNITYVIDEO_TEXT_ENCODER            the 5B uses core's CLIP with UMT5-XXL)
``VALUES``  UNITYVIDEO_VALUES      decoded modality values: ``{"modality": release name,
                                   "values": tensor or per-frame list}`` (see
                                   :mod:`unity_core.modalities`)
=================================  ==============================================================

The model itself is core's ``MODEL`` (``io.Model``): a ComfyUI ``ModelPatcher`` whose
``model.diffusion_model`` is our :class:`unity_core.model.UnityVideoTransformer`.
"""

from __future__ import annotations

from typing import Optional

import torch
from comfy_api.latest import io

from unity_core.constants import INFERENCE_DEFAULTS, MODALITIES, TASKS, embedded_defaults

MODALITY_CHOICES = list(MODALITIES)
TASK_CHOICES = list(TASKS)

CODEC = io.Custom("UNITYVIDEO_CODEC")
TEXT_ENCODER = io.Custom("UNITYVIDEO_TEXT_ENCODER")
VALUES = io.Custom("UNITYVIDEO_VALUES")

#: The embedded default's inference defaults (frames, height, width, fps, steps, seed, ...; from
#: its pipeline.json over the release's): the defaults of the nodes' inputs.
MODEL_DEFAULTS = embedded_defaults()
#: The largest width/height a size input takes, in pixels.
MAX_SIDE = 4096


def modality_input(name: str = "modality", default: str = "depth") -> io.Combo.Input:
    """The auxiliary-modality choice."""
    return io.Combo.Input(name, options=MODALITY_CHOICES, default=default,
                          tooltip="Auxiliary modality: depth, raft (optical flow), segmentation, skeleton or "
                                  "densepose.")


def seed_input() -> io.Int.Input:
    """The noise seed (with ComfyUI's control-after-generate widget)."""
    return io.Int.Input("seed", default=MODEL_DEFAULTS["seed"], min=0, max=2**63 - 1, control_after_generate=True,
                        tooltip="Noise seed; the same seed and settings reproduce the same result.")


def steps_input(default: int = MODEL_DEFAULTS["steps"]) -> io.Int.Input:
    """Sampling steps."""
    return io.Int.Input("steps", default=default, min=1, max=200,
                        tooltip=f"Sampling steps (the release uses {INFERENCE_DEFAULTS['steps']} Euler steps).")


def size_inputs(default: Optional[int] = None, what: str = "Output") -> list:
    """``width`` and ``height`` in pixels, multiples of 16 (codec x patch of the default model);
    both default to ``default``, or to the embedded default's width and height when None."""
    return [io.Int.Input("width", default=MODEL_DEFAULTS["width"] if default is None else default, min=16, max=MAX_SIDE,
                         step=16, tooltip=f"{what} width in pixels, a multiple of 16."),
            io.Int.Input("height", default=MODEL_DEFAULTS["height"] if default is None else default, min=16, max=MAX_SIDE,
                         step=16,
                         tooltip=f"{what} height in pixels, a multiple of 16.")]


def conditioning_tensor(cond) -> torch.Tensor:
    """ComfyUI CONDITIONING ``[[tensor [B, L, D], {...}], ...]`` -> the first tensor."""
    if isinstance(cond, torch.Tensor):
        return cond
    if not cond or not isinstance(cond[0], (list, tuple)):
        raise ValueError("expected CONDITIONING from a text-encode node")
    return cond[0][0]


def make_conditioning(tensor: torch.Tensor) -> list:
    """A text embedding ``[B, L, D]`` -> ComfyUI CONDITIONING ``[[tensor, {}]]``."""
    return [[tensor, {}]]
