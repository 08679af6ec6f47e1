"""Every node honours ComfyUI's node contract and runs without ComfyUI."""

import importlib
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest
import torch

import nodes
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

ROOT = Path(__file__).resolve().parents[1]


def test_comfyui_entry_point_imports_as_a_package():
    sys.path.insert(0, str(ROOT.parent))
    try:
        pkg = importlib.import_module(ROOT.name)
    finally:
        sys.path.remove(str(ROOT.parent))
    assert pkg.WEB_DIRECTORY == "./web" and pkg.NODE_CLASS_MAPPINGS.keys() == NODE_CLASS_MAPPINGS.keys()
    assert (ROOT / "web").is_dir()


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_node_contract(name):
    cls = NODE_CLASS_MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and "required" in spec
    for section in ("required", "optional"):
        for input_name, (typ, *rest) in spec.get(section, {}).items():
            assert rest and rest[0].get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert isinstance(cls.RETURN_TYPES, tuple)
    assert callable(getattr(cls(), cls.FUNCTION))
    assert cls.CATEGORY.startswith("UnityVideo/")
    assert NODE_DISPLAY_NAME_MAPPINGS[name].startswith("UnityVideo")
    if getattr(cls, "RETURN_NAMES", None):
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)


def test_loader_rejects_paths_that_escape_the_model_folder():
    from nodes import _comfy

    with pytest.raises(ValueError, match="escapes"):
        _comfy.model_path("../../etc/passwd")
    with pytest.raises(ValueError, match="not found"):
        _comfy.model_path("nope.safetensors")
    assert _comfy.model_choices()[0] == _comfy.EMBEDDED


def test_modality_nodes_round_trip():
    values = {"modality": "depth", "values": torch.rand(5, 16, 16)}
    (vis,) = nodes.UnityVideoModalityEncode().encode(values, 16, 16)
    decoded, preview = nodes.UnityVideoModalityDecode().decode(vis, "depth")
    assert (decoded["values"] - values["values"]).abs().max() < 0.01 and preview.shape == vis.shape


def test_sampler_needs_a_control_for_flow2video():
    with pytest.raises(ValueError, match="flow2video needs a modality_latent"):
        nodes.UnityVideoSampler().run(None, "flow2video", {"name": "depth", "context": None}, None,
                                      {"samples": torch.zeros(1, 16, 2, 4, 4), "unityvideo_normalized": True},
                                      0, 1, 1.0, 1.0, "euler")


def test_unknown_modality_in_a_node():
    with pytest.raises(ValueError, match="unknown modality"):
        nodes.UnityVideoModalityDecode().decode(torch.zeros(1, 4, 4, 3), "normals")


def test_save_nodes_stay_inside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITYVIDEO_OUTPUT_DIR", str(tmp_path / "out"))
    frames = torch.rand(3, 16, 16, 3)
    for prefix in ("../escaped", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="leads outside the output folder"):
            nodes.UnityVideoSaveVideo().save(frames, prefix, 8.0, "webp")
        with pytest.raises(ValueError, match="leads outside the output folder"):
            nodes.UnityVideoSaveValues().save({"modality": "depth", "values": torch.rand(3, 16, 16)}, prefix)
    assert not list(tmp_path.glob("escaped*")) and not list(tmp_path.glob("abs*"))
    ui = nodes.UnityVideoSaveVideo().save(frames, "sub/clip", 8.0, "webp")["ui"]["images"][0]
    assert ui["subfolder"] == "sub" and (tmp_path / "out" / "sub" / ui["filename"]).is_file()


def test_sampler_cfg_without_negative_uses_the_empty_prompt_or_asks_for_one():
    from unity_core.pipeline import UnityVideoPipeline

    pipe = UnityVideoPipeline.from_pretrained("default")
    latent = {"samples": torch.zeros(1, 16, 2, 8, 8), "unityvideo_normalized": True}
    positive = [[pipe.encode_prompt("a room"), {}]]
    modality = {"name": "depth", "context": pipe.modality_context("depth")}
    args = (positive, latent, 0, 2, 3.0, 1.0, "euler")
    out = nodes.UnityVideoSampler().run(pipe, "text2all", modality, *args)
    explicit = nodes.UnityVideoSampler().run(pipe, "text2all", modality, *args,
                                             negative=[[pipe.encode_prompt(""), {}]])
    assert torch.equal(out[0]["samples"], explicit[0]["samples"])
    bare = SimpleNamespace(transformer=pipe.transformer, text_encoder=None, device=pipe.device)
    with pytest.raises(ValueError, match="cfg 3.0 needs a negative prompt: connect 'negative'"):
        nodes.UnityVideoSampler().run(bare, "text2all", modality, *args)


def test_loader_lists_only_checkpoints_it_will_load(tmp_path, monkeypatch):
    from nodes import _comfy

    models, outside = tmp_path / "models", tmp_path / "outside.safetensors"
    models.mkdir()
    outside.write_bytes(b"x")
    (models / "inside.safetensors").write_bytes(b"x")
    (models / "link.safetensors").symlink_to(outside)
    monkeypatch.setenv("UNITYVIDEO_MODELS_DIR", str(models))
    assert _comfy.model_choices() == [_comfy.EMBEDDED, "inside.safetensors"]
    assert _comfy.model_path("inside.safetensors") == (models / "inside.safetensors").resolve()
