"""Samplers on an analytic flow, Yume's add-ons, dynamic noising, interruption, objective."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import TINY_DIT
from unity_core.model import UnityVideoConfig, UnityVideoTransformer
from unity_core.sampling import AAM, BlockCache, SamplingInterrupted, TimeTravel, sample
from unity_core.sampling.yume import range_projector, rank_blocks_by_removal
from unity_core.train.objective import flow_matching_loss, sample_task, sample_timesteps

MU, S = 0.7, 0.5  # data x ~ N(MU, S^2) per element


class GaussianFlow(torch.nn.Module):
    """Exact marginal flow-matching velocity for Gaussian data (z_t = (1-t) x + t eps).

    sigma(t)^2 = (1-t)^2 S^2 + t^2; the ODE from t = 1 maps eps to MU + S eps at t = 0, and
    v(z, t) = -MU + sigma'(t) (z - (1-t) MU) / sigma(t). A clean-stream velocity of 1e6 makes
    any leak of the conditioning stream's velocity visible."""

    def __init__(self):
        super().__init__()
        self.calls = []

    @staticmethod
    def v(z, t):
        sig = torch.sqrt((1 - t) ** 2 * S**2 + t**2)
        dsig = (-(1 - t) * S**2 + t) / sig
        return -MU + dsig * (z - (1 - t) * MU) / sig

    def forward(self, rgb, timestep, context, mod=None, modality=None, mctx=None, block_runner=None, return_dict=False):
        """The transformer's call signature; returns the tuple form (what the sampler asks for)."""
        self.calls.append(rgb.shape[0])
        t = (timestep / 1000.0).double().reshape(-1, 1, 1, 1, 1)
        return self.v(rgb.double(), t).to(rgb.dtype), None if mod is None else self.v(mod.double(), t).to(mod.dtype)


SHAPE = (1, 2, 1, 4, 4)


def _noise(seed=0):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_euler_converges_at_first_order():
    eps = _noise()
    exact = MU + S * eps
    ctx = torch.zeros(1, 1, 4)
    errors = []
    for steps in (4, 8, 16, 32):
        out = sample(GaussianFlow(), "text2all", context=ctx, modality="depth", rgb_noise=eps, modality_noise=eps, steps=steps)
        errors.append((out.rgb_latent - exact).abs().max().item())
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(1.7 < r < 2.3 for r in ratios), (errors, ratios)


def test_diffusers_unipc_beats_euler_on_the_same_budget():
    eps = _noise(1)
    exact = MU + S * eps
    ctx = torch.zeros(1, 1, 4)
    kw = dict(context=ctx, modality="depth", rgb_noise=eps.float(), modality_noise=eps.float(), steps=8)
    e_euler = (sample(GaussianFlow(), "text2all", **kw).rgb_latent - exact).abs().max()
    e_unipc = (sample(GaussianFlow(), "text2all", scheduler="unipc", **kw).rgb_latent - exact).abs().max()
    assert e_unipc < e_euler / 3, (e_unipc, e_euler)


@pytest.mark.parametrize("task,clean", [("video2flow", "rgb"), ("flow2video", "modality")])
def test_clean_stream_untouched_and_its_velocity_unused(task, clean):
    eps = _noise(2).float()
    cond = torch.randn(SHAPE)
    before = cond.clone()
    kw = {"rgb_latent" if clean == "rgb" else "modality_latent": cond}
    kw["modality_noise" if clean == "rgb" else "rgb_noise"] = eps

    class Leaky(GaussianFlow):
        def forward(self, rgb, timestep, context, mod=None, modality=None, mctx=None, block_runner=None, return_dict=False):
            v_rgb, v_mod = super().forward(rgb, timestep, context, mod, modality, mctx)
            big = lambda v: torch.full_like(v, 1e6)  # noqa: E731
            return (big(v_rgb), v_mod) if clean == "rgb" else (v_rgb, big(v_mod))

    out = sample(Leaky(), task, context=torch.zeros(1, 1, 4), modality="depth", steps=6, **kw)
    ref = sample(GaussianFlow(), "text2all", context=torch.zeros(1, 1, 4), modality="depth", steps=6,
                 rgb_noise=eps, modality_noise=eps)
    kept, made = (out.rgb_latent, out.modality_latent) if clean == "rgb" else (out.modality_latent, out.rgb_latent)
    assert kept is cond and torch.equal(cond, before)
    torch.testing.assert_close(made, ref.rgb_latent)


