"""The UnityVideo DiT: official key layout, oracle outputs, diffusers parity, batching."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_ORACLE
from unity_core.model import UnityVideoConfig, UnityVideoTransformer, get_config, load_transformer, official_state_dict
from unity_core.model.keys import ours_to_official_key, wan_key_to_ours

TINY = TINY_ORACLE


@pytest.fixture(scope="module")
def oracle(fixtures_dir):
    return load_file(str(fixtures_dir / "oracle" / "unityvideo_tiny_oracle.safetensors"))


@pytest.fixture(scope="module")
def oracle_model(fixtures_dir):
    return load_transformer(fixtures_dir / "oracle" / "unityvideo_tiny_oracle_weights.safetensors", config=TINY)


def test_5b_preset_matches_the_release_key_manifest(fixtures_dir):
    manifest = json.loads((fixtures_dir / "unityvideo_5b_keys.json").read_text())
    expected = {name: tuple(shape) for name, shape in manifest["keys"]}
    with torch.device("meta"):
        model = UnityVideoTransformer.from_config(get_config("wan2.2-ti2v-5b"))
    ours = {ours_to_official_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected))[:5], sorted(set(expected) - set(ours))[:5])
    assert ours == expected
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["total_params"]


@pytest.mark.parametrize("task", ["text2all", "video2flow", "flow2video"])
@pytest.mark.parametrize("modality", ["depth", "skeleton"])
def test_oracle_forward(oracle, oracle_model, task, modality):
    p = f"case.{task}.{modality}."
    with torch.no_grad():
        v_rgb, v_mod = oracle_model(
            oracle[p + "in.rgb"], oracle[p + "in.timestep"], oracle[p + "in.context"],
            oracle[p + "in.flow"], modality, oracle[p + "in.context_flow"], return_dict=False,
        )
    torch.testing.assert_close(v_rgb, oracle[p + "out.v_rgb"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_mod, oracle[p + "out.v_flow"], atol=1e-5, rtol=1e-5)


def test_oracle_without_modality_name_or_prompt(oracle, oracle_model):
    p = "case.text2all.depth."
    with torch.no_grad():
        v_rgb, v_mod = oracle_model(oracle[p + "in.rgb"], oracle[p + "in.timestep"], oracle[p + "in.context"],
                                    oracle[p + "in.flow"], None, None, return_dict=False)
    torch.testing.assert_close(v_rgb, oracle["case.text2all.none.out.v_rgb"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_mod, oracle["case.text2all.none.out.v_flow"], atol=1e-5, rtol=1e-5)


def test_oracle_intermediates(oracle, oracle_model):
    p = "case.text2all.depth."
    temb, tmod = oracle_model.embed_time(oracle[p + "in.timestep"])
    torch.testing.assert_close(temb, oracle["debug.text2all.depth.t_emb"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tmod, oracle["debug.text2all.depth.t_mod"], atol=1e-5, rtol=1e-5)


def _random_model(seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = UnityVideoConfig(**{**TINY, "in_channels": 8, "out_channels": 8, **overrides})
    model = UnityVideoTransformer.from_config(cfg).eval()
    with torch.no_grad():  # make the additions active so they are exercised
        for p in [model.flow_in.weight, *model.modality_embeddings.values()]:
            p.normal_(0, 0.1)
    return model


def _inputs(batch=2, cfg_channels=8, text_dim=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, cfg_channels, 3, 4, 6, generator=g)
    mod = torch.randn(batch, cfg_channels, 3, 4, 6, generator=g)
    ctx = torch.randn(batch, 5, text_dim, generator=g)
    mctx = torch.randn(batch, 4, text_dim, generator=g)
    return rgb, mod, ctx, mctx


def test_batch_equals_per_sample_results():
    """The release mixes timesteps across a batch of 2 in its head; we must not."""
    model = _random_model()
    rgb, mod, ctx, mctx = _inputs()
    t = torch.tensor([900.0, 150.0])
    with torch.no_grad():
        vr, vm = model(rgb, t, ctx, mod, "depth", mctx, return_dict=False)
        for i in range(2):
            r1, m1 = model(rgb[i:i + 1], t[i:i + 1], ctx[i:i + 1], mod[i:i + 1], "depth", mctx[i:i + 1], return_dict=False)
            torch.testing.assert_close(vr[i:i + 1], r1, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(vm[i:i + 1], m1, atol=1e-5, rtol=1e-5)


def test_matches_diffusers_wan_without_modality_stream():
    from diffusers import WanTransformer3DModel

    model = _random_model(seed=3)
    cfg = model.unity_config
    ref = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True, eps=cfg.eps,
    ).eval()
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith(("flow_", "modality_embeddings"))}
    missing, unexpected = ref.load_state_dict(ours, strict=False)
    assert not missing and not unexpected
    rgb, _, ctx, _ = _inputs()
    t = torch.tensor([700.0, 120.0])
    with torch.no_grad():
        expected = ref(rgb, t, ctx, return_dict=False)[0]
        got, none = model(rgb, t, ctx, return_dict=False)
    assert none is None
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_modality_stream_changes_rgb_only_through_attention():
    """Zero additions (fresh model) leave the modality tokens inert but present in attention."""
    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config(UnityVideoConfig(**{**TINY, "in_channels": 8, "out_channels": 8})).eval()
    rgb, mod, ctx, mctx = _inputs(batch=1)
    with torch.no_grad():
        a, _ = model(rgb, torch.tensor([500.0]), ctx, mod, "depth", mctx, return_dict=False)
        b, _ = model(rgb, torch.tensor([500.0]), ctx, mod * 3 + 1, "raft", mctx, return_dict=False)
    torch.testing.assert_close(a, b)  # flow_in == 0: modality content has no effect at init


def test_rope_positions_of_modality_tokens_are_offset_by_width():
    from unity_core.model.transformer import grid_positions, join_width

    f, h, w = 2, 3, 4
    pos = grid_positions(f, h, 2 * w)
    rgb_ids = torch.arange(f * h * w)[None, :, None].float()
    joint = join_width(rgb_ids, rgb_ids + 1000, (f, h, w))[0, :, 0]
    mod_cols = pos[joint >= 1000, 2]
    assert mod_cols.min() == w and mod_cols.max() == 2 * w - 1
    # each row is w RGB tokens then w modality tokens
    assert joint[:w].max() < 1000 and joint[w:2 * w].min() >= 1000


def test_switcher_option_adds_its_own_parameters_only():
    plain = _random_model()
    switched = _random_model(modality_switcher=True)
    extra = set(switched.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith(("switcher_embeddings.", "switcher_mlp.")) for k in extra)
    rgb, mod, ctx, mctx = _inputs(batch=1)
    with torch.no_grad():  # zero-initialised MLP: identical to the shared modulation
        switched.load_state_dict(plain.state_dict(), strict=False)
        a = plain(rgb, torch.tensor([300.0]), ctx, mod, "depth", mctx)
        b = switched(rgb, torch.tensor([300.0]), ctx, mod, "depth", mctx)
        torch.testing.assert_close(a[1], b[1])
        switched.switcher_mlp[1].bias.normal_()
        c = switched(rgb, torch.tensor([300.0]), ctx, mod, "depth", mctx)
    assert (c[1] - a[1]).abs().max() > 1e-3


def test_random_modality_embeddings_tell_the_modalities_apart_from_the_start():
    model = _random_model()
    model.reset_unity_parameters()
    assert not any(p.any() for p in model.modality_embeddings.values())  # the release's zeros
    model.reset_unity_parameters(modality_embedding_std=1.0)
    emb = torch.stack(list(model.modality_embeddings.values()))
    assert 0.8 < float(emb.detach().std()) < 1.2
    assert torch.cdist(emb, emb).add(torch.eye(len(emb)) * 1e9).min() > 1.0  # every pair apart
    torch.nn.init.normal_(model.flow_in.weight)
    rgb, mod, ctx, mctx = _inputs(batch=1)
    with torch.no_grad():
        a = model(rgb, torch.tensor([300.0]), ctx, mod, "depth", mctx).modality_sample
        b = model(rgb, torch.tensor([300.0]), ctx, mod, "segmentation", mctx).modality_sample
    assert (a - b).abs().max() > 1e-3  # same inputs and prompt, the modality alone changes the output


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rgb=torch.zeros(1, 8, 3, 4)), r"\[B, C, F, H, W\]"),
        (dict(rgb=torch.zeros(1, 5, 3, 4, 6)), "5 channels"),
        (dict(rgb=torch.zeros(1, 8, 3, 5, 6)), "H=5 is not a multiple"),
        (dict(modality="normals"), "unknown modality 'normals'"),
        (dict(t=torch.zeros(3)), r"timestep must be \[B\]"),
        (dict(mod=torch.zeros(1, 8, 1, 4, 6)), "must match rgb_latent"),
        (dict(mod=None, modality="normals"), "unknown modality 'normals'"),  # checked without a latent too
        (dict(modality="flow"), "unknown modality 'flow'; use one of the release's names"),  # edges resolve aliases
        (dict(ctx_width=5), r"context must be \[B=1, L, text_dim=\d+\]"),
        (dict(mctx_width=5), r"modality_context must be \[B=1, L, text_dim=\d+\]"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    model = _random_model()
    rgb, mod, ctx, mctx = _inputs(batch=1)
    args = dict(rgb=rgb, t=torch.tensor([10.0]), mod=mod, modality="depth")
    args.update(kwargs)
    if "ctx_width" in args:
        ctx = ctx[..., : args["ctx_width"]]
    if "mctx_width" in args:
        mctx = mctx[..., : args["mctx_width"]]
    with pytest.raises(ValueError, match=match):
        model(args["rgb"], args["t"], ctx, args["mod"], args["modality"], mctx)


def test_official_state_dict_round_trips_through_the_key_maps():
    model = _random_model()
    sd = official_state_dict(model)
    assert all(k.startswith(("base.", "flow_", "modality_embeddings.")) for k in sd)
    assert wan_key_to_ours("blocks.3.cross_attn.o.weight") == "blocks.3.attn2.to_out.0.weight"
    assert wan_key_to_ours("blocks.0.norm3.bias") == "blocks.0.norm2.bias"
