"""The transformer as diffusers' own model tests expect a diffusers model, on the small preset.

Each test names the diffusers behaviour it checks:

- the forward contract: ``return_dict=True`` -> an output dataclass with ``sample``,
  ``return_dict=False`` -> a tuple whose ``[0]`` is ``sample`` (what diffusers' pipelines,
  training scripts and model tests call);
- group offloading at leaf and block level, to disk, reaches every parameter the forward reads,
  for the RGB-only, joint (with and without the modality switcher) and Yume packed forwards;
- layerwise casting (fp8 storage) reaches the same forwards;
- ``_keep_in_fp32_modules`` survives ``from_pretrained(torch_dtype=torch.bfloat16)``,
  ``load_transformer(dtype=torch.bfloat16)`` and ``.to(torch.bfloat16)``;
- ``fuse_qkv_projections()`` makes the attention processor run the fused projections.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.utils import BaseOutput

from unity_core.model import UnityVideoTransformer, UnityVideoTransformerOutput, get_config, load_transformer
from unity_core.model.yume import packed_forward

SMALL = get_config("unityvideo-small")
#: what diffusers' Wan keeps in float32 (plus the flow head's "modulation"), matched on dotted components
KEPT = ("time_embedder", "scale_shift_table", "modulation", "norm1", "norm2", "norm3")
VARIANTS = {
    "rgb": SMALL,
    "joint": SMALL,
    "joint_switcher": get_config({**SMALL.to_kwargs(), "modality_switcher": True}),
    "yume_packed": get_config({**SMALL.to_kwargs(), "modality_stream": False, "history_embeddings": True}),
}


def _kept(name: str) -> bool:
    return any(part in KEPT for part in name.split("."))


def _model(kind: str, seed: int = 0) -> UnityVideoTransformer:
    torch.manual_seed(seed)
    model = UnityVideoTransformer.from_config(VARIANTS[kind]).eval()
    with torch.no_grad():  # non-zero additions, so a missed onload cannot hide behind zeros
        for name, p in model.named_parameters():
            if name.startswith(("flow_in.", "modality_embeddings.", "switcher_embeddings.", "switcher_mlp.")):
                p.normal_(0, 0.1)
    return model


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    c = SMALL.in_channels
    return dict(
        rgb=torch.randn(1, c, 2, 8, 8, generator=g),
        mod=torch.randn(1, c, 2, 8, 8, generator=g),
        history=torch.randn(1, c, 7, 8, 8, generator=g),  # N = 7: chunks at 1x, 4x, 2x, 1x
        ctx=torch.randn(1, 5, SMALL.text_dim, generator=g),
        t=torch.tensor([500.0]),
    )


def _forward(model, kind: str, x) -> tuple:
    """The velocities of one forward of ``kind`` (dtype of the inputs cast to the model's)."""
    with torch.no_grad():
        if kind == "rgb":
            return model(x["rgb"], x["t"], x["ctx"], return_dict=False)[:1]
        if kind in ("joint", "joint_switcher"):
            return model(x["rgb"], x["t"], x["ctx"], x["mod"], "depth", x["ctx"], return_dict=False)
        return (packed_forward(model, x["history"], x["rgb"], x["t"], x["ctx"], text_len=8),)


# ----------------------------------------------------------------------------------------------
# The forward contract
# ----------------------------------------------------------------------------------------------


def test_forward_returns_a_diffusers_output_or_a_tuple():
    model, x = _model("joint"), _inputs()
    with torch.no_grad():
        out = model(x["rgb"], x["t"], x["ctx"], x["mod"], "depth", x["ctx"])
        tup = model(x["rgb"], x["t"], x["ctx"], x["mod"], "depth", x["ctx"], return_dict=False)
        rgb_out = model(x["rgb"], x["t"], x["ctx"])
        rgb_tup = model(x["rgb"], x["t"], x["ctx"], return_dict=False)
    assert isinstance(out, UnityVideoTransformerOutput) and isinstance(out, BaseOutput)
    assert list(out.keys()) == ["sample", "modality_sample"]
    assert isinstance(tup, tuple) and len(tup) == 2
    assert torch.equal(out.sample, tup[0]) and torch.equal(out.modality_sample, tup[1])
    assert torch.equal(out[0], out.sample) and torch.equal(out["modality_sample"], tup[1])  # diffusers' indexing
    assert out.sample.shape == x["rgb"].shape and out.modality_sample.shape == x["mod"].shape
    # RGB only: no modality field (diffusers drops None fields), the tuple keeps its two slots
    assert rgb_out.modality_sample is None and list(rgb_out.keys()) == ["sample"]
    assert len(rgb_tup) == 2 and rgb_tup[1] is None and torch.equal(rgb_out.sample, rgb_tup[0])
    assert len(rgb_out.to_tuple()) == 1 and torch.equal(rgb_out.to_tuple()[0], rgb_tup[0])


# ----------------------------------------------------------------------------------------------
# Group offloading and layerwise casting reach every parameter
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(VARIANTS))
@pytest.mark.parametrize("offload_type,disk", [("leaf_level", True), ("block_level", True), ("leaf_level", False)])
def test_group_offloading_to_disk_equals_the_plain_forward(tmp_path, offload_type, disk, kind):
    model, x = _model(kind), _inputs()
    ref = _forward(model, kind, x)
    kwargs = dict(num_blocks_per_group=1) if offload_type == "block_level" else {}
    if disk:
        kwargs["offload_to_disk_path"] = str(tmp_path)
    model.enable_group_offload(onload_device=torch.device("cpu"), offload_device=torch.device("cpu"),
                               offload_type=offload_type, **kwargs)
    assert bool(list(tmp_path.glob("*.safetensors"))) == disk, "nothing was offloaded to disk"
    got = _forward(model, kind, x)
    again = _forward(model, kind, x)  # everything was offloaded again after the first forward
    for r, a, b in zip(ref, got, again):
        assert torch.isfinite(a).all(), f"{offload_type} offloading left a parameter unloaded (NaN/inf output)"
        # the weights come back from safetensors files (other buffers, so BLAS may pick other
        # kernels): equal to float32 rounding, 1e-6 of the output scale
        tol = 1e-6 * r.abs().max().item()
        torch.testing.assert_close(a, r, atol=tol, rtol=0)
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_layerwise_fp8_storage_runs_every_forward(kind):
    model, x = _model(kind), _inputs()
    ref = _forward(model, kind, x)
    model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    stored = {n: p.dtype for n, p in model.named_parameters()}
    assert all(stored[n] == torch.float32 for n in stored if _kept(n))  # skipped, never stored in fp8
    got = _forward(model, kind, x)
    for r, a in zip(ref, got):
        err, scale = (a - r).abs().max().item(), r.abs().max().item()
        assert torch.isfinite(a).all() and 0 < err < 0.1 * scale
    assert {n: p.dtype for n, p in model.named_parameters()} == stored  # back in storage after the forward


