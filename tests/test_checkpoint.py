"""Checkpoint loading: containers (file, shards + index, diffusers folders, ComfyUI fp8), naming
styles, model families (UnityVideo, Yume, plain Wan), strictness, dtypes and bad files."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from unity_core.model import (
    CheckpointError,
    UnityVideoConfig,
    UnityVideoTransformer,
    get_config,
    load_transformer,
    save_transformer,
)
from tests.conftest import TINY_DIT
from unity_core.model.checkpoint import infer_config, official_state_dict
from unity_core.model.keys import (
    checkpoint_kind,
    detect_layout,
    family_flags,
    our_names,
    ours_to_official_key,
    ours_to_wan_key,
    release_key_function,
    wan_key_to_ours,
)

CFG = TINY_DIT
YUME_CFG = dict(CFG, modality_stream=False, history_embeddings=True)
FP8 = torch.float8_e4m3fn


def _build(cfg, seed=0):
    torch.manual_seed(seed)
    return UnityVideoTransformer.from_config(UnityVideoConfig(**cfg)).eval()


@pytest.fixture()
def model():
    m = _build(CFG)
    with torch.no_grad():
        m.flow_in.weight.normal_()
    return m


@pytest.fixture()
def yume():
    return _build(YUME_CFG, seed=1)


def _run(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(1, 8, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 3, 16, generator=g)
    with torch.no_grad():
        if not m.unity_config.modality_stream:
            return m(rgb, torch.tensor([400.0]), ctx, return_dict=False)[:1]
        return m(rgb, torch.tensor([400.0]), ctx, rgb.flip(-1), "depth", ctx, return_dict=False)


def _assert_same_model(a, b, atol=1e-6):
    ref = a.state_dict()
    got = b.state_dict()
    assert set(got) == set(ref)
    assert all(torch.equal(v, ref[k]) for k, v in got.items())
    for x, y in zip(_run(a), _run(b)):  # BLAS may pick other kernels for other buffers
        torch.testing.assert_close(x, y, atol=atol, rtol=atol)


def _shard_size(m):
    """A max shard size that greedy packing turns into exactly 3 shards (no tensor is near 10 %)."""
    total = sum(v.numel() * v.element_size() for v in m.state_dict().values())
    return int(total * 0.4)


def test_save_load_round_trip_is_exact(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    loaded = load_transformer(path)  # config from the file's metadata
    assert loaded.config == model.config
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    for a, b in zip(_run(model), _run(loaded)):  # BLAS may pick other kernels for other buffers
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    with pytest.raises(FileExistsError):
        save_transformer(model, path)


def test_every_container_gives_the_same_model(model, tmp_path):
    """Official file, official names in 3 shards + index, diffusers folder (3 shards), and that
    folder read by diffusers' own from_pretrained: identical weights and outputs."""
    single = save_transformer(model, tmp_path / "single" / "m.safetensors")
    index = save_transformer(model, tmp_path / "sharded" / "m.safetensors", max_shard_size=_shard_size(model))
    folder = save_transformer(model, tmp_path / "diffusers", layout="diffusers", max_shard_size=_shard_size(model))
    assert index.name == "m.safetensors.index.json"
    shards = [f"m-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert sorted(p.name for p in index.parent.glob("*.safetensors")) == shards
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", *[f"diffusion_pytorch_model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)],
        "diffusion_pytorch_model.safetensors.index.json"]
    weight_map = json.loads(index.read_text())["weight_map"]
    assert set(weight_map) == set(official_state_dict(model)) and "base.blocks.0.self_attn.q.weight" in weight_map
    diffusers_index = json.loads((folder / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert "blocks.0.attn1.to_q.weight" in diffusers_index["weight_map"]

    for source in (single, index, index.parent, folder, folder / "diffusion_pytorch_model.safetensors.index.json"):
        loaded = load_transformer(source)  # config from metadata / config.json
        assert loaded.unity_config == model.unity_config, source
        _assert_same_model(model, loaded)
    _assert_same_model(model, UnityVideoTransformer.from_pretrained(str(folder)).eval())
    model.save_pretrained(str(tmp_path / "pretrained"), max_shard_size=_shard_size(model))  # ModelMixin's own writer
    assert len(list((tmp_path / "pretrained").glob("*.safetensors"))) == 3
    _assert_same_model(model, load_transformer(tmp_path / "pretrained"))  # config from config.json

    one = save_transformer(model, tmp_path / "one", layout="diffusers")  # 10 GB default: one file
    assert sorted(p.name for p in one.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    _assert_same_model(model, load_transformer(one))


def test_diffusers_layout_shards_as_save_pretrained_does(model, tmp_path):
    """Sharded diffusers folders: the same files, tensors per file and total size as ModelMixin's
    save_pretrained (both plan with huggingface_hub's splitter), also where one tensor alone is
    over the limit and sits in a shard of its own; a cast to bf16 halves the planned sizes."""
    sizes = sorted(v.numel() * v.element_size() for v in model.state_dict().values())
    for limit in (sizes[-1] - 1, sizes[-1] * 3, _shard_size(model)):
        model.save_pretrained(str(tmp_path / f"ref{limit}"), max_shard_size=limit)
        save_transformer(model, tmp_path / f"ours{limit}", layout="diffusers", max_shard_size=limit)
        ref, ours = (json.loads((tmp_path / f"{n}{limit}" / "diffusion_pytorch_model.safetensors.index.json")
                                .read_text()) for n in ("ref", "ours"))
        assert ours["weight_map"] == ref["weight_map"], limit
        assert ours["metadata"]["total_size"] == ref["metadata"]["total_size"] == sum(sizes)
    half = save_transformer(model, tmp_path / "bf16", layout="diffusers", dtype=torch.bfloat16,
                            max_shard_size=_shard_size(model) // 2)
    index = json.loads((half / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3 and index["metadata"]["total_size"] == sum(sizes) // 2


def test_saving_never_overwrites_silently_and_overwrite_replaces_stale_shards(model, tmp_path):
    folder = save_transformer(model, tmp_path / "d", layout="diffusers", max_shard_size=_shard_size(model))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_transformer(model, folder, layout="diffusers")
    save_transformer(model, tmp_path / "d2" / "m.safetensors", max_shard_size=_shard_size(model))
    with pytest.raises(FileExistsError, match="overwrite=True"):  # its shards are in the way
        save_transformer(model, tmp_path / "d2" / "m.safetensors")
    other = _build(CFG, seed=5)
    save_transformer(other, folder, layout="diffusers", overwrite=True)  # sharded -> one file
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    _assert_same_model(other, load_transformer(folder))
    # a model whose weights are memory-mapped from the very file it overwrites
    path = save_transformer(model, tmp_path / "self.safetensors")
    loaded = load_transformer(path)
    with torch.no_grad():
        loaded.flow_in.weight.add_(1.0)
    save_transformer(loaded, path, overwrite=True)
    _assert_same_model(loaded, load_transformer(path))
    assert sorted(p.name for p in tmp_path.glob("*self*")) == ["self.safetensors"]
    with pytest.raises(ValueError, match="folder"):
        save_transformer(model, tmp_path / "x.safetensors", layout="diffusers")
    with pytest.raises(ValueError, match="not a size"):
        save_transformer(model, tmp_path / "y.safetensors", max_shard_size="lots")


def _dtypes(m):
    """{dtype of the tensors outside _keep_in_fp32_modules}, {dtype of those inside}."""
    named = list(m.named_parameters())
    return ({p.dtype for n, p in named if not m._fp32_kept(n)}, {p.dtype for n, p in named if m._fp32_kept(n)})


def test_bf16_loading_casts_every_tensor_but_the_fp32_kept(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    loaded = load_transformer(path, dtype=torch.bfloat16)
    assert _dtypes(loaded) == ({torch.bfloat16}, {torch.float32})
    assert all(torch.isfinite(v).all() for v in _run(loaded))
    folder = save_transformer(model, tmp_path / "bf16", layout="diffusers", dtype=torch.bfloat16)
    stored = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    assert {v.dtype for v in stored.values()} == {torch.bfloat16}
    assert {p.dtype for p in load_transformer(folder).parameters()} == {torch.float32}


# -- ComfyUI fp8 -------------------------------------------------------------------------------


def _comfy_scaled_fp8(state, prefix="model.diffusion_model."):
    """ComfyUI's scaled-fp8 layout: 2-D weights as fp8 / scale_weight, the rest unchanged, a marker."""
    out = {prefix + "scaled_fp8": torch.zeros(2, dtype=FP8)}
    for k, v in state.items():
        if k.endswith(".weight") and v.dim() == 2:
            scale = v.abs().amax().float() / 448.0
            out[prefix + k] = (v.float() / scale).to(FP8)
            out[prefix + k[: -len("weight")] + "scale_weight"] = scale.reshape(())
            out[prefix + k[: -len("weight")] + "scale_input"] = torch.ones(())
        else:
            out[prefix + k] = v.contiguous()
    return out


def _dequantized_copy(model, file_state, prefix, to_file):
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in ref.state_dict().items():
            key = prefix + to_file(k)
            if file_state[key].dtype == FP8:
                scale_key = key[: -len("weight")] + "scale_weight"
                scale = file_state[scale_key].float() if scale_key in file_state else 1.0
                p.copy_(file_state[key].float() * scale)
    return ref


@pytest.mark.parametrize("family", ["unityvideo", "yume"])
@pytest.mark.parametrize("scaled", [True, False])
def test_fp8_files_equal_the_model_holding_their_dequantized_weights(model, yume, tmp_path, family, scaled):
    src = model if family == "unityvideo" else yume
    to_file = release_key_function(src.unity_config)
    state = official_state_dict(src)
    prefix = "model.diffusion_model."
    if scaled:
        file_state = _comfy_scaled_fp8(state, prefix)
    else:  # plain fp8: every 2-D weight cast, no scales
        file_state = {prefix + k: (v.to(FP8) if k.endswith(".weight") and v.dim() == 2 else v.contiguous())
                      for k, v in state.items()}
    save_file(file_state, str(tmp_path / "fp8.safetensors"))
    assert checkpoint_kind(file_state) == family

    loaded = load_transformer(tmp_path / "fp8.safetensors", config=src.unity_config)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    ref = _dequantized_copy(src, file_state, prefix, to_file)
    _assert_same_model(ref, loaded)
    err = max((a - b).abs().max().item() for a, b in zip(_run(src), _run(loaded)))
    scale = max(a.abs().max().item() for a in _run(src))
    kind = "scaled" if scaled else "plain"
    print(f"fp8 ({kind}, {family}) vs fp32 source: max abs error {err:.3e} (output scale {scale:.3e})")
    assert 0 < err < 0.1 * scale

    bf16 = load_transformer(tmp_path / "fp8.safetensors", config=src.unity_config, dtype=torch.bfloat16)
    assert _dtypes(bf16) == ({torch.bfloat16}, {torch.float32})
    q = "blocks.0.attn1.to_q.weight"
    assert torch.equal(bf16.state_dict()[q], ref.state_dict()[q].to(torch.bfloat16))


def test_scale_without_its_weight_is_unexpected(model, tmp_path):
    file_state = _comfy_scaled_fp8(official_state_dict(model), prefix="")
    file_state["base.blocks.0.self_attn.qq.scale_weight"] = torch.ones(())
    save_file(file_state, str(tmp_path / "orphan.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected keys \[1\]: base.blocks.0.self_attn.qq.scale_weight"):
        load_transformer(tmp_path / "orphan.safetensors", config=CFG)


# -- plain Wan, diffusers Wan, Wan2.2's own shards, Yume ----------------------------------------


def _plain_wan_state(model):
    sd = model.state_dict()
    return {ours_to_official_key(k)[len("base."):]: v for k, v in sd.items()
            if not k.startswith(("flow_", "modality_embeddings"))}


@pytest.mark.parametrize("layout", ["wan", "comfy", "diffusers"])
def test_plain_wan_checkpoint_gets_release_initialised_additions(model, tmp_path, layout):
    if layout == "diffusers":
        sd = {k: v for k, v in model.state_dict().items() if not k.startswith(("flow_", "modality_embeddings"))}
    else:
        sd = _plain_wan_state(model)
        if layout == "comfy":
            sd = {"model.diffusion_model." + k: v for k, v in sd.items()}
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "wan.safetensors"))
    loaded = load_transformer(tmp_path / "wan.safetensors", config=CFG)
    assert torch.equal(loaded.flow_patch_embedding.weight, model.patch_embedding.weight)
    assert torch.equal(loaded.flow_head.head.weight, model.proj_out.weight)
    assert not loaded.flow_in.weight.any() and not loaded.modality_embeddings["depth"].any()
    assert torch.equal(loaded.blocks[1].attn2.to_out[0].weight, model.blocks[1].attn2.to_out[0].weight)
    assert checkpoint_kind(sd) == "wan"


def _wan_model_config(cfg):
    """config.json as Wan's own WanModel writes it (Wan2.2-TI2V-5B, Yume-5B folders)."""
    return {"_class_name": "WanModel", "_diffusers_version": "0.33.0", "model_type": "ti2v", "dim": cfg["dim"],
            "in_dim": cfg["in_channels"], "out_dim": cfg["out_channels"], "ffn_dim": cfg["ffn_dim"], "freq_dim": 256,
            "num_heads": cfg["num_heads"], "num_layers": cfg["num_layers"], "text_dim": cfg["text_dim"],
            "patch_size": [1, 2, 2], "eps": 1e-6, "text_len": 512, "qk_norm": True, "cross_attn_norm": True,
            "window_size": [-1, -1]}


def _write_wan_shards(state, folder, shards=3):
    """Wan2.2's own layout: original names in N shards + a diffusers-style index + WanModel config."""
    folder.mkdir(parents=True)
    keys = list(state)
    per = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k].contiguous() for k in keys[i * per:(i + 1) * per]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))


def test_wan22_style_shards_with_wan_config(model, yume, tmp_path):
    # Yume: its own config.json is Wan's; the keys make it a Yume model.
    src = yume
    state = official_state_dict(src)
    assert "blocks.0.self_attn.q.weight" in state and "patch_embedding_2x_f.weight" in state
    _write_wan_shards(state, tmp_path / "yume")
    (tmp_path / "yume" / "config.json").write_text(json.dumps(_wan_model_config(src.unity_config.to_dict())))
    loaded = load_transformer(tmp_path / "yume")
    assert loaded.unity_config == src.unity_config  # num_heads from config.json (inference would assume 1)
    _assert_same_model(src, loaded)

    # Stock Wan2.2: plain Wan names -> UnityVideo with the additions created.
    _write_wan_shards(_plain_wan_state(model), tmp_path / "wan22")
    (tmp_path / "wan22" / "config.json").write_text(json.dumps(_wan_model_config(CFG)))
    loaded = load_transformer(tmp_path / "wan22")
    assert loaded.unity_config.num_heads == 2 and loaded.unity_config.modality_stream
    assert torch.equal(loaded.flow_patch_embedding.weight, model.patch_embedding.weight)


def test_diffusers_wan_folder_matches_diffusers_forward(tmp_path):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=8,
                                out_channels=8, text_dim=16, freq_dim=256, ffn_dim=128, num_layers=2,
                                cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6).eval()
    ref.save_pretrained(str(tmp_path / "wan"), max_shard_size="50KB")
    assert (tmp_path / "wan" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    loaded = load_transformer(tmp_path / "wan")
    assert loaded.unity_config.dim == 64 and loaded.unity_config.num_heads == 2 and loaded.unity_config.modality_stream
    g = torch.Generator().manual_seed(0)
    rgb, ctx, t = torch.randn(1, 8, 2, 4, 4, generator=g), torch.randn(1, 3, 16, generator=g), torch.tensor([700.0])
    with torch.no_grad():
        expected = ref(rgb, t, ctx, return_dict=False)[0]
        ours = loaded(rgb, t, ctx)[0]
    err = (ours - expected).abs().max().item()
    print(f"diffusers WanTransformer3DModel folder vs its own forward: max abs {err:.2e}")
    assert err < 1e-5  # the gap is diffusers' float32 sinusoid/RoPE against our float64 ones


def test_yume_files_load_as_the_yume_family(yume, tmp_path):
    path = save_transformer(yume, tmp_path / "yume.safetensors")
    keys = list(load_file(str(path)))
    assert checkpoint_kind(keys) == "yume"
    assert "patch_embedding_4x.weight" in keys and not any(k.startswith("base.") for k in keys)
    _assert_same_model(yume, load_transformer(path))
    # without our metadata: the keys alone give modality_stream=False, history_embeddings=True
    save_file(load_file(str(path)), str(tmp_path / "bare.safetensors"))
    loaded = load_transformer(tmp_path / "bare.safetensors", config=dict(YUME_CFG))
    _assert_same_model(yume, loaded)
    assert family_flags(load_file(str(tmp_path / "bare.safetensors"))) == dict(modality_stream=False,
                                                                                history_embeddings=True)
    # width 64 is no known preset: the head count is not guessed (it used to assume head dim 128: 1 head)
    with pytest.raises(CheckpointError, match="width 64 is no known preset.*pass config="):
        load_transformer(tmp_path / "bare.safetensors")
    # a UnityVideo config refuses a Yume file with one error naming what is off
    with pytest.raises(CheckpointError) as err:
        load_transformer(path, config=CFG)
    assert "unexpected keys [10]: patch_embedding_16x.bias" in str(err.value)


# -- full-size key sets ------------------------------------------------------------------------


@pytest.mark.parametrize("preset,manifest", [("yume-5b", "yume_5b_keys.json"),
                                             ("wan2.2-ti2v-5b", "unityvideo_5b_keys.json")])
def test_5b_presets_match_the_release_key_sets_exactly(fixtures_dir, preset, manifest):
    data = json.loads((fixtures_dir / manifest).read_text())
    if "keys" in data:
        expected = {name: tuple(shape) for name, shape in data["keys"]}
        total = data["total_params"]
    else:  # Yume: stock Wan2.2-5B + the five history convs
        expected = {k: tuple(v) for part in ("stock_wan22_ti2v_5b_keys", "yume_extra_keys")
                    for k, v in data[part].items()}
        total = data["n_params"]
    with torch.device("meta"):
        m = UnityVideoTransformer.from_config(preset)
    to_file = release_key_function(m.unity_config)
    ours = {to_file(k): tuple(v.shape) for k, v in m.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected))[:5], sorted(set(expected) - set(ours))[:5])
    assert ours == expected
    assert sum(v.numel() for v in m.state_dict().values()) == total
    assert checkpoint_kind(expected) == ("yume" if preset == "yume-5b" else "unityvideo")
    # the loader's own path: file names -> ours -> the config it infers is the preset
    names = our_names(list(expected), detect_layout(list(expected)), manifest)
    assert infer_config({ours: expected[k] for ours, k in names.items()}) == get_config(preset)


def test_default_without_metadata_loads_with_its_own_head_count(tmp_path):
    """The shipped default re-saved without its config metadata: width 256 is the
    ``unityvideo-small`` preset's, so it loads with 4 heads (not 256 // 128 = 2) and the same output."""
    from unity_core.pipeline import DEFAULT_DIR

    path = DEFAULT_DIR / "transformer.safetensors"
    save_file(load_file(str(path)), str(tmp_path / "bare.safetensors"))
    ref, bare = load_transformer(path), load_transformer(tmp_path / "bare.safetensors")
    assert bare.unity_config.num_heads == ref.unity_config.num_heads == 4
    assert bare.unity_config == ref.unity_config
    g = torch.Generator().manual_seed(0)
    rgb, ctx = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 3, 384, generator=g)
    with torch.no_grad():
        a, b = (m(rgb, torch.tensor([400.0]), ctx, rgb.flip(-1), "depth", ctx, return_dict=False) for m in (ref, bare))
    for x, y in zip(a, b):  # with the 2 heads guessed before, the output moved
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)