def test_yume_addons_switched_off_equal_plain_euler():
    eps = _noise(3).float()
    kw = dict(context=torch.zeros(1, 1, 4), modality="depth", rgb_noise=eps, modality_noise=eps, steps=7)
    plain = sample(GaussianFlow(), "text2all", **kw)
    for extra in (dict(time_travel=TimeTravel(lookahead=0)), dict(time_travel=TimeTravel(lookahead=0, sde=True, eta=0.0)),
                  dict(aam=AAM(k=0)), dict(cache=BlockCache(blocks=()))):
        out = sample(GaussianFlow(), "text2all", **kw, **extra)
        assert torch.equal(out.rgb_latent, plain.rgb_latent), extra
        assert out.model_evaluations == plain.model_evaluations


def test_time_travel_costs_lookahead_evaluations_and_stays_on_the_flow():
    eps = _noise(4)
    kw = dict(context=torch.zeros(1, 1, 4), modality="depth", rgb_noise=eps, modality_noise=eps, steps=10)
    out = sample(GaussianFlow(), "text2all", time_travel=TimeTravel(interval=2, lookahead=2), **kw)
    # travel at steps 0, 2, 4, 6 (8 + 2 = 10 is past the end): 3 evaluations each, 1 otherwise
    assert out.model_evaluations == 4 * 3 + 6
    assert (out.rgb_latent - (MU + S * eps)).abs().max() < 0.1


def test_sde_is_reproducible_with_a_seed():
    eps = _noise(5).float()
    kw = dict(context=torch.zeros(1, 1, 4), modality="depth", rgb_noise=eps, modality_noise=eps, steps=8,
              time_travel=TimeTravel(interval=2, lookahead=1, sde=True, eta=0.3))
    a = sample(GaussianFlow(), "text2all", seed=11, **kw)
    b = sample(GaussianFlow(), "text2all", seed=11, **kw)
    c = sample(GaussianFlow(), "text2all", seed=12, **kw)
    assert torch.equal(a.rgb_latent, b.rgb_latent)
    assert not torch.equal(a.rgb_latent, c.rgb_latent)


def test_seeded_noise_is_reproducible_and_batched():
    kw = dict(context=torch.zeros(2, 1, 4), modality="depth", shape=(2, 2, 1, 4, 4), steps=3)
    a = sample(GaussianFlow(), "text2all", seed=7, **kw)
    b = sample(GaussianFlow(), "text2all", seed=7, **kw)
    assert torch.equal(a.rgb_latent, b.rgb_latent) and torch.equal(a.modality_latent, b.modality_latent)
    assert not torch.equal(a.rgb_latent[0], a.rgb_latent[1])


def test_cfg_runs_one_batched_forward_per_step():
    model = GaussianFlow()
    ctx = torch.zeros(1, 3, 4)
    eps = _noise(6).float()
    out = sample(model, "text2all", context=ctx, negative_context=ctx, cfg=5.0, modality="depth",
                 rgb_noise=eps, modality_noise=eps, steps=4)
    assert model.calls == [2, 2, 2, 2]
    plain = sample(GaussianFlow(), "text2all", context=ctx, modality="depth", rgb_noise=eps, modality_noise=eps, steps=4)
    torch.testing.assert_close(out.rgb_latent, plain.rgb_latent)  # same prompt both ways: guidance cancels
    with pytest.raises(ValueError, match="negative_context"):
        sample(GaussianFlow(), "text2all", context=ctx, cfg=3.0, modality="depth", shape=SHAPE, steps=2)


