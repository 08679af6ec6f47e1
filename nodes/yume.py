"""A Yume-5B walk segment in core's terms: conditioning + LATENT for any core sampler, and the
core sampling of one segment that UnityVideo Explore runs for every segment of a Yume-5B walk.

A segment's LATENT is ``[B, C, N + 8, H, W]``: the N clean history latents, then the 8 new
frames, with a ``noise_mask`` 0 over the history (core's samplers keep it clean, t = 0) and 1
over the new frames. The conditioning carries N (``unityvideo_yume_history``), from which the
MODEL runs Yume-5B's packed forward (history tokens at t = 0, new tokens at t; ``nodes/model.py``).
So core ``KSampler`` / ``SamplerCustomAdvanced`` sample a segment with every MODEL patch
(``ModelSamplingSD3``, LoRA, ``EasyCache``, UnityVideo Block Cache, ``TorchCompileModel``) and any
SAMPLER, and core ``VAEDecode`` decodes the result: the history then the new segment. The sampled
LATENT is the next segment's history.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from comfy_api.latest import io

from unity_core.explore.qcm import SENTENCE_SETS, parse_script
from unity_core.explore.samplers import HISTORY_MODES, yume_history
from unity_core.model.yume import YUME_NEW_FRAMES

from .common import make_conditioning
from .model import COND_YUME_HISTORY
from .schema import UnityNode, out

#: Yume-5B's sampler defaults in core's terms (``sample_5b.py``): 4 steps of euler on the
#: ``simple`` schedule (linspace(1, 0) shifted by the MODEL's shift, 7 for Yume-5B), no CFG.
YUME_STEPS, YUME_SAMPLER, YUME_SCHEDULER, YUME_CFG = 4, "euler", "simple", 1.0


def segment_conditioning(cond, history_latents: int):
    """A CONDITIONING with the segment's history length N written in (each entry copied)."""
    return [[c[0], {**c[1], COND_YUME_HISTORY: int(history_latents)}] for c in cond]


def segment_latent(history: Optional[torch.Tensor], new_frames: int = YUME_NEW_FRAMES,
                   size: Optional[tuple] = None, channels: int = 48) -> dict:
    """The LATENT of one segment: ``samples`` ``[B, C, N + new_frames, H, W]`` (history, then zeros)
    and ``noise_mask`` ``[1, 1, N + new_frames, H, W]`` (0 over the history, 1 over the new frames).

    Args:
        history: ``[B, C, N, H, W]`` clean latents in core's LATENT space, or None (a first
            text-to-video segment: then ``size`` = (H, W) gives the latent size).

    Raises:
        ValueError: history not 5-D, or neither history nor size.
    """
    if history is None:
        if size is None:
            raise ValueError("a first segment without history needs the latent size (H, W)")
        return {"samples": torch.zeros((1, channels, new_frames, *size))}
    if history.ndim != 5:
        raise ValueError(f"history must be a video LATENT [B, C, N, H, W], got {tuple(history.shape)}")
    b, c, n, h, w = history.shape
    samples = torch.cat([history, history.new_zeros((b, c, new_frames, h, w))], dim=2)
    mask = torch.ones((1, 1, n + new_frames, h, w))
    mask[:, :, :n] = 0.0
    return {"samples": samples, "noise_mask": mask}