def test_ours_to_wan_key_round_trips():
    for ours in ("blocks.3.attn2.to_out.0.weight", "blocks.0.norm2.bias", "condition_embedder.time_proj.bias",
                 "scale_shift_table", "proj_out.weight", "patch_embedding_2x_f.bias"):
        assert wan_key_to_ours(ours_to_wan_key(ours)) == ours
    assert ours_to_wan_key("blocks.3.attn2.to_out.0.weight") == "blocks.3.cross_attn.o.weight"


# -- broken files ------------------------------------------------------------------------------


def test_renamed_key_is_listed(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    sd = load_file(str(path))
    sd["base.blocks.0.self_attn.qq.weight"] = sd.pop("base.blocks.0.self_attn.q.weight")
    save_file(sd, str(tmp_path / "renamed.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_transformer(tmp_path / "renamed.safetensors", config=CFG)
    msg = str(err.value)
    assert "missing keys [1]: blocks.0.attn1.to_q.weight" in msg
    assert "unexpected keys [1]: base.blocks.0.self_attn.qq.weight" in msg


def test_wrong_shape_is_listed(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    sd = load_file(str(path))
    sd["flow_in.weight"] = torch.zeros(64, 32)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"mis-shaped \[1\]: flow_in.weight: file \(64, 32\) vs model \(64, 64\)"):
        load_transformer(tmp_path / "bad.safetensors", config=CFG)


def _edit_shard(folder, index_name, key, edit):
    index = json.loads((folder / index_name).read_text())
    shard = folder / index["weight_map"][key]
    sd = load_file(str(shard))
    edit(sd, index["weight_map"], shard.name)
    save_file(sd, str(shard))
    (folder / index_name).write_text(json.dumps(index))


def test_broken_shards_give_one_clear_error_each(model, tmp_path):
    size = _shard_size(model)
    # missing shard: named with the index
    index = save_transformer(model, tmp_path / "a" / "m.safetensors", max_shard_size=size)
    (index.parent / "m-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"m.safetensors.index.json names 1 of 3 shards that are missing .*"
                                              r"m-00002-of-00003.safetensors \(\d+ tensors\)"):
        load_transformer(index)

    # renamed key inside a diffusers folder (index and shard renamed together)
    folder = save_transformer(model, tmp_path / "diffusers", layout="diffusers", max_shard_size=size)

    def rename(sd, wm, shard):
        sd["blocks.1.attn1.to_qq.weight"] = sd.pop("blocks.1.attn1.to_q.weight")
        wm["blocks.1.attn1.to_qq.weight"] = wm.pop("blocks.1.attn1.to_q.weight")

    _edit_shard(folder, "diffusion_pytorch_model.safetensors.index.json", "blocks.1.attn1.to_q.weight", rename)
    with pytest.raises(CheckpointError) as err:
        load_transformer(folder)
    msg = str(err.value)
    assert "diffusion_pytorch_model.safetensors.index.json (diffusers layout) does not match" in msg
    assert "missing keys [1]: blocks.1.attn1.to_q.weight" in msg
    assert "unexpected keys [1]: blocks.1.attn1.to_qq.weight" in msg

    # wrong shape in a sharded official checkpoint
    index = save_transformer(model, tmp_path / "b" / "m.safetensors", max_shard_size=size)

    def reshape(sd, wm, shard):
        sd["base.blocks.1.self_attn.q.weight"] = torch.zeros(64, 32)

    _edit_shard(index.parent, index.name, "base.blocks.1.self_attn.q.weight", reshape)
    with pytest.raises(CheckpointError,
                       match=r"mis-shaped \[1\]: blocks.1.attn1.to_q.weight: file \(64, 32\) vs model \(64, 64\)"):
        load_transformer(index.parent)

    # a shard that disagrees with its index
    index = save_transformer(model, tmp_path / "c" / "m.safetensors", max_shard_size=size)

    def drop(sd, wm, shard):
        del sd["base.blocks.1.self_attn.q.weight"]

    _edit_shard(index.parent, index.name, "base.blocks.1.self_attn.q.weight", drop)
    with pytest.raises(CheckpointError, match=r"lacks 1 tensors the index puts there: base.blocks.1.self_attn.q"):
        load_transformer(index)


def test_truncated_file(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_transformer(tmp_path / "cut.safetensors", config=CFG)


def test_pickle_files(model, tmp_path):
    safe = tmp_path / "ok.pt"
    torch.save(load_file(str(save_transformer(model, tmp_path / "m.safetensors"))), safe)
    loaded = load_transformer(safe, config=CFG)  # tensors only: weights_only=True accepts it
    _assert_same_model(model, loaded)  # weights bit for bit; outputs to 1e-6 (two instances)

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    unsafe = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, unsafe)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_transformer(unsafe, config=CFG)


def test_missing_file_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_transformer(tmp_path / "nope.safetensors")
    save_file({"foo.weight": torch.zeros(2)}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        load_transformer(tmp_path / "odd.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no weights"):
        load_transformer(tmp_path / "empty")


def test_key_maps_round_trip_every_release_key(fixtures_dir):
    from unity_core.model.keys import official_key_to_ours

    keys = [name for name, _ in json.loads((fixtures_dir / "unityvideo_5b_keys.json").read_text())["keys"]]
    ours = [official_key_to_ours(k) for k in keys]
    assert len(set(ours)) == len(keys)
    assert [ours_to_official_key(k) for k in ours] == keys
    assert official_key_to_ours("base.blocks.3.cross_attn.o.weight") == "blocks.3.attn2.to_out.0.weight"
    assert official_key_to_ours("base.blocks.0.norm3.bias") == "blocks.0.norm2.bias"


def test_a_file_without_transformer_blocks_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="holds no transformer blocks"):
        infer_config({"encoder.conv1.weight": (16, 3, 3, 3)})
