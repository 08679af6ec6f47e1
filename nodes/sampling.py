"""UnityVideo's sampling add-ons in core's terms: control guidance as a GUIDER and Yume's
time-travel sampling (TTS-ODE / TTS-SDE) and anti-artifact mechanism (AAM) as SAMPLERs, all for
core ``SamplerCustomAdvanced``, and Yume's block-residual cache as a MODEL patch (any core sampler).

There is no sampling loop here: the two SAMPLERs hand core's model (the guider behind
``KSamplerX0Inpaint``) to the one integrator of the library, :func:`unity_core.sampling.integrator.integrate`,
as the velocity v = (x - x0) / sigma, with its time-travel or AAM step hooks; the guider only changes
what one model evaluation returns. Switched off (control_cfg 1; lookahead 0 and no SDE; k 0) each
gives exactly the plain core result (core's CFGGuider / euler).
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

import comfy.samplers
from comfy.k_diffusion.sampling import to_d

from unity_core.sampling.integrator import aam_hook, cfg_mix, control_guidance, integrate
from unity_core.sampling.sampler import check_control_cfg
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, project_low_frequency, rank_blocks_by_removal

from .model import BLOCK_CACHE_KEY, COND_RGB_ONLY, COND_TASK, transformer_call
from .schema import UnityNode, out


class ControlGuider(comfy.samplers.CFGGuider):
    """Core's CFG guider plus UnityVideo's control guidance for controllable generation.

    In denoised (x0) terms, on the RGB half of the packed latent:
    ``x0 = x0_cfg + (control_cfg - 1) * (x0(prompt, control) - x0(prompt, RGB stream alone))``, the
    same as :func:`unity_core.sampling.sample`'s velocity form (x0 = x - sigma v is linear in v).
    The free branch is the positive conditioning with ``unityvideo_rgb_only`` set (one more
    forward of the RGB tokens alone). ``control_cfg == 1`` is core's CFGGuider exactly.
    """

    def set_conds(self, positive, negative):
        self.task = positive[0][1].get(COND_TASK) if positive else None
        free = [[c[0], {**c[1], COND_RGB_ONLY: True}] for c in positive]
        self.inner_set_conds({"positive": positive, "negative": negative, "free": free})

    def set_control(self, cfg: float, control_cfg: float):
        self.set_cfg(cfg)
        self.control_cfg = float(control_cfg)
        if getattr(self, "task", None) is not None:  # conditioning from UnityVideo Task says which task
            check_control_cfg(self.task, self.control_cfg)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        if self.control_cfg == 1.0:
            return super().predict_noise(x, timestep, model_options, seed)
        pos, neg, free = (self.conds.get(k) for k in ("positive", "negative", "free"))
        guided = self.cfg != 1.0
        conds = [pos, free] + ([neg] if guided else [])
        outs = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        x0_pos, x0_free = outs[0], outs[1]
        x0 = cfg_mix(x0_pos, outs[2], self.cfg) if guided else x0_pos
        w = x.shape[-1] // 2
        rgb = control_guidance(x0[..., :w], x0_pos[..., :w], x0_free[..., :w], self.control_cfg)
        return torch.cat([rgb, x0[..., w:]], dim=-1)


class UnityVideoControlGuider(UnityNode):
    """Guider for SamplerCustomAdvanced: CFG on the prompt plus control guidance (flow2video), which
    pushes the RGB prediction from the RGB stream alone towards the one that sees the control.
    control_cfg 1 = core's CFGGuider (the release); the embedded default follows a depth control
    far better at 8; each step then costs one more forward of the RGB tokens."""

    DISPLAY = "UnityVideo Control Guider"
    GROUP = "sampling"
    INPUTS = [
        io.Model.Input("model", tooltip="The UnityVideo MODEL."),
        io.Conditioning.Input("positive", tooltip="Positive from UnityVideo Task (task flow2video)."),
        io.Conditioning.Input("negative", tooltip="Negative from UnityVideo Task."),
        io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.1,
                       tooltip="Classifier-free guidance on the content prompt; 1 = off (the release)."),
        io.Float.Input("control_cfg", default=1.0, min=1.0, max=30.0, step=0.5,
                       tooltip="Control guidance; 1 = off (the release)."),
    ]
    OUTPUTS = [out(io.Guider, "guider", "For SamplerCustomAdvanced.")]

    @classmethod
    def execute(cls, model, positive, negative, cfg, control_cfg) -> io.NodeOutput:
        guider = ControlGuider(model)
        guider.set_conds(positive, negative)
        guider.set_control(cfg, control_cfg)
        return io.NodeOutput(guider)


class _CoreVelocity:
    """Core's k-diffusion model (``model(x, sigma * s_in, **extra_args) -> x0``) as the
    integrator's velocity v = (x - x0) / sigma (core's ``to_d``), and core's step callback
    (``{"x", "i", "sigma", "sigma_hat", "denoised"}`` after each step, with step i's first x0)."""

    def __init__(self, model, x, extra_args, callback, sigmas):
        self.model, self.extra_args, self.k_callback, self.sigmas = model, extra_args or {}, callback, sigmas
        self.s_in = x.new_ones([x.shape[0]])
        self.first = None  # (x, x0) of the current step's first evaluation

    def __call__(self, x, sigma):
        denoised = self.model(x, sigma * self.s_in, **self.extra_args)
        if self.first is None:
            self.first = (x, denoised)
        return to_d(x, sigma, denoised)

    def callback(self, step, total, x):
        i = step - 1
        if self.k_callback is not None:
            self.k_callback({"x": self.first[0], "i": i, "sigma": self.sigmas[i], "sigma_hat": self.sigmas[i],
                             "denoised": self.first[1]})
        self.first = None


@torch.no_grad()
def sample_time_travel(model, x, sigmas, extra_args=None, callback=None, disable=None, interval=2, lookahead=0,
                       sde=False, eta=0.3, noise_seed=0):
    """Yume's time-travel sampling as a k-diffusion style sampler (``x`` at ``sigmas[0]``, returns x at
    ``sigmas[-1]``): :func:`unity_core.sampling.integrator.integrate` with :class:`TimeTravel`.

    Every ``interval`` steps it looks ``lookahead`` Euler steps ahead and takes the real step with the
    velocity found there; ``sde`` takes the TTS-SDE step of :func:`unity_core.sampling.yume.sde_step`
    (noise from a CPU generator seeded with ``noise_seed``). lookahead 0 without SDE is core's Euler.
    """
    velocity = _CoreVelocity(model, x, extra_args, callback, sigmas)
    return integrate(velocity, x, sigmas, time_travel=TimeTravel(interval, lookahead, sde, eta),
                     generator=torch.Generator().manual_seed(int(noise_seed)), callback=velocity.callback)


class UnityVideoTimeTravelSampler(UnityNode):
    """Yume's time-travel sampling (TTS-ODE, or TTS-SDE) as a SAMPLER for SamplerCustomAdvanced.
    lookahead 0 with sde off is core's euler exactly."""

    DISPLAY = "UnityVideo Time Travel Sampler"
    GROUP = "sampling"
    INPUTS = [
        io.Int.Input("lookahead", default=2, min=0, max=10, tooltip="Look-ahead l in steps (0 = off; Yume's code uses 2)."),
        io.Int.Input("interval", default=2, min=1, max=20, tooltip="Travel every s steps (Yume's code: 2, paper: 5)."),
        io.Boolean.Input("sde", default=False, tooltip="Use the TTS-SDE update instead of the ODE."),
        io.Float.Input("eta", default=0.3, min=0.0, max=2.0, step=0.05, tooltip="SDE noise scale eta (paper: 0.3)."),
        io.Int.Input("noise_seed", default=0, min=0, max=2**63 - 1, tooltip="Seed of the SDE's step noise."),
    ]
    OUTPUTS = [out(io.Sampler, "sampler", "For SamplerCustomAdvanced.")]

    @classmethod
    def execute(cls, lookahead, interval, sde, eta, noise_seed) -> io.NodeOutput:
        TimeTravel(interval, lookahead, sde, eta)  # validates the settings
        return io.NodeOutput(comfy.samplers.KSAMPLER(
            sample_time_travel, extra_options={"interval": interval, "lookahead": lookahead, "sde": sde, "eta": eta,
                                               "noise_seed": noise_seed}))


class BlockCachePatch:
    """Yume's block-residual cache on a UnityVideo MODEL (held in ``transformer_options``).

    The ``blocks`` least important blocks (ranked by :func:`unity_core.sampling.yume.rank_blocks_by_removal`
    on the first model evaluation of a sampling run, with that evaluation's own inputs) reuse their
    residual for ``interval - 1`` evaluations out of ``interval``. One
    :class:`unity_core.sampling.yume.BlockCache` per conditioning batch (core's cond uuids), so a
    positive and a negative run separately never share residuals; all are reset when a sampling
    run starts (an OUTER_SAMPLE wrapper).
    """

    def __init__(self, blocks: int, interval: int):
        self.blocks, self.interval = int(blocks), int(interval)
        self.order = None
        self.caches = {}

    def reset(self):
        self.order, self.caches = None, {}

    @property
    def skipped(self) -> int:
        return sum(c.skipped for c in self.caches.values())

    def runner(self, model, x, timestep, context, unity, transformer_options, inner=None):
        """The block runner for this evaluation (starts the evaluation of its cond batch's cache)."""
        if self.order is None:
            self.order = self._rank(model, x, timestep, context, unity)
        key = tuple(str(u) for u in transformer_options.get("uuids", ())) or ("all",)
        cache = self.caches.get(key)
        if cache is None:
            cache = self.caches[key] = BlockCache(self.order[: self.blocks], self.interval)
        cache.start_evaluation()
        if inner is None:
            return cache
        return lambda i, fn, h: cache(i, lambda y: inner(i, fn, y), h)

    def _rank(self, model, x, timestep, context, unity):
        class _Forward:  # rank_blocks_by_removal's view of the model: blocks + a forward taking block_runner
            blocks = model.diffusion_model.blocks

            def __call__(self, block_runner=None):
                return transformer_call(model, x, timestep, context, unity, block_runner)

        return rank_blocks_by_removal(_Forward())


def _reset_block_cache(executor, *args, **kwargs):
    patch = executor.class_obj.model_options["transformer_options"][BLOCK_CACHE_KEY]
    patch.reset()
    try:
        return executor(*args, **kwargs)
    finally:
        patch.caches = {}


class UnityVideoBlockCache(UnityNode):
    """Yume's block-residual cache as a model patch: the least important blocks (ranked once per
    run by the error of skipping each) reuse their residual between refreshes. Works with any core
    sampler; 0 cached blocks gives the MODEL unchanged."""

    DISPLAY = "UnityVideo Block Cache"
    GROUP = "sampling"
    INPUTS = [
        io.Model.Input("model", tooltip="The UnityVideo MODEL."),
        io.Int.Input("cache_blocks", default=0, min=0, max=64,
                     tooltip="Number of blocks that reuse their residual (0 = off; Yume caches 10 of 40)."),
        io.Int.Input("cache_interval", default=2, min=1, max=10, tooltip="Recompute cached blocks every n model evaluations."),
    ]
    OUTPUTS = [out(io.Model, "model", "The MODEL with the cache patch.")]

    @classmethod
    def execute(cls, model, cache_blocks, cache_interval) -> io.NodeOutput:
        import comfy.patcher_extension

        patched = model.clone()
        if cache_blocks == 0 or cache_interval == 1:
            return io.NodeOutput(patched)
        patched.model_options["transformer_options"][BLOCK_CACHE_KEY] = BlockCachePatch(cache_blocks, cache_interval)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, BLOCK_CACHE_KEY, _reset_block_cache)
        return io.NodeOutput(patched)


