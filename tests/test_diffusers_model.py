"""UnityVideoTransformer as a diffusers model: diffusers' hooks, attention dispatcher and layout.

Each test uses a diffusers mechanism from outside the model (group offloading to disk, layerwise
fp8 storage, the attention backend switch, save_pretrained / from_pretrained) and checks the
forward against the plain model.
"""

from __future__ import annotations

import json

import pytest
import torch

from unity_core.model import UnityVideoConfig, UnityVideoTransformer, get_config
from unity_core.model.transformer import grid_positions

CFG = UnityVideoConfig(dim=64, num_layers=3, num_heads=2, ffn_dim=128, in_channels=8, out_channels=8, text_dim=32)


def _model(seed=0):
    torch.manual_seed(seed)
    model = UnityVideoTransformer.from_config(CFG).eval()
    with torch.no_grad():  # make the additions active so they are exercised
        for p in [model.flow_in.weight, *model.modality_embeddings.values()]:
            p.normal_(0, 0.1)
    return model


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(1, 8, 2, 4, 4, generator=g)
    mod = torch.randn(1, 8, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 5, 32, generator=g)
    return rgb, mod, ctx, torch.tensor([500.0])


def test_config_lives_beside_diffusers_config():
    model = UnityVideoTransformer.from_config("unityvideo-small")
    assert model.config.dim == 256 and model.unity_config.head_dim == 64
    assert model.unity_config == get_config("unityvideo-small")
    assert tuple(model.config.patch_size) == (1, 2, 2)
    with pytest.raises(ValueError, match="unknown preset"):
        UnityVideoTransformer.from_config("no-such-preset")
    with pytest.raises(ValueError, match="num_heads"):
        UnityVideoTransformer(dim=66, num_heads=4)


def test_group_offload_to_disk_matches_and_reaches_the_token_path(tmp_path):
    model = _model()
    rgb, mod, ctx, t = _inputs()
    with torch.no_grad():
        ref = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
        tokens, grid = model.patchify(rgb)
        positions = grid_positions(*grid)
        ref_tokens = model.forward_tokens(tokens, positions, t, ctx)
        ref_patch = model.patchify(rgb)[0]

    model.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"),
                               offload_type="block_level", num_blocks_per_group=1, offload_to_disk_path=str(tmp_path))
    assert list(tmp_path.glob("*.safetensors")), "nothing was offloaded to disk"
    with torch.no_grad():
        out = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
        out_tokens = model.forward_tokens(tokens, positions, t, ctx)
        inside = model(low_level=lambda m: m.patchify(rgb)[0])
        outside = model.patchify(rgb)[0]  # bypasses the root hook: the offloaded weights are not there
    torch.testing.assert_close(out[0], ref[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], ref[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(out_tokens, ref_tokens, atol=1e-6, rtol=0)
    torch.testing.assert_close(inside, ref_patch, atol=1e-6, rtol=0)
    assert not torch.allclose(torch.nan_to_num(outside, nan=1e9), ref_patch), \
        "a missed onload should have shown (the test would prove nothing)"


def test_layerwise_fp8_storage_runs_and_stays_close():
    model = _model()
    rgb, mod, ctx, t = _inputs()
    with torch.no_grad():
        ref = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert model.patch_embedding.weight.dtype == torch.float32  # skipped, as in diffusers' Wan
    with torch.no_grad():
        out = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
    err = max((out[0] - ref[0]).abs().max().item(), (out[1] - ref[1]).abs().max().item())
    scale = ref[0].abs().max().item()
    print(f"fp8_e4m3fn storage, fp32 compute: max abs error {err:.4g} (output max {scale:.3g})")
    assert 0 < err < 0.1 * scale


def test_attention_backend_switch_reaches_the_dispatcher(monkeypatch):
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    calls = {"native": 0, "_native_math": 0}
    for name in calls:
        key = AttentionBackendName(name)
        fn = _AttentionBackendRegistry._backends[key]

        def counted(*args, _fn=fn, _name=name, **kwargs):
            calls[_name] += 1
            return _fn(*args, **kwargs)

        monkeypatch.setitem(_AttentionBackendRegistry._backends, key, counted)
    model = _model()
    rgb, mod, ctx, t = _inputs()
    try:
        model.set_attention_backend("native")
        with torch.no_grad():
            a = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
        assert calls == {"native": 3 * CFG.num_layers, "_native_math": 0}  # self + one cross per stream, per block
        model.set_attention_backend("_native_math")
        with torch.no_grad():
            b = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
        assert calls["_native_math"] == calls["native"]
    finally:
        model.reset_attention_backend()
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[1], b[1], atol=1e-5, rtol=1e-5)


def test_save_pretrained_sharded_round_trip(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "m", max_shard_size="200KB")
    index = json.loads((tmp_path / "m" / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    loaded = UnityVideoTransformer.from_pretrained(tmp_path / "m").eval()
    assert loaded.unity_config == model.unity_config
    rgb, mod, ctx, t = _inputs()
    with torch.no_grad():
        a, b = model(rgb, t, ctx, mod, "depth", ctx, return_dict=False), loaded(rgb, t, ctx, mod, "depth", ctx, return_dict=False)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    for x, y in zip(a, b):  # the same weights in other buffers (memory-mapped files): BLAS may pick other kernels
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)


def test_gradient_checkpointing_through_diffusers_api():
    model = _model().train()
    rgb, mod, ctx, t = _inputs()
    model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)[1].square().mean().backward()
    ref = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    model(rgb, t, ctx, mod, "depth", ctx, return_dict=False)[1].square().mean().backward()
    got = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_plain_wan_and_yume_variants_refuse_the_modality_stream():
    with torch.device("meta"):
        yume = UnityVideoTransformer.from_config("yume-5b")
    names = {k for k in yume.state_dict()}
    assert "patch_embedding_16x.weight" in names and not any(k.startswith("flow_") for k in names)
    plain = UnityVideoTransformer.from_config(UnityVideoConfig(**{**CFG.to_dict(), "modality_stream": False}))
    rgb, mod, ctx, t = _inputs()
    with torch.no_grad():
        v, none = plain(rgb, t, ctx, return_dict=False)
    assert v.shape == rgb.shape and none is None
    with pytest.raises(ValueError, match="no modality stream"):
        plain(rgb, t, ctx, mod, "depth")
