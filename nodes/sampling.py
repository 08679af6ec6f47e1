"""Sampling nodes: empty latent, Yume options and the UnityVideo sampler."""

from __future__ import annotations

import torch

from unity_core.constants import resolve_task
from unity_core.sampling import AAM, BlockCache, SamplingInterrupted, TimeTravel, noised_streams, sample

from . import _comfy
from .common import (CFG_INPUT, MODALITY, MODEL, OPTIONS, SCHEDULER_INPUT, SEED_INPUT, SHIFT_INPUT, STEPS_INPUT, TASK,
                     conditioning_tensor, from_model_space, latent_dict, to_model_space)

WAN22_VAE = {"channels": 48, "temporal": 4, "spatial": 16}


class UnityVideoEmptyLatent:
    """An empty latent of the right size for joint generation (sizes from the model's codec;
    the Wan2.2 VAE's 48 channels, 4x time and 16x space for checkpoints without one)."""

    CATEGORY = "UnityVideo/sampling"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "The UnityVideo model (its codec fixes the latent size)."}),
            "num_frames": ("INT", {"default": 17, "min": 1, "max": 1025, "step": 4, "tooltip": "Video frames, 4k+1."}),
            "width": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Video width in pixels."}),
            "height": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Video height in pixels."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Videos per run."}),
        }}

    def make(self, model, num_frames, width, height, batch_size):
        if model.codec is not None:
            shape = model.codec.latent_shape(num_frames, height, width)
            return (latent_dict(torch.zeros(batch_size, *shape), True),)
        from unity_core.io import check_frame_count

        check_frame_count(num_frames)
        s = WAN22_VAE["spatial"]
        if height % s or width % s:
            raise ValueError(f"width and height must be multiples of {s} for the Wan2.2 VAE, got {width}x{height}")
        shape = (WAN22_VAE["channels"], (num_frames - 1) // WAN22_VAE["temporal"] + 1, height // s, width // s)
        return (latent_dict(torch.zeros(batch_size, *shape), False),)


class UnityVideoYumeOptions:
    """Yume's sampler add-ons: time travel (ODE or SDE), the anti-artifact mechanism (AAM) and
    block-residual caching. Every option at 0 reproduces the plain sampler."""

    CATEGORY = "UnityVideo/sampling"
    RETURN_TYPES = (OPTIONS,)
    RETURN_NAMES = ("options",)
    FUNCTION = "make"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "time_travel_lookahead": ("INT", {"default": 0, "min": 0, "max": 10, "tooltip": "Look-ahead l in steps (0 = off; Yume's code uses 2)."}),
            "time_travel_interval": ("INT", {"default": 2, "min": 1, "max": 20, "tooltip": "Travel every s steps (Yume's code: 2, paper: 5)."}),
            "sde": ("BOOLEAN", {"default": False, "tooltip": "Use the TTS-SDE update instead of the ODE."}),
            "eta": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "SDE noise scale eta (paper: 0.3)."}),
            "aam_steps": ("INT", {"default": 0, "min": 0, "max": 50, "tooltip": "AAM: replace the low-frequency part during the first K steps of a second pass (0 = off; paper: 5)."}),
            "cache_blocks": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Number of blocks that reuse their residual (0 = off), chosen by least effect of removal."}),
            "cache_interval": ("INT", {"default": 2, "min": 1, "max": 10, "tooltip": "Recompute cached blocks every n model evaluations."}),
        }}

    def make(self, time_travel_lookahead, time_travel_interval, sde, eta, aam_steps, cache_blocks, cache_interval):
        return ({"time_travel": TimeTravel(time_travel_interval, time_travel_lookahead, sde, eta) if (time_travel_lookahead or sde) else None,
                 "aam": AAM(k=aam_steps) if aam_steps else None,
                 "cache_blocks": cache_blocks, "cache_interval": cache_interval},)