def sample_segment(model, positive, negative, history: Optional[torch.Tensor], noise: torch.Tensor, *,
                   sigmas: torch.Tensor, sampler, cfg: float = YUME_CFG, seed: int = 0,
                   callback: Optional[Callable] = None) -> torch.Tensor:
    """Sample one Yume-5B segment with core's sampling (``comfy.sample.sample_custom``: the MODEL is
    loaded by ComfyUI's memory manager with its patches and wrappers, then guided by core's
    ``CFGGuider`` and integrated by ``sampler``).

    Args:
        model: a Yume-5B MODEL (UnityVideo Loader), possibly patched.
        positive, negative: CONDITIONING of the segment's prompt (without the history length).
        history: ``[B, C, N, H, W]`` clean history in the MODEL's latent space (``process_in``
            applied, as the library's walk holds it), or None.
        noise: ``[B, C, 8, H, W]`` the new frames' noise.
        sigmas: ``[steps + 1]`` noise levels (e.g. ``comfy.samplers.calculate_sigmas``).
        sampler: a core SAMPLER (``comfy.samplers.sampler_object("euler")``, ours, ...).
        callback: core's step callback ``(step, x0, x, total_steps)`` (e.g. ``latent_preview.prepare_callback``).

    Returns:
        the new frames ``[B, C, 8, H, W]`` in the MODEL's latent space, on ``noise``'s device.
    """
    import comfy.sample

    fmt = model.model.latent_format
    n = 0 if history is None else history.shape[2]
    raw = None if history is None else fmt.process_out(history.float().cpu())
    latent = segment_latent(raw, noise.shape[2], tuple(noise.shape[-2:]), noise.shape[1])
    full_noise = noise.float().cpu()
    if n:
        full_noise = torch.cat([torch.zeros_like(raw), full_noise], dim=2)
    samples = comfy.sample.sample_custom(model, full_noise, cfg, sampler, sigmas, segment_conditioning(positive, n),
                                         segment_conditioning(negative, n), latent["samples"],
                                         noise_mask=latent.get("noise_mask"), callback=callback, disable_pbar=True,
                                         seed=seed)
    return fmt.process_in(samples[:, :, n:].float()).to(noise.device)


class UnityVideoYumeSegment(UnityNode):
    """One segment of a Yume-5B walk for core samplers: the history LATENT (VAE Encode of the start
    image repeated into a 17-frame still clip, or the previous segment's sampled LATENT), the
    content prompt and one camera action -> positive / negative and the LATENT [history | 8 new
    frames] with a noise mask that keeps the history clean. Sample with KSampler (Yume-5B: 4
    steps, euler, simple, cfg 1; the MODEL's shift is 7) and decode with VAE Decode; chain the
    sampled LATENT into the next segment. UnityVideo Explore runs the same per segment."""

    DISPLAY = "UnityVideo Yume Segment"
    GROUP = "explore"
    INPUTS = [
        io.Clip.Input("clip", tooltip="CLIPLoader type wan with UMT5-XXL (encodes the segment's prompt)."),
        io.Latent.Input("history", tooltip="The walk so far: VAE Encode of the start (still clip), or the previous "
                                           "segment's sampled LATENT."),
        io.String.Input("prompt", multiline=True, default="", tooltip="What the world looks like."),
        io.String.Input("action", default="W", tooltip="This segment's camera action: W/A/S/D (pairs like W+A), "
                                                       "arrows turn, · stands still."),
        io.Combo.Input("sentence_set", options=list(SENTENCE_SETS), default="v1_5",
                       tooltip="Yume's action sentences (v1_5: what Yume-5B is trained on)."),
        io.Combo.Input("history_mode", options=list(HISTORY_MODES), default="all",
                       tooltip="all latents so far, or start+last (the start's latents and the last segment)."),
        io.Int.Input("start_latents", default=5, min=1, max=1366,
                     tooltip="Latents of the start kept by start+last (5 for one image)."),
        io.String.Input("negative_prompt", multiline=True, default="", tooltip="Used only when cfg > 1."),
    ]
    OUTPUTS = [io.Conditioning.Output(id="positive", display_name="positive", tooltip="For the sampler."),
               io.Conditioning.Output(id="negative", display_name="negative", tooltip="For the sampler."),
               out(io.Latent, "latent", "[history | 8 new frames] with the history masked clean.")]

    @classmethod
    def execute(cls, clip, history, prompt, action, sentence_set, history_mode, start_latents,
                negative_prompt) -> io.NodeOutput:
        """Build the segment. Raises ValueError: not exactly one action, or a bad history LATENT."""
        from unity_core.explore.prompts import segment_prompts

        from .adapters import ComfyClipTextEncoder

        actions = parse_script(action)
        if len(actions) != 1:
            raise ValueError(f"action: one camera action per segment, got {len(actions)} ({action!r}); chain one "
                             "UnityVideo Yume Segment per action")
        encoder = ComfyClipTextEncoder(clip)
        texts, _ = segment_prompts(encoder, prompt, actions, sentence_set)
        kept = yume_history(history["samples"], int(start_latents), history_mode)
        latent = segment_latent(kept)
        n = kept.shape[2]
        positive = segment_conditioning(make_conditioning(encoder.encode(texts).cpu()), n)
        negative = segment_conditioning(make_conditioning(encoder.encode([negative_prompt]).cpu()), n)
        return io.NodeOutput(positive, negative, latent)