@torch.no_grad()
def sample_aam(model, x, sigmas, extra_args=None, callback=None, disable=None, k=5, packed=True):
    """Yume's anti-artifact mechanism as a k-diffusion style sampler: two passes of
    :func:`unity_core.sampling.integrator.integrate` (Euler) with AAM's hook.

    Pass 1: Euler over ``sigmas`` with the guider's cfg set to 1, from the initial noise ``x``, gives
    z_orig. Pass 2: Euler with the guider's cfg; before each of the first ``k`` steps the
    low-frequency part of x is replaced by that of (1 - t) z_orig + t noise
    (:class:`unity_core.sampling.yume.AAM`). ``packed``: the latent is a UnityVideo task latent
    (RGB | modality in width), projected per stream so the blur never crosses the seam. Starts
    from pure noise (denoise 1). ``k = 0`` is core's Euler exactly.
    """
    velocity = _CoreVelocity(model, x, extra_args, callback, sigmas)
    if k <= 0:
        return integrate(velocity, x, sigmas, callback=velocity.callback)
    aam = AAM(k=k)
    guider = getattr(model, "inner_model", None)  # core's KSamplerX0Inpaint around the guider
    cfg = getattr(guider, "cfg", None)
    if cfg is not None:
        guider.cfg = 1.0
    try:
        z_orig = integrate(_CoreVelocity(model, x, extra_args, None, sigmas), x, sigmas)
    finally:
        if cfg is not None:
            guider.cfg = cfg

    def low(z):
        if not packed:
            return project_low_frequency(z, aam)
        w = z.shape[-1] // 2
        return torch.cat([project_low_frequency(z[..., :w], aam), project_low_frequency(z[..., w:], aam)], dim=-1)

    return integrate(velocity, x, sigmas, before_step=aam_hook(aam, z_orig, x, sigmas, low), callback=velocity.callback)


class UnityVideoAAMSampler(UnityNode):
    """Yume's anti-artifact mechanism (AAM) as a SAMPLER for SamplerCustomAdvanced: a first Euler pass
    without CFG, then the guided pass with the low frequencies of its first k steps taken from the
    first pass. k 0 is core's euler exactly. Use with denoise 1."""

    DISPLAY = "UnityVideo AAM Sampler"
    GROUP = "sampling"
    INPUTS = [
        io.Int.Input("k", default=5, min=0, max=50, tooltip="Replace the low-frequency part during the first k steps (0 = off; paper: 5)."),
        io.Boolean.Input("packed", default=True,
                         tooltip="The latent is a UnityVideo task latent (RGB | modality side by side): project each stream "
                                 "on its own. Off for a plain Wan / Yume latent."),
    ]
    OUTPUTS = [out(io.Sampler, "sampler", "For SamplerCustomAdvanced.")]

    @classmethod
    def execute(cls, k, packed) -> io.NodeOutput:
        AAM(k=k)  # validates
        return io.NodeOutput(comfy.samplers.KSAMPLER(sample_aam, extra_options={"k": k, "packed": packed}))
