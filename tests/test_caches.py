"""Diffusers' step caches (``CacheMixin.enable_cache``) on the small preset, for the three forward
kinds: RGB-only (text-to-video sampling of the RGB stream), joint two-stream (estimation) and
Yume's packed history (a two-segment walk). Each cache with settings that skip nothing equals the
uncached run exactly; with permissive settings it skips work, counted by :class:`CacheCounter`."""

from __future__ import annotations

import pytest
import torch

from unity_core.model import UnityVideoTransformer, get_config
from unity_core.sampling import sample
from unity_core.sampling.caches import CacheCounter, MagRatioRecorder, cache_config, enabled_cache

STEPS = 6
#: (spec that skips nothing, permissive spec) per cache; MagCache gets flat ratios of 1.
SPECS = {
    "first-block": ("first-block:0", "first-block:10"),
    "mag": ("mag:0:0", "mag:10:10:0"),
    "taylorseer": ("taylorseer:1", "taylorseer:3"),
    "pab": ("pab:1", "pab:3"),
    "faster": ("faster:1", "faster:3"),
}


@pytest.fixture(scope="module")
def unity():
    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config("unityvideo-small").eval()
    with torch.no_grad():
        for p in [model.flow_in.weight, *model.modality_embeddings.values()]:
            p.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def yume():
    cfg = get_config("unityvideo-small")
    cfg.modality_stream, cfg.history_embeddings = False, True
    torch.manual_seed(0)
    return UnityVideoTransformer.from_config(cfg).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 16, 2, 8, 8, generator=g), torch.randn(1, 5, 384, generator=g)


def _run(kind, model, spec):
    """Latents of one run of ``kind`` with the cache of ``spec`` (None: uncached), and the counter."""
    x, ctx = _inputs()
    config = None if spec is None else cache_config(spec, model, steps=STEPS, mag_ratios=[1.0] * STEPS)
    with torch.no_grad(), enabled_cache(model, config), CacheCounter(model) as counter:
        if kind == "rgb":  # a plain Wan loop: the RGB-only forward under the sampler's integrator
            from unity_core.sampling.caches import reset_step_caches, step_cache_context
            from unity_core.sampling.sampler import integrate
            from unity_core.sampling.schedule import flow_sigmas, to_timestep

            def velocity(z, sigma):
                t = to_timestep(sigma, 1, z.device)
                with step_cache_context(model, t):
                    return model(z, t, ctx, return_dict=False)[0]

            reset_step_caches(model)
            out = [integrate(velocity, x, flow_sigmas(STEPS, 1.0))]
        elif kind == "joint":
            res = sample(model, "video2flow", context=ctx, modality="depth", rgb_latent=x, steps=STEPS, seed=0)
            out = [res.modality_latent]
        else:
            from unity_core.explore.samplers import generate_yume_walk

            res = generate_yume_walk(model, x[:, :, :1], [ctx[:, :3], ctx[:, 2:]], steps=STEPS, seed=0, text_len=8)
            out = [res.latent]
    assert model._cache_config is None  # disabled again
    return out, counter


@pytest.mark.parametrize("kind", ["rgb", "joint", "yume"])
@pytest.mark.parametrize("cache", list(SPECS))
def test_cache_exact_when_it_skips_nothing_and_skips_when_permissive(unity, yume, kind, cache):
    model = yume if kind == "yume" else unity
    ref, base = _run(kind, model, None)
    assert base.computed_fraction == 1.0 and base.forwards > 0
    nothing, permissive = SPECS[cache]
    same, counter = _run(kind, model, nothing)
    assert counter.forwards == base.forwards and counter.computed_fraction == 1.0
    for a, b in zip(same, ref):
        assert torch.equal(a, b), f"{cache} that skips nothing changed the {kind} result"
    out, counter = _run(kind, model, permissive)
    print(f"{kind} {permissive}: {counter.summary()}")
    assert counter.computed_fraction < 0.95, f"{permissive} skipped nothing on the {kind} forward"
    if cache in ("first-block", "mag"):
        assert counter.skipped_evaluations > 0
    for a, b in zip(out, ref):
        assert torch.isfinite(a).all() and not torch.equal(a, b)


def test_the_joint_decision_covers_both_streams(unity):
    """One first-block decision per joint forward: when it skips, neither stream's blocks run."""
    _, counter = _run("joint", unity, "first-block:10")
    blocks = len(unity.blocks)
    # per forward the first block always runs; the rest run on the computed forwards only
    computed = counter.forwards - counter.skipped_evaluations
    assert counter.parts["ffn"] == counter.forwards + computed * (blocks - 1)
    assert counter.parts["attn2"] == counter.parts["ffn"]  # one cross-attention call per block, both streams