class UnityVideoSampler:
    """Run one UnityVideo task with flow-matching sampling. The conditioning stream stays clean
    (t = 0): ``video2flow`` needs rgb_latent, ``flow2video`` needs modality_latent; ``text2all``
    takes its size from rgb_latent (e.g. UnityVideo Empty Latent)."""

    CATEGORY = "UnityVideo/sampling"
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("rgb_latent", "modality_latent")
    FUNCTION = "run"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "The UnityVideo model."}),
            "task": (TASK, {"tooltip": "From UnityVideo Task."}),
            "modality": (MODALITY, {"tooltip": "From UnityVideo Modality."}),
            "positive": ("CONDITIONING", {"tooltip": "Content prompt."}),
            "rgb_latent": ("LATENT", {"tooltip": "The RGB video's latent (clean input for estimation; size template for joint generation)."}),
            "seed": SEED_INPUT, "steps": STEPS_INPUT, "cfg": CFG_INPUT, "shift": SHIFT_INPUT, "scheduler": SCHEDULER_INPUT,
        }, "optional": {
            "modality_latent": ("LATENT", {"tooltip": "The control video's latent (required for flow2video)."}),
            "negative": ("CONDITIONING", {"tooltip": "Negative prompt, used when cfg > 1."}),
            "options": (OPTIONS, {"tooltip": "Yume options (time travel, AAM, cache)."}),
            "control_cfg": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 30.0, "step": 0.5,
                                      "tooltip": "flow2video only: control guidance, away from the RGB stream alone towards the control; 1 = off (the release). The embedded default follows a depth control far better at 8 (MODEL_CARD); costs one more forward a step."}),
        }}

    def run(self, model, task, modality, positive, rgb_latent, seed, steps, cfg, shift, scheduler,
            modality_latent=None, negative=None, options=None, control_cfg=1.0):
        rgb_noised, mod_noised = noised_streams(task)
        if not mod_noised and modality_latent is None:
            raise ValueError("flow2video needs a modality_latent (encode the control video)")
        rgb = to_model_space(rgb_latent)
        mod = to_model_space(modality_latent) if modality_latent is not None else None
        device = model.device
        opts = dict(options or {})
        cache = None
        if opts.get("cache_blocks"):
            from unity_core.sampling import rank_blocks_by_removal

            ctx = conditioning_tensor(positive).to(device)
            order = rank_blocks_by_removal(model.transformer, rgb[:1].to(device, model.transformer.dtype),
                                           torch.tensor([500.0], device=device), ctx[:1])
            cache = BlockCache(order[: opts["cache_blocks"]], opts["cache_interval"])
        batch = rgb.shape[0]
        ctx = conditioning_tensor(positive).to(device).expand(batch, -1, -1)
        mctx = modality["context"].to(device).expand(batch, -1, -1)
        neg = conditioning_tensor(negative).to(device).expand(batch, -1, -1) if negative is not None else None
        if cfg != 1.0 and neg is None:
            if getattr(model, "text_encoder", None) is None:
                raise ValueError(f"cfg {cfg} needs a negative prompt: connect 'negative' (e.g. a text encode of an "
                                 "empty prompt) or set cfg to 1")
            neg = model.encode_prompt("").to(device).expand(batch, -1, -1)  # as the pipeline's default negative
        try:
            with torch.no_grad():
                out = sample(model.transformer, task, context=ctx, modality=modality["name"], modality_context=mctx,
                             rgb_latent=None if rgb_noised else rgb.to(device), modality_latent=None if mod_noised else mod.to(device),
                             shape=tuple(rgb.shape), steps=steps, shift=shift, cfg=cfg, negative_context=neg,
                             control_cfg=control_cfg if resolve_task(task) == "flow2video" else 1.0,
                             scheduler=scheduler, seed=seed, callback=_comfy.progress(steps),
                             should_interrupt=_comfy.should_interrupt, time_travel=opts.get("time_travel"),
                             aam=opts.get("aam"), cache=cache)
        except SamplingInterrupted as err:
            raise _comfy.interrupted_error(err) from None
        like_mod = modality_latent if modality_latent is not None else rgb_latent
        return (from_model_space(out.rgb_latent.cpu(), rgb_latent), from_model_space(out.modality_latent.cpu(), like_mod))