def test_interruption_stops_within_one_step_and_leaves_no_state():
    model = GaussianFlow()
    cache = BlockCache(blocks=[0], interval=2)
    cond = torch.randn(SHAPE)
    before = cond.clone()
    seen = []
    with pytest.raises(SamplingInterrupted):
        sample(model, "video2flow", context=torch.zeros(1, 1, 4), modality="depth", rgb_latent=cond, steps=10, seed=0,
               cache=cache, callback=lambda i, n, r, m: seen.append(i), should_interrupt=lambda: len(seen) >= 2)
    assert len(model.calls) == 2 and seen == [1, 2]
    assert torch.equal(cond, before) and not cache._residuals


def _tiny_model():
    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config(UnityVideoConfig(**{**TINY_DIT, "num_layers": 4, "in_channels": 4,
                                                                       "out_channels": 4, "text_dim": 8})).eval()
    with torch.no_grad():
        model.flow_in.weight.normal_(0, 0.1)
    return model


def test_block_cache_on_the_real_model():
    model = _tiny_model()
    ctx = torch.randn(1, 3, 8)
    kw = dict(context=ctx, modality="depth", shape=(1, 4, 2, 4, 4), steps=6, seed=3)
    with torch.no_grad():
        plain = sample(model, "text2all", **kw)
        same = sample(model, "text2all", cache=BlockCache(blocks=[1, 2], interval=1), **kw)
        cache = BlockCache(blocks=[1, 2], interval=2)
        cached = sample(model, "text2all", cache=cache, **kw)
        order = rank_blocks_by_removal(model, torch.randn(1, 4, 2, 4, 4), torch.tensor([500.0]), ctx)
    assert torch.equal(same.rgb_latent, plain.rgb_latent)
    assert cache.skipped == 2 * 3  # 2 blocks skipped on every second of 6 evaluations
    assert 0 < (cached.rgb_latent - plain.rgb_latent).abs().max() < 0.5 * plain.rgb_latent.abs().max()
    assert sorted(order) == [0, 1, 2, 3]


def test_aam_projector_and_two_passes():
    p = range_projector(8, (0.1, 0.8, 0.1), 2)
    torch.testing.assert_close(p @ p, p)
    assert round(float(torch.trace(p))) == 4  # rank = kept rows
    model = GaussianFlow()
    ctx = torch.zeros(1, 1, 4)
    eps = _noise(7).float()
    out = sample(model, "text2all", context=ctx, negative_context=ctx, cfg=2.0, modality="depth",
                 rgb_noise=eps, modality_noise=eps, steps=6, aam=AAM(k=2, first_pass_steps=3))
    assert model.calls == [1] * 3 + [2] * 6
    assert out.model_evaluations == 9
    plain = sample(GaussianFlow(), "text2all", context=ctx, modality="depth", rgb_noise=eps, modality_noise=eps, steps=6)
    assert not torch.equal(out.rgb_latent, plain.rgb_latent)  # the low-frequency anchor acted
    assert (out.rgb_latent - (MU + S * eps)).abs().max() < 0.35  # and stayed on the flow


def test_objective_routes_tasks_and_supervises_the_noised_stream():
    g = torch.Generator().manual_seed(0)
    counts = {}
    for _ in range(2000):
        name = sample_task(g)
        counts[name] = counts.get(name, 0) + 1
    assert abs(counts["text2all"] / 2000 - 0.5) < 0.05
    t = sample_timesteps(4000, shift=5.0, generator=g)
    assert 0 < t.min() and t.max() < 1 and t.median() > 0.7  # shift 5 favours high noise

    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, rgb, timestep, ctx, mod, modality, mctx, return_dict=False):
            seen["rgb"], seen["mod"] = rgb, mod
            return torch.zeros_like(rgb), torch.zeros_like(mod)

    x_r, x_m = torch.randn(2, 4, 1, 2, 2), torch.randn(2, 4, 1, 2, 2)
    loss, info = flow_matching_loss(Spy(), x_r, x_m, "video2flow", "depth", torch.zeros(2, 1, 8), None, generator=g)
    assert seen["rgb"] is x_r and "loss_rgb" not in info and "loss_modality" in info
    assert math.isclose(loss.item(), info["loss_modality"], rel_tol=1e-6)


