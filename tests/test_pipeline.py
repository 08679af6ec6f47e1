"""The pipeline front door on the embedded default."""

import pytest
import torch

from unity_core.pipeline import UnityVideoPipeline


@pytest.fixture(scope="module")
def pipe(default_pipeline):
    return default_pipeline


def test_shipped_default_loads_strictly_and_runs_every_task(pipe):
    frames = torch.rand(17, 64, 64, 3)
    est = pipe.estimate(frames, "depth", steps=2, seed=0)
    assert est.modality_frames.shape == (17, 64, 64, 3) and est.values.shape == (17, 64, 64)
    gen = pipe.generate("a person", "segmentation", steps=2, seed=0)
    assert gen.rgb.shape == (17, 64, 64, 3) and gen.values.dtype == torch.int64
    ctl = pipe.control(gen.modality_frames, "segmentation", "a person", steps=2, seed=0)
    assert torch.isfinite(ctl.rgb).all()


def test_same_seed_same_result(pipe):
    a = pipe.generate("a room", "depth", steps=2, seed=3)
    b = pipe.generate("a room", "depth", steps=2, seed=3)
    assert torch.equal(a.rgb, b.rgb)


def test_defaults_have_one_home(pipe):
    """The loaded pipeline's defaults are those the command line's help and the nodes read."""
    from unity_core.constants import INFERENCE_DEFAULTS, embedded_defaults, pipeline_defaults

    assert pipe.defaults == embedded_defaults() and pipe.defaults["num_frames"] == 17
    assert pipeline_defaults() == INFERENCE_DEFAULTS
    assert pipeline_defaults({"defaults": {"steps": 7}}) == {**INFERENCE_DEFAULTS, "steps": 7}
    assert embedded_defaults() is not embedded_defaults()  # a fresh dict: callers may change theirs


def test_after_prompts_encoded_frees_the_text_encoder_only_when_asked(pipe):
    other = UnityVideoPipeline(pipe.transformer, pipe.codec, pipe.text_encoder)  # shares the parts, not the fields
    ctx = other.encode_prompt("a room")
    other.after_prompts_encoded()
    assert other.text_encoder is pipe.text_encoder  # not asked: kept
    other.free_text_encoder_after_encoding = True
    other.after_prompts_encoded()
    assert other.text_encoder is None and pipe.text_encoder is not None
    assert torch.equal(other.encode_prompt("a room"), ctx)  # the encoded prompt stays cached
    other.after_prompts_encoded()  # already freed: nothing to do


def test_save_and_reload(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    again = UnityVideoPipeline.from_pretrained(tmp_path / "p")
    ref = pipe.transformer.state_dict()
    assert all(torch.equal(v.to(ref[k].dtype), ref[k]) for k, v in again.transformer.state_dict().items())
    with pytest.raises(FileExistsError):
        pipe.save_pretrained(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="pipeline.json"):
        UnityVideoPipeline.from_pretrained(tmp_path / "nothing")


def test_pipeline_defaults_reach_the_sampler(pipe, monkeypatch):
    import unity_core.pipeline as P

    seen = {}

    def spy(model, task, **kw):
        seen[task] = kw
        raise RuntimeError("stop")

    monkeypatch.setattr(P, "sample", spy)
    monkeypatch.setattr(pipe, "defaults", {**pipe.defaults, "cfg": 2.5, "shift": 3.0, "control_cfg": 6.0})
    for run in (lambda: pipe.generate("a room", "depth"), lambda: pipe.control(torch.rand(17, 64, 64, 3), "depth", "")):
        with pytest.raises(RuntimeError, match="stop"):
            run()
    assert seen["text2all"]["cfg"] == 2.5 and seen["text2all"]["shift"] == 3.0 and "control_cfg" not in seen["text2all"]
    assert seen["flow2video"]["control_cfg"] == 6.0 and seen["flow2video"]["negative_context"] is not None


def test_public_methods_resolve_modality_names_before_the_inner_code(pipe, monkeypatch):
    """The methods are the edge: an alias or UI label reaches the window runner and the sampler
    (which take release names only) as the release's name."""
    import unity_core.pipeline as P

    seen = []

    def spy(model, task, **kw):
        seen.append((task, kw["modality"]))
        raise RuntimeError("stop")

    monkeypatch.setattr(P, "sample", spy)
    for run in (lambda: pipe.estimate(torch.rand(17, 64, 64, 3), "flow"),  # whole clip: run_clip's windows
                lambda: pipe.estimate(torch.rand(17, 64, 64, 3), "optical_flow", num_frames=17),
                lambda: pipe.generate("a room", "Optical Flow (raft)"),
                lambda: pipe.control(torch.rand(17, 64, 64, 3), "flow", "")):
        with pytest.raises(RuntimeError, match="stop"):
            run()
    assert seen == [("video2flow", "raft"), ("video2flow", "raft"), ("text2all", "raft"), ("flow2video", "raft")]


def test_saved_pipeline_points_at_a_umt5_folder(pipe, tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(pipe, "text_encoder", type("UMT5", (), {"name": "umt5", "path": "/models/umt5-xxl"})())
    folder = pipe.save_pretrained(tmp_path / "p")
    assert json.loads((folder / "pipeline.json").read_text())["text_encoder"] == "/models/umt5-xxl"
