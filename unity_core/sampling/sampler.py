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
from unity_core.sampling.progress import StepCallback, check_interrupt
from unity_core.sampling.schedule import flow_sigmas, to_timestep
from unity_core.sampling.tasks import add_noise, noised_streams, packed_noise
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, project_low_frequency, sde_step

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


def guidance_context(context: torch.Tensor, negative_context: Optional[torch.Tensor]) -> torch.Tensor:
    """The batched text of a CFG forward: ``[2B, L, D]`` = [positive; negative], both zero-padded
    to the longer length (zero rows are what the text encoders pad with, so padding keeps the
    meaning). A negative of batch 1 is repeated over the B samples.

    Raises:
        ValueError: no ``negative_context`` (CFG needs one, e.g. the encoding of the empty prompt).
    """
    if negative_context is None:
        raise ValueError("cfg != 1 needs negative_context (e.g. the encoding of the empty prompt)")
    negative_context = negative_context.to(context.device)
    if negative_context.shape[0] != context.shape[0]:
        negative_context = negative_context.expand(context.shape[0], -1, -1)
    length = max(context.shape[1], negative_context.shape[1])
    pad = lambda c: torch.nn.functional.pad(c, (0, 0, 0, length - c.shape[1]))  # noqa: E731
    return torch.cat([pad(context), pad(negative_context)])


def cfg_mix(positive: torch.Tensor, negative: torch.Tensor, cfg: float) -> torch.Tensor:
    """Classifier-free guidance: ``negative + cfg * (positive - negative)`` (velocities or x0)."""
    return negative + cfg * (positive - negative)


def guidance_mix(v: Optional[torch.Tensor], batch: int, cfg: float) -> Optional[torch.Tensor]:
    """CFG on a batched prediction ``[2B, ...]`` ([positive; negative], as
    :func:`guidance_context` orders them): :func:`cfg_mix`; None stays None."""
    if v is None:
        return None
    return cfg_mix(v[:batch], v[batch:], cfg)


def control_guidance(guided: torch.Tensor, with_control: torch.Tensor, without_control: torch.Tensor,
                     control_cfg: float) -> torch.Tensor:
    """UnityVideo's control guidance for controllable generation (ours; the release has none):
    ``guided + (control_cfg - 1) * (with_control - without_control)`` on the RGB prediction, where
    ``guided`` is the (CFG-)guided prediction, ``with_control`` the positive prompt's with the
    control, ``without_control`` the positive prompt's from the RGB stream alone. Linear, so it
    holds for velocities and for x0 alike; ``control_cfg == 1`` returns ``guided``."""
    if control_cfg == 1.0:
        return guided
    return guided + (control_cfg - 1.0) * (with_control - without_control)


class _Velocity:
    """Model call with CFG (one batched forward of 2B), control guidance (one more forward of the
    RGB stream alone) and evaluation counting."""

    def __init__(self, model, context, modality, modality_context, cfg, negative_context, cache, control_cfg=1.0):
        self.model, self.modality, self.cfg, self.cache = model, modality, float(cfg), cache
        self.context, self.modality_context = context, modality_context
        self.positive, self.control_cfg = context, float(control_cfg)
        if self.cfg != 1.0:
            self.context = guidance_context(context, negative_context)
            if modality_context is not None:
                self.modality_context = torch.cat([modality_context, modality_context])
        self.evaluations = 0

    def __call__(self, rgb, mod, sigma) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        batch = rgb.shape[0]
        if self.cache is not None:
            self.cache.start_evaluation()
        self.evaluations += 1
        guided = self.cfg != 1.0
        if guided:
            rgb, mod = torch.cat([rgb, rgb]), (None if mod is None else torch.cat([mod, mod]))
        t = to_timestep(sigma, rgb.shape[0], rgb.device)
        with step_cache_context(self.model, t):  # diffusers' step caches (caches.py), if enabled
            v_rgb, v_mod = self.model(rgb, t, self.context, mod, self.modality, self.modality_context,
                                      block_runner=self.cache, return_dict=False)
        v_rgb_control = v_rgb[:batch]  # with the control and the content prompt
        if guided:
            v_rgb, v_mod = guidance_mix(v_rgb, batch, self.cfg), guidance_mix(v_mod, batch, self.cfg)
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
        modality: modality name (needed by every task; the modality embedding is chosen by it).
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
    try:
        velocity = _Velocity(model, context, modality, modality_context, 1.0 if aam else cfg, negative_context, cache,
                             control_cfg)
        runs = []
        if aam is not None and aam.k > 0:
            first_steps = aam.first_pass_steps or steps
            pass1 = _integrate(velocity, start_rgb, start_mod, rgb_noised, mod_noised, first_steps, shift, scheduler,
                               None, None, should_interrupt, time_travel, generator)
            runs.append(velocity.evaluations)
            if cache is not None:  # pass 2 starts afresh: no residuals of pass 1's last steps
                cache.clear()
            reset_step_caches(model)
            velocity = _Velocity(model, context, modality, modality_context, cfg, negative_context, cache, control_cfg)
            anchor = (pass1, (noise_rgb, noise_mod))
        else:
            if aam is not None:  # k == 0: plain sampling with the requested CFG
                velocity = _Velocity(model, context, modality, modality_context, cfg, negative_context, cache, control_cfg)
            anchor = None
        x_rgb, x_mod = _integrate(velocity, start_rgb, start_mod, rgb_noised, mod_noised, steps, shift, scheduler,
                                  callback, anchor and (aam, anchor), should_interrupt, time_travel, generator)
        runs.append(velocity.evaluations)
    finally:
        if cache is not None:
            cache.clear()
        reset_step_caches(model)
    return SampleResult(x_rgb, x_mod, sum(runs))