def test_bad_sampler_arguments():
    ctx = torch.zeros(1, 1, 4)
    with pytest.raises(ValueError, match="needs the clean rgb_latent"):
        sample(GaussianFlow(), "estimation", context=ctx, modality="depth", shape=SHAPE)
    with pytest.raises(ValueError, match="unknown scheduler"):
        sample(GaussianFlow(), "text2all", context=ctx, modality="depth", shape=SHAPE, scheduler="ddim")
    with pytest.raises(ValueError, match="shape"):
        sample(GaussianFlow(), "text2all", context=ctx, modality="depth")


def test_control_guidance_pushes_from_the_rgb_stream_alone_towards_the_control():
    class TwoWays(torch.nn.Module):
        """RGB velocity 1 without a control, 3 with one: guidance g gives 1 + g * (3 - 1)."""

        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, rgb, timestep, context, mod=None, modality=None, mctx=None, block_runner=None, return_dict=False):
            self.calls.append("control" if mod is not None else "alone")
            v = torch.full_like(rgb, 3.0 if mod is not None else 1.0)
            return v, None if mod is None else torch.zeros_like(mod)

    ctx, ctrl = torch.zeros(1, 1, 4), torch.zeros(SHAPE)
    model = TwoWays()
    out = sample(model, "flow2video", context=ctx, modality="depth", modality_latent=ctrl, steps=2, seed=0,
                 control_cfg=4.0, rgb_noise=torch.zeros(SHAPE))
    # Euler from sigma 1 to 0 with a constant velocity v: x0 = noise - v = -(1 + 4 * 2)
    assert torch.allclose(out.rgb_latent, torch.full(SHAPE, -9.0))
    assert model.calls == ["control", "alone"] * 2 and out.model_evaluations == 4
    assert out.modality_latent is ctrl
    with pytest.raises(ValueError, match="control_cfg guides controllable generation"):
        sample(model, "video2flow", context=ctx, modality="depth", rgb_latent=ctrl, control_cfg=2.0)


def test_unseeded_sampling_leaves_the_global_rng_alone_and_joint_noise_follows_the_prompt():
    ctx = torch.zeros(1, 1, 4, dtype=torch.float64)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    sample(GaussianFlow(), "text2all", context=ctx, modality="depth", shape=SHAPE, steps=1)
    assert torch.equal(torch.rand(3), expected)
    seen = {}

    class Where(GaussianFlow):
        def forward(self, rgb, *args, **kwargs):
            seen["device"] = rgb.device
            return super().forward(rgb, *args, **kwargs)

    # no clean latent tells the device: the noise goes where the prompt (and so the model) is
    sample(Where(), "text2all", context=torch.zeros(1, 1, 4, device="meta"), modality="depth", shape=SHAPE,
           steps=1, seed=0)
    assert seen["device"].type == "meta"


def test_aam_second_pass_does_not_reuse_the_first_pass_residuals():
    model = _tiny_model()
    ctx = torch.randn(1, 3, 8)
    kw = dict(context=ctx, modality="depth", shape=(1, 4, 2, 4, 4), seed=3)

    class Log(BlockCache):
        def start_evaluation(self):
            super().start_evaluation()
            self.reused.append(False)

        def __call__(self, index, fn, x):
            before = self.skipped
            out = super().__call__(index, fn, x)
            self.reused[-1] |= self.skipped > before
            return out

    cache = Log(blocks=[1, 2], interval=2)
    cache.reused = []
    with torch.no_grad():
        sample(model, "text2all", steps=2, aam=AAM(k=1, first_pass_steps=3), cache=cache, **kw)
    # pass 1 (3 evaluations) reuses on its second; pass 2 (2 evaluations) starts by computing every block
    assert cache.reused == [False, True, False, False, True]