def test_mag_recorder_matches_diffusers_calibration(unity):
    """Our MagCache calibration gives diffusers' own calibration-mode ratios."""
    from diffusers.hooks import MagCacheConfig

    x, ctx = _inputs()
    rec = MagRatioRecorder(len(unity.blocks))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sample(unity, "video2flow", context=ctx, modality="depth", rgb_latent=x, modality_noise=noise, steps=STEPS,
               cache=rec)
        # diffusers' calibration mode, one step more than run so its end-of-run reset keeps the ratios
        unity.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=STEPS + 1))
        try:
            from unity_core.sampling.sampler import _run, _Streams, _Velocity

            velocity = _Velocity(unity, ctx, "depth", None, 1.0, None, None)
            _run(_Streams(False, True, x, noise), velocity, STEPS, 1.0, "euler", None, None, None, None, None)
            hook = unity.blocks[-1]._diffusers_hook.get_hook("mag_cache_block_hook")
            theirs = hook.state_manager._state_cache["cond"].calibration_ratios
        finally:
            unity.disable_cache()
    assert len(rec.ratios) == STEPS and rec.ratios[0] == 1.0
    torch.testing.assert_close(torch.tensor(rec.ratios), torch.tensor(theirs), atol=1e-6, rtol=1e-6)


def test_control_guidance_with_each_cache(unity):
    """Control guidance runs a joint and an RGB-only forward per step: the caches keyed by cache
    context serve both; PAB and FasterCache (one state per module) are refused before any work."""
    x, ctx = _inputs()
    kw = dict(context=ctx, modality="depth", modality_latent=x, steps=STEPS, seed=0, control_cfg=2.0)
    with torch.no_grad():
        ref = sample(unity, "flow2video", **kw).rgb_latent
        for spec in ("first-block:0", "mag:0:0", "taylorseer:1"):
            with enabled_cache(unity, cache_config(spec, unity, steps=STEPS, mag_ratios=[1.0] * STEPS)):
                assert torch.equal(sample(unity, "flow2video", **kw).rgb_latent, ref), spec
        for spec in ("pab:1", "faster:1"):
            with enabled_cache(unity, cache_config(spec, unity)), pytest.raises(ValueError, match="control"):
                sample(unity, "flow2video", **kw)


def test_specs_refuse_bad_input(unity):
    with pytest.raises(ValueError, match="unknown cache"):
        cache_config("teacache", unity)
    with pytest.raises(ValueError, match="numbers"):
        cache_config("first-block:fast", unity)
    with pytest.raises(ValueError, match="calibrated"):
        cache_config("mag", unity)
    with enabled_cache(unity, cache_config("pab", unity)):
        with pytest.raises(ValueError, match="already been enabled"):
            unity.enable_cache(cache_config("first-block", unity))


def test_pipeline_cache_option_and_cli_flag(tmp_path, carphone_path, capsys):
    """``cache=`` on the embedded default: a spec that skips nothing equals the uncached run, the
    shipped MagCache ratios load for each task, the cache is gone after the call; ``--cache`` runs
    and a bad spec is a clear CLI error."""
    from unity_core.cli import main
    from unity_core.pipeline import UnityVideoPipeline

    pipe = UnityVideoPipeline.from_pretrained("default")
    frames = torch.rand(17, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    ref = pipe.estimate(frames, "depth", steps=4, seed=0)
    same = pipe.estimate(frames, "depth", steps=4, seed=0, cache="first-block:0")
    assert torch.equal(same.modality_frames, ref.modality_frames) and pipe.transformer._cache_config is None
    mag = pipe.estimate(frames, "depth", steps=4, seed=0, cache="mag:10:10:0")
    assert not torch.equal(mag.modality_frames, ref.modality_frames)
    for task in ("video2flow", "text2all", "flow2video"):
        config = pipe.step_cache_config("mag", task, 20)
        assert len(config.mag_ratios) == 20 and config.mag_ratios[0] == 1.0
    out = tmp_path / "d.mp4"
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(out), "--steps", "3",
                 "--cache", "first-block:0.1"]) == 0
    assert out.is_file()
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(out), "--steps", "3",
                 "--cache", "teacache"]) == 2
    assert "unknown cache 'teacache'" in capsys.readouterr().err