# ----------------------------------------------------------------------------------------------
# Modules kept in float32
# ----------------------------------------------------------------------------------------------


def _split_dtypes(model):
    named = list(model.named_parameters())
    kept = {n for n, _ in named if _kept(n)}
    return kept, {p.dtype for n, p in named if n not in kept}, {p.dtype for n, p in named if n in kept}


def _check_bf16_with_fp32_kept(model, x, kind="joint"):
    kept, others, kept_dtypes = _split_dtypes(model)
    assert {"condition_embedder.time_embedder.linear_1.weight", "scale_shift_table", "blocks.0.scale_shift_table",
            "blocks.0.norm2.weight", "flow_head.modulation"} <= kept
    assert others == {torch.bfloat16} and kept_dtypes == {torch.float32}
    assert model.dtype == torch.bfloat16 and model.compute_dtype == torch.bfloat16
    out = _forward(model, kind, {k: v.to(torch.bfloat16) if k != "t" else v for k, v in x.items()})
    assert all(o.dtype == torch.bfloat16 and torch.isfinite(o).all() for o in out)
    return out


def test_fp32_modules_stay_fp32_under_from_pretrained_load_transformer_and_to(tmp_path):
    from unity_core.model import save_transformer

    model, x = _model("joint"), _inputs()
    assert set(KEPT) <= set(model._keep_in_fp32_modules or ())
    model.save_pretrained(tmp_path / "m")
    a = _check_bf16_with_fp32_kept(UnityVideoTransformer.from_pretrained(tmp_path / "m", torch_dtype=torch.bfloat16), x)
    b = _check_bf16_with_fp32_kept(load_transformer(save_transformer(model, tmp_path / "m.safetensors"),
                                                    dtype=torch.bfloat16), x)
    c = _check_bf16_with_fp32_kept(_model("joint").to(torch.bfloat16), x)
    for u, v, w in zip(a, b, c):  # three routes, one model
        assert torch.equal(u, v) and torch.equal(u, w)
    model.to(torch.bfloat16).float()  # widening casts every tensor back to float32
    assert _split_dtypes(model)[1:] == ({torch.float32}, {torch.float32})