def test_explore_objective_rejects_a_bad_new_frames():
    x = torch.randn(1, 4, 3, 2, 2)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="new_frames must be 1 to 3"):
            flow_matching_loss(GaussianFlow(), x, None, "explore_segment", None, torch.zeros(1, 1, 4), None,
                               new_frames=bad)


def test_sde_last_step_adds_no_noise_and_aam_settings_are_checked():
    from unity_core.sampling.yume import sde_step

    z, v = torch.randn(1, 2, 1, 4, 4), torch.randn(1, 2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sde_step(z, v, 0.05, -0.05, 0.3, g), z - 0.05 * v)  # lands on t = 0: plain Euler
    assert not torch.equal(sde_step(z, v, 0.1, -0.05, 0.3, g), z - 0.05 * v)  # earlier steps are stochastic
    for bad in (dict(stride=1), dict(stride=0), dict(k=-1), dict(first_pass_steps=0)):
        with pytest.raises(ValueError, match="AAM needs"):
            AAM(**bad)


def test_the_one_integrator_euler_hooks_and_guidance():
    """integrate(): Euler by default, time travel with lookahead 0 is Euler exactly, the step hook
    replaces the update, before_step runs before each velocity, callback after each step; Guidance
    batches [positive; negative] and mixes as CFG."""
    from unity_core.sampling.integrator import Guidance, integrate
    from unity_core.sampling.schedule import flow_sigmas

    sigmas = flow_sigmas(6, 3.0)
    x0 = _noise(1).float()
    seen, done = [], []

    def velocity(x, s):
        seen.append(float(s))
        return GaussianFlow.v(x.double(), s.double()).float()

    plain = integrate(velocity, x0, sigmas, callback=lambda i, n, x: done.append((i, n)))
    assert done == [(i, 6) for i in range(1, 7)] and len(seen) == 6
    by_hand = x0
    for i in range(6):
        by_hand = by_hand + (sigmas[i + 1] - sigmas[i]) * velocity(by_hand, sigmas[i])
    assert torch.equal(plain, by_hand)
    assert torch.equal(integrate(velocity, x0, sigmas, time_travel=TimeTravel(2, 0)), plain)
    seen.clear()
    integrate(velocity, x0, sigmas, time_travel=TimeTravel(2, 2))
    assert len(seen) == 6 + 2 * 2  # steps 0 and 2 look 2 ahead (step 4 would pass the end)
    halved = integrate(velocity, x0, sigmas, step=lambda i, x, v: x + 0.5 * (sigmas[i + 1] - sigmas[i]) * v)
    assert not torch.allclose(halved, plain)
    order = []
    integrate(lambda x, s: order.append("v") or torch.zeros_like(x), x0, sigmas[:3],
              before_step=lambda i, x: order.append(f"b{i}") or x)
    assert order == ["b0", "v", "b1", "v"]
    with pytest.raises(SamplingInterrupted):
        integrate(velocity, x0, sigmas, should_interrupt=lambda: True)
    with pytest.raises(ValueError, match="at least 2"):
        integrate(velocity, x0, sigmas[:1])
    pos, neg = torch.randn(2, 3, 4), torch.randn(1, 5, 4)
    g = Guidance(3.0, pos, neg)
    (x2,) = g.batch(torch.ones(2, 7))
    assert g.context.shape == (4, 5, 4) and x2.shape == (4, 7)
    v = torch.randn(4, 7)
    (mixed,) = g.mix((v,), 2)
    torch.testing.assert_close(mixed, v[2:] + 3.0 * (v[:2] - v[2:]))
    off = Guidance(1.0, pos)
    assert off.context is pos and off.batch(x2) == (x2,)
    with pytest.raises(ValueError, match="negative_context"):
        Guidance(2.0, pos)
