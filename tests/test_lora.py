"""LoRA: Wan / ComfyUI / kohya / diffusers / release names -> our layers through the one key map,
loaded with PEFT (PeftAdapterMixin.load_lora_adapter), equal to merging B @ A * alpha / r by hand."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import TINY_DIT
from unity_core.model import CheckpointError, UnityVideoConfig, UnityVideoTransformer
from unity_core.model.keys import ours_to_official_key, ours_to_wan_key
from unity_core.model.lora import load_lora, lora_state_dict_to_peft, lora_target_keys

CFG = TINY_DIT
# our layer -> (rank, alpha or None = no alpha key, i.e. scale 1)
LAYERS = {
    "blocks.0.attn1.to_q": (4, 8.0),
    "blocks.1.attn2.to_out.0": (4, 8.0),
    "blocks.0.ffn.net.0.proj": (2, None),
    "condition_embedder.time_proj": (4, 2.0),
    "proj_out": (4, 8.0),
    "flow_in": (2, 1.0),
}


def _model(seed=0):
    torch.manual_seed(seed)
    m = UnityVideoTransformer.from_config(UnityVideoConfig(**CFG)).eval()
    with torch.no_grad():
        m.flow_in.weight.normal_(0, 0.1)
    return m


def _factors(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    out = {}
    for layer, (r, alpha) in LAYERS.items():
        w = params[f"{layer}.weight"]
        a = torch.randn(r, w.shape[1], generator=g) * 0.2
        b = torch.randn(w.shape[0], r, generator=g) * 0.2
        out[layer] = (a, b, alpha)
    return out


def _file_name(layer, style):
    wan = ours_to_wan_key(f"{layer}.weight")[: -len(".weight")]
    return {
        "wan": wan,
        "comfy": f"diffusion_model.{wan}",
        "kohya": "lora_unet_" + wan.replace(".", "_"),
        "diffusers": f"transformer.{layer}",
        "official": ours_to_official_key(f"{layer}.weight")[: -len(".weight")],
    }[style]


def _lora_file(factors, style):
    down, up = ("lora_down", "lora_up") if style in ("comfy", "kohya") else ("lora_A", "lora_B")
    sd = {}
    for layer, (a, b, alpha) in factors.items():
        name = _file_name(layer, style)
        sd[f"{name}.{down}.weight"] = a
        sd[f"{name}.{up}.weight"] = b
        if alpha is not None:
            sd[f"{name}.alpha"] = torch.tensor(alpha)
    return sd


def _merged(model, factors):
    ref = copy.deepcopy(model)
    params = dict(ref.named_parameters())
    with torch.no_grad():
        for layer, (a, b, alpha) in factors.items():
            r = a.shape[0]
            params[f"{layer}.weight"] += (alpha if alpha is not None else r) / r * (b @ a)
    return ref


def _run(m):
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(1, 8, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 3, 16, generator=g)
    with torch.no_grad():
        return m(rgb, torch.tensor([400.0]), ctx, rgb.flip(-1), "depth", ctx, return_dict=False)


@pytest.mark.parametrize("style", ["wan", "comfy", "kohya", "diffusers", "official"])
def test_lora_equals_merging_by_hand(style, tmp_path):
    model = _model()
    factors = _factors(model)
    base = _run(model)
    ref = _run(_merged(model, factors))
    save_file(_lora_file(factors, style), str(tmp_path / "lora.safetensors"))

    info = load_lora(model, tmp_path / "lora.safetensors", adapter_name="test")
    assert sorted(info.modules) == sorted(LAYERS) and info.unknown == []
    assert info.lora_config["rank_pattern"] and info.lora_config["alpha_pattern"]  # mixed ranks and alphas
    got = _run(model)
    for g_, r_, b_ in zip(got, ref, base):
        assert (r_ - b_).abs().max() > 1e-2  # the LoRA does change the output
        err = (g_ - r_).abs().max().item()
        assert err <= 1e-5, err
    model.disable_adapters()
    for g_, b_ in zip(_run(model), base):
        torch.testing.assert_close(g_, b_, atol=1e-6, rtol=1e-6)


def test_unknown_and_broken_keys_are_reported():
    model = _model()
    factors = _factors(model)
    sd = _lora_file(factors, "wan")
    sd["blocks.9.self_attn.q.diff_b"] = torch.zeros(64)  # the model has 2 blocks
    sd["text_encoder.layer.0.lora_A.weight"] = torch.zeros(4, 16)
    with pytest.raises(CheckpointError, match=r"name no layer of the model \[2\]: blocks.9.self_attn.q.diff_b, "
                                              r"text_encoder.layer.0.lora_A.weight; pass strict=False"):
        load_lora(model, sd)
    assert not getattr(model, "peft_config", {})  # nothing half-loaded
    info = load_lora(model, sd, adapter_name="rest", strict=False)
    assert info.unknown == ["blocks.9.self_attn.q.diff_b", "text_encoder.layer.0.lora_A.weight"]
    torch.testing.assert_close(_run(model)[0], _run(_merged(_model(), factors))[0], atol=1e-5, rtol=1e-5)

    bad = _lora_file(factors, "wan")
    bad["blocks.0.self_attn.q.lora_A.weight"] = torch.zeros(4, 32)
    del bad["head.head.lora_B.weight"]
    with pytest.raises(CheckpointError) as err:
        lora_state_dict_to_peft(bad, model)
    msg = str(err.value)
    assert "2 problem(s)" in msg
    assert "blocks.0.self_attn.q: A (4, 32) / B (64, 4) do not fit the layer weight (64, 64)" in msg
    assert "head.head: has ['A', 'alpha'] but needs both" in msg
    mixed = _lora_file(factors, "wan")
    mixed["transformer.blocks.0.attn1.to_q.lora_A.weight"] = factors["blocks.0.attn1.to_q"][0]
    with pytest.raises(CheckpointError, match="blocks.0.attn1.to_q is named both"):
        lora_state_dict_to_peft(mixed, model)
    with pytest.raises(CheckpointError, match="no LoRA layer"):
        lora_state_dict_to_peft({"foo.lora_A.weight": torch.zeros(1, 1)}, model)


@pytest.mark.parametrize("style", ["wan", "comfy", "diffusers"])
def test_diff_and_diff_b_equal_adding_them_by_hand(style):
    """``.diff`` (full-weight delta) and ``.diff_b`` (bias delta) as ComfyUI applies them: added to
    the weight and the bias at strength 1, beside ordinary factors in the same file."""
    model = _model()
    factors = _factors(model)
    sd = _lora_file(factors, "comfy" if style == "comfy" else style)
    g = torch.Generator().manual_seed(5)
    params = dict(model.named_parameters())
    diffs = {"blocks.0.ffn.net.2": "diff", "blocks.1.attn1.to_k": "diff",  # [64, 128] and [64, 64]
             "blocks.1.ffn.net.0.proj": "diff+diff_b", "blocks.0.attn2.to_v": "diff_b",  # [128, 64]; bias alone
             "blocks.0.attn1.to_q": "diff_b"}  # a bias delta beside that layer's factors
    deltas = {}
    for layer, kind in diffs.items():
        name = _file_name(layer, style)
        if "diff" in kind.split("+"):
            deltas[f"{layer}.weight"] = sd[f"{name}.diff"] = torch.randn(params[f"{layer}.weight"].shape, generator=g) * 0.05
        if "diff_b" in kind:
            deltas[f"{layer}.bias"] = sd[f"{name}.diff_b"] = torch.randn(params[f"{layer}.bias"].shape, generator=g) * 0.1
    base = _run(model)
    ref_model = _merged(model, factors)
    with torch.no_grad():
        for key, delta in deltas.items():
            dict(ref_model.named_parameters())[key] += delta
    ref = _run(ref_model)

    info = load_lora(model, sd, adapter_name="d")
    assert info.unknown == [] and sorted(info.modules) == sorted(set(LAYERS) | set(diffs))
    assert info.lora_config["lora_bias"]
    for got, want, before in zip(_run(model), ref, base):
        assert (want - before).abs().max() > 1e-2
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    model.disable_adapters()  # the deltas live in the adapter: disabling it restores the base model
    for got, before in zip(_run(model), base):
        torch.testing.assert_close(got, before, atol=1e-6, rtol=1e-6)

    bad = {f"{_file_name('blocks.0.ffn.net.2', style)}.diff": torch.zeros(3, 3),
           f"{_file_name('blocks.0.attn1.to_q', style)}.diff": torch.zeros(64, 64)}
    bad.update(_lora_file({"blocks.0.attn1.to_q": factors["blocks.0.attn1.to_q"]}, style))
    with pytest.raises(CheckpointError) as err:
        lora_state_dict_to_peft(bad, _model())
    assert "diff: shape (3, 3) does not fit the layer weight (64, 128)" in str(err.value)
    assert "both LoRA factors and a full-weight diff" in str(err.value)


def test_lora_target_keys_cover_every_linear_layer_in_every_style():
    model = _model()
    targets = lora_target_keys(model)
    params = dict(model.named_parameters())
    assert set(targets.values()) <= set(params)
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d))}
    assert set(targets.values()) == linear
    for style in ("wan", "comfy", "kohya", "diffusers", "official"):
        for layer in LAYERS:
            assert targets[_file_name(layer, style)] == f"{layer}.weight", (style, layer)
    assert targets["diffusion_model.blocks.1.cross_attn.o"] == "blocks.1.attn2.to_out.0.weight"
    assert targets["lora_unet_blocks_0_ffn_0"] == "blocks.0.ffn.net.0.proj.weight"
    # a Yume model: its history convs are targets, and no release (base.*) names exist
    with torch.device("meta"):
        yume = UnityVideoTransformer.from_config("yume-5b")
    yt = lora_target_keys(yume)
    assert yt["patch_embedding_2x_f"] == "patch_embedding_2x_f.weight"
    assert not any(k.startswith("base.") for k in yt) and "flow_in" not in yt
    assert len(set(yt.values())) == 30 * 10 + 6 + 6  # 10 linears a block, 6 top-level linears, 6 convs


def test_a_lora_saved_by_diffusers_round_trips_with_its_alphas(tmp_path):
    """diffusers' save_lora_adapter keeps alphas only in the file header (no .alpha keys)."""
    model = _model()
    factors = _factors(model)
    load_lora(model, _lora_file(factors, "comfy"), adapter_name="mine")
    model.save_lora_adapter(str(tmp_path), adapter_name="mine")
    (saved,) = tmp_path.glob("*.safetensors")
    from safetensors import safe_open

    with safe_open(str(saved), framework="pt") as f:
        assert not any(k.endswith(".alpha") for k in f.keys()) and "lora_adapter_metadata" in f.metadata()
    fresh = _model()
    info = load_lora(fresh, saved, adapter_name="again")
    assert sorted(info.modules) == sorted(LAYERS)
    ref = _run(_merged(_model(), factors))
    for g_, r_ in zip(_run(fresh), ref):
        assert (g_ - r_).abs().max().item() <= 1e-5


def test_a_fused_lora_saves_as_plain_weights(tmp_path):
    from unity_core.model import load_transformer, save_transformer

    model = _model()
    factors = _factors(model)
    load_lora(model, _lora_file(factors, "wan"))
    with pytest.raises(ValueError, match="fuse_lora"):
        save_transformer(model, tmp_path / "adapted.safetensors")
    model.fuse_lora()
    model.unload_lora()
    path = save_transformer(model, tmp_path / "fused.safetensors")
    ref = _run(_merged(_model(), factors))
    for g_, r_ in zip(_run(load_transformer(path)), ref):
        assert (g_ - r_).abs().max().item() <= 1e-5
