"""Flow-matching sampling for UnityVideo's three tasks, with CFG, shift, diffusers schedulers
and Yume's time travel, AAM and block cache.

The default reproduces the release's ``denoise`` loop exactly: Euler on ``linspace(1, 0)``
(float32), timestep ``t * 1000``, no CFG, no shift, only the noised stream(s) updated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from unity_core.constants import resolve_task
from unity_core.sampling.caches import check_step_cache, reset_step_caches, step_cache_context
from unity_core.sampling.integrator import (  # noqa: F401  (cfg_mix & co. keep their old import path)
    Guidance,
    aam_hook,
    cfg_mix,
    control_guidance,
    guidance_context,
    guidance_mix,
    integrate,
)
from unity_core.sampling.progress import StepCallback
from unity_core.sampling.schedule import flow_sigmas, to_timestep
from unity_core.sampling.tasks import noised_streams, packed_noise
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, project_low_frequency

#: Sampler names accepted by :func:`sample`: ours, then diffusers' flow-matching schedulers.
SCHEDULERS = ("euler", "flow_euler", "unipc", "dpmpp_2m")


@dataclass
class SampleResult:
    """Final latents ``[B, C, F, H, W]`` (the clean stream is the very tensor passed in) and the
    number of model evaluations (a CFG pair counts once: it is one batched forward; control
    guidance's forward of the RGB stream alone counts once more)."""

    rgb_latent: Optional[torch.Tensor]
    modality_latent: Optional[torch.Tensor]
    model_evaluations: int = 0


class _Velocity:
    """The model call of one UnityVideo task with CFG (:class:`Guidance`, one batched forward of
    2B), control guidance (one more forward of the RGB stream alone) and evaluation counting."""

    def __init__(self, model, context, modality, modality_context, cfg, negative_context, cache, control_cfg=1.0):
        self.model, self.modality, self.cache = model, modality, cache
        self.guidance = Guidance(cfg, context, negative_context)
        self.modality_context = self.guidance.batch(modality_context)[0]
        self.positive, self.control_cfg = context, float(control_cfg)
        self.evaluations = 0

    def __call__(self, rgb, mod, sigma) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch = rgb.shape[0]
        if self.cache is not None:
            self.cache.start_evaluation()
        self.evaluations += 1
        rgb, mod = self.guidance.batch(rgb, mod)
        t = to_timestep(sigma, rgb.shape[0], rgb.device)
        with step_cache_context(self.model, t):  # diffusers' step caches (caches.py), if enabled
            v_rgb, v_mod = self.model(rgb, t, self.guidance.context, mod, self.modality, self.modality_context,
                                      block_runner=self.cache, return_dict=False)
        v_rgb_control = v_rgb[:batch]  # with the control and the content prompt
        v_rgb, v_mod = self.guidance.mix((v_rgb, v_mod), batch)
        if self.control_cfg != 1.0:
            # control guidance: away from the RGB stream alone (a plain Wan / text2video forward)
            self.evaluations += 1
            with step_cache_context(self.model, t[:batch], "control"):
                v_free = self.model(rgb[:batch], t[:batch], self.positive, return_dict=False)[0]
            v_rgb = control_guidance(v_rgb, v_rgb_control, v_free, self.control_cfg)
        return v_rgb, v_mod


def _make_scheduler(name: str, steps: int, shift: float, sigmas: torch.Tensor):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if name == "flow_euler":
        sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
        sched.set_timesteps(sigmas=sigmas[:-1].tolist())
    elif name == "unipc":
        sched = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift)
        sched.set_timesteps(steps)
    else:
        sched = DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                            flow_shift=shift, algorithm_type="dpmsolver++", solver_order=2)
        sched.set_timesteps(steps)
    return sched


def check_control_cfg(task: str, control_cfg: float) -> None:
    """Control guidance applies to controllable generation (``flow2video``) only: the one home of
    that rule, for :func:`sample` and the ComfyUI guider.

    Raises:
        ValueError: ``control_cfg != 1`` with another task.
    """
    rgb_noised, mod_noised = noised_streams(task)
    if float(control_cfg) != 1.0 and not (rgb_noised and not mod_noised):
        raise ValueError(f"control_cfg guides controllable generation (flow2video) only, not {resolve_task(task)}; "
                         "set it to 1")