def test_bf16_model_embeds_the_timestep_in_float32():
    """In a bf16 model the time embedding (and so the heads' modulation) is the float32 one, bit
    for bit; with every tensor in bf16 it is not. The forward's error is printed both ways (the
    oracle's figures: bench/oracle_bf16.py)."""
    model, x = _model("joint"), _inputs()
    ref = _forward(model, "joint", x)
    t = torch.tensor([999.0, 500.0, 1.0])
    with torch.no_grad():
        temb_ref = model.embed_time(t)[0]
        bf16 = _model("joint").to(torch.bfloat16)
        everything = _model("joint")
        everything._keep_in_fp32_modules = None  # instance attribute: this one model keeps nothing
        everything.to(torch.bfloat16)
        temb_kept, temb_all = bf16.embed_time(t)[0], everything.embed_time(t)[0]
    assert {p.dtype for p in everything.parameters()} == {torch.bfloat16}
    assert temb_kept.dtype == torch.float32 and torch.equal(temb_kept, temb_ref)
    assert not torch.equal(temb_all.float(), temb_ref)
    x16 = {k: v.to(torch.bfloat16) if k != "t" else v for k, v in x.items()}
    for name, m in (("fp32-kept modules", bf16), ("every tensor bf16", everything)):
        out = _forward(m, "joint", x16)
        errs = [(o.float() - r).abs() for o, r in zip(out, ref)]
        print(f"bf16 vs fp32, small preset joint forward, {name}: max abs {max(e.max().item() for e in errs):.4g}, "
              f"mean abs {sum(e.mean().item() for e in errs) / len(errs):.4g}")


# ----------------------------------------------------------------------------------------------
# QKV fusion
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rgb", "joint"])
def test_fused_qkv_equals_unfused_and_is_what_runs(kind):
    model, x = _model(kind), _inputs()
    ref = _forward(model, kind, x)
    model.fuse_qkv_projections()
    assert hasattr(model.blocks[0].attn1, "to_qkv") and hasattr(model.blocks[0].attn2, "to_kv")
    fused = _forward(model, kind, x)
    with torch.no_grad():  # the separate projections are no longer read: poison them
        for block in model.blocks:
            for layer in (block.attn1.to_q, block.attn1.to_k, block.attn1.to_v, block.attn2.to_k, block.attn2.to_v):
                layer.weight.fill_(float("nan"))
    poisoned = _forward(model, kind, x)
    for r, f, p in zip(ref, fused, poisoned):
        torch.testing.assert_close(f, r, atol=1e-6 * r.abs().max().item(), rtol=0)  # a concatenated matmul
        assert torch.equal(p, f), "the processor read to_q/to_k/to_v after fusion"
    model.unfuse_qkv_projections()
    assert not hasattr(model.blocks[0].attn1, "to_qkv")
