"""Checkpoint loading: layouts, strictness, dtypes and bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from unity_core.model import CheckpointError, UnityVideoConfig, UnityVideoTransformer, load_transformer, save_transformer
from unity_core.model.checkpoint import ours_to_official_key

CFG = dict(dim=64, num_layers=2, num_heads=2, ffn_dim=128, in_channels=8, out_channels=8, text_dim=16)


@pytest.fixture()
def model():
    torch.manual_seed(0)
    m = UnityVideoTransformer(UnityVideoConfig(**CFG)).eval()
    with torch.no_grad():
        m.flow_in.weight.normal_()
    return m


def _run(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(1, 8, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 3, 16, generator=g)
    with torch.no_grad():
        return m(rgb, torch.tensor([400.0]), ctx, rgb.flip(-1), "depth", ctx)


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


def test_bf16_loading_casts_every_tensor(model, tmp_path):
    path = save_transformer(model, tmp_path / "m.safetensors")
    loaded = load_transformer(path, dtype=torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert all(torch.isfinite(v).all() for v in _run(loaded))


def _plain_wan_state(model):
    sd = model.state_dict()
    return {ours_to_official_key(k)[len("base."):]: v for k, v in sd.items() if not k.startswith(("flow_", "modality_embeddings"))}


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
    assert torch.equal(_run(loaded)[0], _run(model)[0])

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


def test_key_maps_round_trip_every_release_key(fixtures_dir):
    from unity_core.model.checkpoint import official_key_to_ours

    keys = [name for name, _ in json.loads((fixtures_dir / "unityvideo_5b_keys.json").read_text())["keys"]]
    ours = [official_key_to_ours(k) for k in keys]
    assert len(set(ours)) == len(keys)
    assert [ours_to_official_key(k) for k in ours] == keys
    assert official_key_to_ours("base.blocks.3.cross_attn.o.weight") == "blocks.3.attn2.to_out.0.weight"
    assert official_key_to_ours("base.blocks.0.norm3.bias") == "blocks.0.norm2.bias"


def test_a_file_without_transformer_blocks_is_named(tmp_path):
    from unity_core.model.checkpoint import infer_config

    with pytest.raises(CheckpointError, match="holds no transformer blocks"):
        infer_config({"encoder.conv1.weight": (16, 3, 3, 3)})
