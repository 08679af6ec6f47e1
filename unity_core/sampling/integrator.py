"""The one flow-matching integrator of the project, and the one CFG helper.

Every sampler here (the pipeline's :func:`~unity_core.sampling.sample`, the Yume walks of
:mod:`unity_core.explore.samplers`, and the Time Travel / AAM SAMPLERs of ``nodes/sampling.py``)
integrates with :func:`integrate`; they differ only in the velocity they pass in (which model
forward, which guidance) and in the step hooks:

- **Euler** (default): x <- x + (sigma_next - sigma) v, the release's update.
- **Time travel** (Yume, :class:`~unity_core.sampling.yume.TimeTravel`): every ``interval`` steps,
  ``lookahead`` Euler steps ahead, and the real step takes the velocity found there; with
  ``sde=True`` the TTS-SDE update (:func:`~unity_core.sampling.yume.sde_step`).
- **AAM** (Yume's anti-artifact mechanism): a ``before_step`` hook that replaces the latent's low
  frequencies before the velocity of the first k steps (:func:`aam_hook`).
- **Other solvers** (diffusers' UniPC / DPM++): a ``step`` hook that takes the velocity and
  returns the next latent.

Flow matching as the release: z_t = (1 - t) x + t noise, velocity v = noise - x; sigmas run
from 1 (noise) to 0 (data).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

from unity_core.sampling.progress import check_interrupt
from unity_core.sampling.tasks import add_noise
from unity_core.sampling.yume import AAM, TimeTravel, project_low_frequency, sde_step

#: ``velocity(x, sigma) -> v``: x ``[B, ...]`` at noise level ``sigma`` (a 0-dim tensor of the sigmas' dtype).
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def integrate(velocity: Velocity, x: torch.Tensor, sigmas: torch.Tensor, *,
              time_travel: Optional[TimeTravel] = None, generator: Optional[torch.Generator] = None,
              before_step: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None,
              step: Optional[Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]] = None,
              callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
              should_interrupt: Optional[Callable[[], bool]] = None) -> torch.Tensor:
    """Integrate a noised latent along ``sigmas`` (the flow-matching ODE, or Yume's TTS-SDE).

    Args:
        velocity: ``velocity(x, sigma) -> v`` of the same shape as ``x`` (one model evaluation,
            guidance included).
        x: the latent at ``sigmas[0]``, any shape ``[B, ...]`` (e.g. ``[B, C, F, H, W]``).
        sigmas: ``[steps + 1]`` noise levels, decreasing (usually from 1 to 0).
        time_travel: TTS / TTS-SDE (:class:`TimeTravel`); None or lookahead 0 without SDE = Euler.
        generator: CPU generator of the TTS-SDE's step noise.
        before_step: ``before_step(i, x) -> x`` before step i's velocity (AAM's replacement).
        step: ``step(i, x, v) -> x_next`` replaces the Euler / SDE update (a diffusers solver).
        callback: ``callback(step, steps, x)`` after each step (step is 1-based).
        should_interrupt: checked before each step; True raises ``SamplingInterrupted``.

    Returns:
        the latent at ``sigmas[-1]``, same shape and dtype as ``x``.

    Raises:
        ValueError: fewer than 2 sigmas.
        SamplingInterrupted: when ``should_interrupt()`` turns True.
    """
    steps = int(sigmas.shape[0]) - 1
    if steps < 1:
        raise ValueError(f"sigmas must hold at least 2 levels, got {tuple(sigmas.shape)}")
    tt = time_travel
    for i in range(steps):
        check_interrupt(should_interrupt, i, steps)
        if before_step is not None:
            x = before_step(i, x)
        s, s_next = sigmas[i], sigmas[i + 1]
        v = velocity(x, s)
        dt = s_next - s
        if tt is not None and tt.lookahead > 0 and i % tt.interval == 0 and i + tt.lookahead < steps:
            z = x
            for j in range(tt.lookahead):
                if j > 0:
                    v = velocity(z, sigmas[i + j])
                z = z + (sigmas[i + j + 1] - sigmas[i + j]) * v
            v = velocity(z, sigmas[i + tt.lookahead])
        if step is not None:
            x = step(i, x, v)
        elif tt is not None and tt.sde:
            x = sde_step(x, v, float(s), float(dt), tt.eta, generator)
        else:
            x = x + dt * v
        if callback is not None:
            callback(i + 1, steps, x)
    return x


def aam_hook(aam: AAM, anchor: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor,
             project: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
    """AAM's ``before_step`` hook for :func:`integrate`: before each of the first ``aam.k`` steps,
    z <- B((1 - t) anchor + t noise) + (z - B z) at t = ``sigmas[i]`` (B: :func:`project_low_frequency`,
    or ``project``, e.g. per stream of a packed latent).

    Args:
        anchor: z_orig, the first pass's result, shaped as the latent.
        noise: the initial noise both passes start from.
    """
    low = project or (lambda z: project_low_frequency(z, aam))

    def hook(i: int, z: torch.Tensor) -> torch.Tensor:
        if i >= aam.k:
            return z
        target = add_noise(anchor, noise, sigmas[i].reshape(1).expand(z.shape[0]))
        return low(target) + (z - low(z))

    return hook


# ----------------------------------------------------------------------------------------------
# Guidance
# ----------------------------------------------------------------------------------------------


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


class Guidance:
    """Classifier-free guidance as one batched forward of 2B, for any model call.

    ``context`` is the text to call the model with (``[2B, L, D]`` when guided, else the positive
    as given); :meth:`batch` doubles the other inputs of the forward; :meth:`mix` turns the
    batched outputs back into B guided ones. ``cfg == 1`` is a pass-through (one forward of B).

    Raises:
        ValueError: cfg != 1 without a negative context.
    """

    def __init__(self, cfg: float, context: torch.Tensor, negative_context: Optional[torch.Tensor] = None):
        self.cfg = float(cfg)
        self.guided = self.cfg != 1.0
        self.positive = context
        self.context = guidance_context(context, negative_context) if self.guided else context

    def batch(self, *tensors: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], ...]:
        """Each tensor ``[B, ...]`` -> ``[2B, ...]`` when guided (None stays None)."""
        if not self.guided:
            return tensors
        return tuple(None if t is None else torch.cat([t, t]) for t in tensors)

    def mix(self, outputs: Sequence[Optional[torch.Tensor]], batch: int) -> Tuple[Optional[torch.Tensor], ...]:
        """Batched predictions ``[2B, ...]`` -> guided ``[B, ...]`` (:func:`guidance_mix`)."""
        if not self.guided:
            return tuple(outputs)
        return tuple(guidance_mix(v, batch, self.cfg) for v in outputs)


__all__ = ["Guidance", "Velocity", "aam_hook", "cfg_mix", "control_guidance", "guidance_context", "guidance_mix",
           "integrate"]
