"""Shared input definitions and conversions for the node wrappers."""

from __future__ import annotations

from typing import Any, Dict

import torch

from unity_core.constants import MODALITIES, TASKS
from unity_core.sampling import SCHEDULERS

MODALITY_CHOICES = list(MODALITIES)
TASK_CHOICES = list(TASKS)

MODEL = "UNITYVIDEO_MODEL"
MODALITY = "UNITYVIDEO_MODALITY"
TASK = "UNITYVIDEO_TASK"
VALUES = "UNITYVIDEO_VALUES"
OPTIONS = "UNITYVIDEO_SAMPLER_OPTIONS"

MODALITY_INPUT = (MODALITY_CHOICES, {"default": "depth", "tooltip": "Auxiliary modality: depth, raft (optical flow), segmentation, skeleton or densepose."})
SEED_INPUT = ("INT", {"default": 42, "min": 0, "max": 2**63 - 1, "control_after_generate": True,
                      "tooltip": "Noise seed; the same seed and settings reproduce the same result."})
STEPS_INPUT = ("INT", {"default": 20, "min": 1, "max": 200, "tooltip": "Sampling steps (the release uses 20 Euler steps)."})
CFG_INPUT = ("FLOAT", {"default": 1.0, "min": 1.0, "max": 20.0, "step": 0.1,
                       "tooltip": "Classifier-free guidance on the content prompt; 1 = off (the release). Above 1 guides away from the negative prompt: the connected one, else the empty prompt (models with a built-in text encoder)."})
SHIFT_INPUT = ("FLOAT", {"default": 1.0, "min": 0.1, "max": 20.0, "step": 0.1,
                         "tooltip": "Timestep shift; 1 = the release's uniform schedule, higher spends more steps at high noise."})
SCHEDULER_INPUT = (list(SCHEDULERS), {"default": "euler", "tooltip": "euler = the release's loop; others are diffusers' flow-matching schedulers."})


def conditioning_tensor(cond) -> torch.Tensor:
    """ComfyUI CONDITIONING ``[[tensor [B, L, D], {...}], ...]`` -> the first tensor."""
    if isinstance(cond, torch.Tensor):
        return cond
    if not cond or not isinstance(cond[0], (list, tuple)):
        raise ValueError("expected CONDITIONING from a text-encode node")
    return cond[0][0]


def make_conditioning(tensor: torch.Tensor) -> list:
    return [[tensor, {}]]


def latent_dict(samples: torch.Tensor, normalized: bool = True) -> Dict[str, Any]:
    """LATENT for ComfyUI; ``unityvideo_normalized`` marks latents already in the DiT's space."""
    return {"samples": samples, "unityvideo_normalized": normalized}


def to_model_space(latent: Dict[str, Any]) -> torch.Tensor:
    """LATENT -> the DiT's normalised latent. Latents from our codec are already normalised;
    others (ComfyUI's VAE Encode with the Wan2.2 VAE) go through ComfyUI's Wan2.2 latent format."""
    x = latent["samples"]
    if latent.get("unityvideo_normalized", False):
        return x
    import comfy.latent_formats

    return comfy.latent_formats.Wan22().process_in(x)


def from_model_space(x: torch.Tensor, like: Dict[str, Any]) -> Dict[str, Any]:
    """The inverse of :func:`to_model_space`, keeping the convention of ``like``."""
    if like.get("unityvideo_normalized", False):
        return latent_dict(x, True)
    import comfy.latent_formats

    return latent_dict(comfy.latent_formats.Wan22().process_out(x), False)