def _check_inputs(task, rgb_noised, mod_noised, scheduler, time_travel, control_cfg, rgb_latent, modality_latent,
                  shape, rgb_noise, context):
    """:func:`sample`'s argument checks; returns the latent shape, dtype and device of the streams."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    if time_travel is not None and scheduler != "euler":
        raise ValueError("time travel runs on the 'euler' scheduler only")
    check_control_cfg(task, control_cfg)
    if not rgb_noised and rgb_latent is None:
        raise ValueError(f"task {task} needs the clean rgb_latent (the video to estimate from)")
    if not mod_noised and modality_latent is None:
        raise ValueError(f"task {task} needs the clean modality_latent (the control video)")
    ref = rgb_latent if rgb_latent is not None else modality_latent
    if shape is None:
        if ref is None and rgb_noise is None:
            raise ValueError("pass shape=[B, C, F, H, W] (from the codec's latent_shape) for joint generation")
        shape = tuple((ref if ref is not None else rgb_noise).shape)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 5:
        raise ValueError(f"shape must be [B, C, F, H, W], got {shape}")
    dtype = ref.dtype if ref is not None else torch.float32
    # joint generation has no clean latent: its noise goes where the prompt is (the model's device)
    device = ref.device if ref is not None else (rgb_noise.device if rgb_noise is not None else context.device)
    return shape, dtype, device


def _initial_noise(shape, dtype, device, generator, rgb_noised, mod_noised, rgb_noise, modality_noise):
    """The noised streams' starting noise: given tensors (checked against ``shape``), else one draw
    over the packed latent, as ComfyUI draws it (:func:`~unity_core.sampling.tasks.packed_noise`)."""
    def draw(given):
        if given is not None:
            if tuple(given.shape) != shape:
                raise ValueError(f"noise shape {tuple(given.shape)} does not match latent shape {shape}")
            return given
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)

    if rgb_noise is None and modality_noise is None:
        rgb_noise, modality_noise = (n.to(device=device, dtype=dtype) for n in packed_noise(shape, generator))
    return (draw(rgb_noise) if rgb_noised else None), (draw(modality_noise) if mod_noised else None)


def sample(
    model,
    task: str,
    *,
    context: torch.Tensor,
    modality: Optional[str] = None,
    modality_context: Optional[torch.Tensor] = None,
    rgb_latent: Optional[torch.Tensor] = None,
    modality_latent: Optional[torch.Tensor] = None,
    shape: Optional[Sequence[int]] = None,
    steps: int = 20,
    shift: float = 1.0,
    cfg: float = 1.0,
    negative_context: Optional[torch.Tensor] = None,
    control_cfg: float = 1.0,
    scheduler: str = "euler",
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    rgb_noise: Optional[torch.Tensor] = None,
    modality_noise: Optional[torch.Tensor] = None,
    callback: Optional[StepCallback] = None,
    should_interrupt: Optional[Callable[[], bool]] = None,
    time_travel: Optional[TimeTravel] = None,
    aam: Optional[AAM] = None,
    cache: Optional[BlockCache] = None,
) -> SampleResult:
    """Sample one UnityVideo task.

    Args:
        model: a :class:`~unity_core.model.UnityVideoTransformer` (or anything with its forward).
        task: ``text2all`` / ``video2flow`` / ``flow2video`` or a paper alias.
        context: content prompt tokens ``[B, L, text_dim]``.
        modality: the release's modality name (needed by every task; the modality embedding is
            chosen by it); resolve a user's name first with :func:`unity_core.constants.resolve_modality`.
        modality_context: modality prompt tokens ``[B, L', text_dim]`` (None reuses ``context``).
        rgb_latent: the clean RGB latent ``[B, C, F, H, W]`` for ``video2flow``.
        modality_latent: the clean modality latent for ``flow2video``.
        shape: latent shape ``[B, C, F, H, W]`` of the noised streams when no latent gives it
            (take it from the codec's ``latent_shape``; never guess the compression).
        steps: number of sampling steps.
        shift: timestep shift (1 = the release's grid).
        cfg: classifier-free guidance scale on the content prompt; 1 = off (the release).
        negative_context: negative prompt tokens (needed when cfg != 1).
        control_cfg: control guidance for ``flow2video``; 1 = off (the release). The RGB velocity
            is pushed from the prediction without the control (the RGB stream alone, a plain
            text-to-video forward) towards the one with it:
            ``v = v_cfg + (control_cfg - 1) * (v(prompt, control) - v(prompt, no control))``,
            which is ``v_free + control_cfg * (v_control - v_free)`` without CFG. It costs one
            more forward of the RGB tokens per evaluation, and needs a model that can run the RGB
            stream alone (the 5B's Wan base; the default model learned it as ``text2video``).
        scheduler: ``euler`` (ours, the release's loop) or a diffusers flow-matching scheduler:
            ``flow_euler``, ``unipc``, ``dpmpp_2m``.
        seed / generator: noise source (a CPU generator). Without explicit noise both streams'
            noise is one draw over the packed ``[B, C, F, H, 2W]`` latent (RGB left), as ComfyUI
            draws a LATENT's noise from its seed (:func:`~unity_core.sampling.tasks.packed_noise`).
        rgb_noise / modality_noise: explicit initial noise instead of drawing it.
        callback: ``callback(step, total, rgb, modality)`` after each step.
        should_interrupt: checked before each step; True raises ``SamplingInterrupted``.
        time_travel / aam / cache: Yume's add-ons (see :mod:`unity_core.sampling.yume`).
            Diffusers' step caches are enabled on the model instead (``model.enable_cache``, see
            :mod:`unity_core.sampling.caches`); every evaluation then runs in the model's cache
            context and their state is reset before and after the run (and between AAM's passes).

    Returns:
        :class:`SampleResult`. The clean stream is returned as the same, untouched tensor.

    Raises:
        ValueError: unknown task or scheduler, a missing conditioning latent, missing shape,
            cfg without a negative prompt, time travel with a diffusers scheduler, control_cfg
            with a task other than ``flow2video``.
        SamplingInterrupted: when ``should_interrupt()`` turns True.
    """
    task = resolve_task(task)
    rgb_noised, mod_noised = noised_streams(task)
    shape, dtype, device = _check_inputs(task, rgb_noised, mod_noised, scheduler, time_travel, control_cfg,
                                         rgb_latent, modality_latent, shape, rgb_noise, context)
    if generator is None:  # a fresh CPU generator; seed=None draws a random seed, leaving torch's global RNG alone
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(int(seed))
        else:
            generator.seed()
    noise_rgb, noise_mod = _initial_noise(shape, dtype, device, generator, rgb_noised, mod_noised, rgb_noise,
                                          modality_noise)
    start_rgb = noise_rgb if rgb_noised else rgb_latent
    start_mod = noise_mod if mod_noised else modality_latent

    check_step_cache(model, control_cfg)
    if cache is not None:
        cache.reset()
    reset_step_caches(model)
    streams = _Streams(rgb_noised, mod_noised, start_rgb, start_mod)
    try:
        velocity = _Velocity(model, context, modality, modality_context, 1.0 if aam else cfg, negative_context, cache,
                             control_cfg)
        runs = []
        anchor = None
        if aam is not None and aam.k > 0:
            first_steps = aam.first_pass_steps or steps
            anchor = _run(streams, velocity, first_steps, shift, scheduler, None, None, should_interrupt, time_travel,
                          generator)
            runs.append(velocity.evaluations)
            if cache is not None:  # pass 2 starts afresh: no residuals of pass 1's last steps
                cache.clear()
            reset_step_caches(model)
        if aam is not None:  # pass 2 (or k == 0: plain sampling) with the requested CFG
            velocity = _Velocity(model, context, modality, modality_context, cfg, negative_context, cache, control_cfg)
        z = _run(streams, velocity, steps, shift, scheduler, callback, anchor is not None and (aam, anchor),
                 should_interrupt, time_travel, generator)
        runs.append(velocity.evaluations)
    finally:
        if cache is not None:
            cache.clear()
        reset_step_caches(model)
    x_rgb, x_mod = streams.unpack(z)
    return SampleResult(x_rgb, x_mod, sum(runs))


class _Streams:
    """The noised stream(s) of a task as the one latent the integrator moves: concatenated in
    channels (RGB first) when both are noised; the clean stream is passed through as given."""

    def __init__(self, rgb_noised, mod_noised, rgb, mod):
        self.rgb_noised, self.mod_noised, self.rgb, self.mod = rgb_noised, mod_noised, rgb, mod
        self.channels = rgb.shape[1] if rgb is not None else None

    def pack(self, r, m):
        parts = [p for p, on in ((r, self.rgb_noised), (m, self.mod_noised)) if on]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def unpack(self, z):
        if self.rgb_noised and self.mod_noised:
            return z[:, :self.channels], z[:, self.channels:]
        return (z, self.mod) if self.rgb_noised else (self.rgb, z)

    def per_stream(self, fn):
        """``fn`` applied to each noised stream of a packed latent (the blur never crosses streams)."""
        return lambda z: self.pack(*(None if p is None or not on else fn(p) for p, on in
                                     zip(self.unpack(z), (self.rgb_noised, self.mod_noised))))


def _run(streams: _Streams, velocity: _Velocity, steps, shift, scheduler, callback, aam_anchor, should_interrupt,
         time_travel, generator) -> torch.Tensor:
    """One pass of :func:`sample` through :func:`integrate`: the packed noised stream(s) from sigma 1
    to 0, with a diffusers solver's step hook, AAM's replacement hook (``aam_anchor`` = (aam,
    first-pass latent)) and the library's callback."""
    sigmas, step = flow_sigmas(steps, shift), None
    if scheduler != "euler":
        sched = _make_scheduler(scheduler, steps, shift, sigmas)
        sigmas = sched.sigmas.to(torch.float32)
        step = lambda i, x, v: sched.step(v, sched.timesteps[i], x).prev_sample  # noqa: E731
    noise = streams.pack(streams.rgb, streams.mod)
    before = None
    if aam_anchor:
        aam, anchor = aam_anchor
        before = aam_hook(aam, anchor, noise, sigmas, streams.per_stream(lambda z: project_low_frequency(z, aam)))
    cb = None if callback is None else (lambda i, n, z: callback(i, n, *streams.unpack(z)))  # noqa: E731
    return integrate(lambda z, s: streams.pack(*velocity(*streams.unpack(z), s)), noise, sigmas,
                     time_travel=time_travel, generator=generator, before_step=before, step=step, callback=cb,
                     should_interrupt=should_interrupt)