def _integrate(velocity, x_rgb, x_mod, rgb_noised, mod_noised, steps, shift, scheduler, callback, aam_anchor,
               should_interrupt, time_travel, generator, sigmas=None):
    """Integrate the noised streams from sigma 1 to 0; the clean stream is passed through.
    ``sigmas`` (``[steps + 1]``, Euler only) replaces the grid of ``steps`` and ``shift``."""
    sched = None
    sigmas = flow_sigmas(steps, shift) if sigmas is None else sigmas
    if scheduler != "euler":
        sched = _make_scheduler(scheduler, steps, shift, sigmas)
        sigmas = sched.sigmas.to(torch.float32)

    def pack(r, m):
        parts = [p for p, on in ((r, rgb_noised), (m, mod_noised)) if on]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def unpack(z, r, m):
        if rgb_noised and mod_noised:
            c = r.shape[1]
            return z[:, :c], z[:, c:]
        return (z, m) if rgb_noised else (r, z)

    for i in range(steps):
        check_interrupt(should_interrupt, i, steps)
        s, s_next = sigmas[i], sigmas[i + 1]
        if aam_anchor is not None:
            aam, ((o_rgb, o_mod), (n_rgb, n_mod)) = aam_anchor
            if i < aam.k:
                t = s.reshape(1)
                if rgb_noised:
                    x_rgb = _aam_replace(x_rgb, o_rgb, n_rgb, t, aam)
                if mod_noised:
                    x_mod = _aam_replace(x_mod, o_mod, n_mod, t, aam)
        v_rgb, v_mod = velocity(x_rgb, x_mod, s)
        dt = s_next - s
        tt = time_travel
        if tt is not None and tt.lookahead > 0 and i % tt.interval == 0 and i + tt.lookahead < steps:
            z_rgb, z_mod = x_rgb, x_mod
            for j in range(tt.lookahead):
                step_dt = sigmas[i + j + 1] - sigmas[i + j]
                if j > 0:
                    v_rgb, v_mod = velocity(z_rgb, z_mod, sigmas[i + j])
                if rgb_noised:
                    z_rgb = z_rgb + step_dt * v_rgb
                if mod_noised:
                    z_mod = z_mod + step_dt * v_mod
            v_rgb, v_mod = velocity(z_rgb, z_mod, sigmas[i + tt.lookahead])
        if sched is not None:
            z = sched.step(pack(v_rgb, v_mod), sched.timesteps[i], pack(x_rgb, x_mod)).prev_sample
            x_rgb, x_mod = unpack(z, x_rgb, x_mod)
        elif tt is not None and tt.sde:
            z = sde_step(pack(x_rgb, x_mod), pack(v_rgb, v_mod), float(s), float(dt), tt.eta, generator)
            x_rgb, x_mod = unpack(z, x_rgb, x_mod)
        else:
            if rgb_noised:
                x_rgb = x_rgb + dt * v_rgb
            if mod_noised:
                x_mod = x_mod + dt * v_mod
        if callback is not None:
            callback(i + 1, steps, x_rgb, x_mod)
    return x_rgb, x_mod


def integrate(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor, *,
              time_travel: Optional[TimeTravel] = None, generator: Optional[torch.Generator] = None,
              callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
              should_interrupt: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """Integrate one noised latent along ``sigmas`` with the loop of :func:`sample` (Euler, time
    travel and TTS-SDE as there): the sampler of models called through their own velocity, such
    as Yume-5B's packed-history forward.

    Args:
        velocity: ``velocity(x, sigma) -> v`` (sigma a 0-dim tensor of ``sigmas``' dtype).
        x: ``[B, C, F, H, W]`` the noise at ``sigmas[0]``.
        sigmas: ``[steps + 1]`` from 1 down to 0 (:func:`flow_sigmas`).
        time_travel: TTS / TTS-SDE (off: plain Euler, x <- x + (s_next - s) v).
        generator: noise of the TTS-SDE.
        callback: ``callback(step, steps, x)`` after each step.
        should_interrupt: checked before each step; True raises ``SamplingInterrupted``.

    Returns:
        the latent at the last sigma.
    """
    steps = int(sigmas.shape[0]) - 1
    if steps < 1:
        raise ValueError(f"sigmas must hold at least 2 levels, got {tuple(sigmas.shape)}")
    cb = None if callback is None else (lambda i, n, r, m: callback(i, n, r))  # noqa: E731
    out, _ = _integrate(lambda r, m, s: (velocity(r, s), None), x, None, True, False, steps, 1.0, "euler", cb, None,
                        should_interrupt, time_travel, generator, sigmas=sigmas)
    return out


def _aam_replace(z, z_orig, noise, t, aam: AAM):
    target = add_noise(z_orig, noise, t.expand(z.shape[0]))
    return project_low_frequency(target, aam) + (z - project_low_frequency(z, aam))
