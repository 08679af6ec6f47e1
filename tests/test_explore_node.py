"""The exploration node and command: walks on the embedded default, continuation, clear errors."""

import json
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import nodes
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from nodes import explore as explore_node
from unity_core.cli import main
from unity_core.io import read_video


@pytest.fixture(scope="module")
def pipe():
    from unity_core.pipeline import UnityVideoPipeline

    return UnityVideoPipeline.from_pretrained("default")


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch):
    monkeypatch.setattr(explore_node, "_WALKS", OrderedDict())


def _walk(node, pipe, image, actions, size=64, prompt="a room", **kw):
    return node.walk(pipe, image, actions, prompt, "last frame", size, size, 2, 1, "v1", **kw)


def test_node_contract_and_widget_inputs():
    cls = NODE_CLASS_MAPPINGS["UnityVideoExplore"]
    assert NODE_DISPLAY_NAME_MAPPINGS["UnityVideoExplore"] == "UnityVideo Explore (keyboard walk)"
    assert cls.CATEGORY == "UnityVideo/explore" and cls.RETURN_TYPES == ("IMAGE", "STRING")
    spec = cls.INPUT_TYPES()
    # the frontend widget writes `actions` (STRING) and flags `continue_walk` (BOOLEAN)
    assert spec["required"]["actions"][0] == "STRING" and spec["optional"]["continue_walk"][0] == "BOOLEAN"
    assert spec["required"]["model"][0] == nodes.UnityVideoLoader.RETURN_TYPES[0]
    assert spec["required"]["sentence_set"][0] == ["v1", "v1_5"]
    assert spec["hidden"] == {"unique_id": "UNIQUE_ID"}
    changed = cls.IS_CHANGED(continue_walk=True)
    assert changed != changed  # NaN: a continuation always runs, ComfyUI never serves it from its cache
    assert cls.IS_CHANGED(continue_walk=False) == cls.IS_CHANGED(continue_walk=False)


def test_walk_then_continue_appends(pipe):
    node = nodes.UnityVideoExplore()
    clip = torch.rand(3, 48, 80, 3)  # the last frame is the start, resized and cropped to 64x64
    frames, done = _walk(node, pipe, clip, "W ←")
    assert frames.shape == (1 + 2 * 4, 64, 64, 3) and done == "W ←"
    assert torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    more, done2 = _walk(node, pipe, clip, "d", continue_walk=True)
    assert more.shape == (1 + 3 * 4, 64, 64, 3) and done2 == "W ← D"
    assert torch.allclose(more[:9], frames, atol=1e-5)  # the walk so far is kept, the new segment appended


def test_memory_by_node_id_and_new_walk_when_inputs_change(pipe):
    image = torch.rand(1, 32, 32, 3)
    # nothing in memory for node 7 yet: continue_walk starts a new walk from the image
    frames, done = _walk(nodes.UnityVideoExplore(), pipe, image, "D", size=32, continue_walk=True, unique_id="7")
    assert frames.shape[0] == 5 and done == "D"
    # ComfyUI may hand a new node object; the walk is found by node id
    frames, done = _walk(nodes.UnityVideoExplore(), pipe, image, "S", size=32, continue_walk=True, unique_id="7")
    assert frames.shape[0] == 9 and done == "D S"
    # another prompt is another world: a new walk
    frames, done = _walk(nodes.UnityVideoExplore(), pipe, image, "W", size=32, prompt="a garden", continue_walk=True,
                         unique_id="7")
    assert frames.shape[0] == 5 and done == "W"
    assert list(explore_node._WALKS) == ["7"]


def test_interrupted_walk_leaves_the_memory_alone(pipe, monkeypatch):
    from unity_core.sampling import SamplingInterrupted

    monkeypatch.setattr(explore_node._comfy, "should_interrupt", lambda: True)
    with pytest.raises(SamplingInterrupted):
        _walk(nodes.UnityVideoExplore(), pipe, torch.rand(1, 32, 32, 3), "W", size=32, unique_id="3")
    assert not explore_node._WALKS


@pytest.mark.parametrize("script,message", [
    ("W W+S", r"actions: entry 2: bad action 'W\+S': opposite keys W and S"),
    ("W Q", r"actions: entry 2: bad action 'Q': unknown key"),
    ("   ", r"actions: the action script is empty"),
])
def test_bad_actions_are_named(script, message):
    model = SimpleNamespace(codec=object(), text_encoder=object())  # fails before touching the model
    with pytest.raises(ValueError, match=message):
        _walk(nodes.UnityVideoExplore(), model, torch.rand(1, 16, 16, 3), script)


def test_model_without_codec_is_refused():
    with pytest.raises(ValueError, match="built-in codec and text encoder"):
        _walk(nodes.UnityVideoExplore(), SimpleNamespace(codec=None, text_encoder=None), torch.rand(1, 16, 16, 3), "W")


def test_cli_explore_writes_video_and_json_never_overwrites(tmp_path, carphone_path, capsys):
    from PIL import Image

    first, _ = read_video(carphone_path, num_frames=1)
    png = tmp_path / "start.png"
    Image.fromarray((first[0].numpy() * 255).round().astype(np.uint8)).save(png)
    out = tmp_path / "walk.mp4"
    assert main(["explore", "--image", str(png), "--actions", "W <", "--prompt", "a car", "--out", str(out),
                 "--steps", "2", "--seed", "3"]) == 0
    frames, _ = read_video(out)
    assert frames.shape == (9, 64, 64, 3)
    record = json.loads((tmp_path / "walk.json").read_text(encoding="utf-8"))
    assert record["actions"] == "W ←" and record["frames"] == 9
    assert [s["action"] for s in record["segments"]] == ["W", "←"]
    assert [s["frames"] for s in record["segments"]] == [[1, 5], [5, 9]]
    assert record["segments"][0]["prompt"].startswith("a car ") and "(←)" in record["segments"][1]["prompt"]
    # a video as the start image (its first frame); the existing files get new names
    assert main(["explore", "--image", str(carphone_path), "--actions", "D", "--out", str(out), "--steps", "2",
                 "--size", "32x32"]) == 0
    assert read_video(tmp_path / "walk.mp4")[0].shape == (9, 64, 64, 3)  # untouched
    assert read_video(tmp_path / "walk_1.mp4")[0].shape == (5, 32, 32, 3)
    assert json.loads((tmp_path / "walk_1.json").read_text(encoding="utf-8"))["actions"] == "D"
    assert "walk_1.mp4" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--image", "{png}", "--actions", "W+S"], r"--actions: entry 1: bad action 'W\+S': opposite keys"),
    (["--image", "missing.png", "--actions", "W"], "start image .* does not exist"),
])
def test_cli_explore_bad_inputs(args, message, tmp_path, capsys):
    import re

    png = tmp_path / "s.png"
    png.write_bytes(b"")
    args = [a.replace("{png}", str(png)) for a in args]
    assert main(["explore", *args, "--out", str(tmp_path / "x.mp4"), "--steps", "2"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.json").exists()


def test_continuing_from_a_bare_latent_numbers_the_new_frames(pipe):
    from unity_core.explore.long_video import explore

    first = explore(pipe, torch.rand(1, 32, 32, 3), "W S", steps=1, seed=0)
    assert first.segment_frames == [(1, 5), (5, 9)] and first.frames.shape[0] == 9
    more = explore(pipe, None, "D", steps=1, seed=0, history=first.latent)
    # a bare latent keeps all of its decoded frames (it has no record of still frames)
    total = 1 + (first.latent.shape[2] - 1) * 4
    assert more.frames.shape[0] == total + 4 and more.segment_frames == [(total, total + 4)]
    again = explore(pipe, None, "D", steps=1, seed=0, history=first)
    assert again.segment_frames[-1] == (9, 13) and again.frames.shape[0] == 13
    assert again.info["content_shortened"] is False and "prefix" in again.info
    with pytest.raises(ValueError, match="pass image=None and size=None"):
        explore(pipe, torch.rand(1, 32, 32, 3), "D", steps=1, history=first)
    with pytest.raises(ValueError, match="pass image=None and size=None"):
        explore(pipe, None, "D", steps=1, history=first, size=(64, 64))


def test_start_choices_and_grey_start_images(pipe, tmp_path):
    import imageio.v3 as iio

    from unity_core.explore.long_video import _as_frames, start_frames

    clip = torch.rand(5, 8, 8, 3)
    assert torch.equal(start_frames(clip, "first"), clip[:1]) and torch.equal(start_frames(clip, "last"), clip[4:])
    assert start_frames(clip, "clip") is clip
    with pytest.raises(ValueError, match="unknown start 'middle'; use one of first, last, clip"):
        start_frames(clip, "middle")
    with pytest.raises(ValueError, match="unknown start 'middle'"):
        nodes.UnityVideoExplore().walk(pipe, clip, "W", "a room", "middle", 32, 32, 1, 0, "v1")
    frames, _ = nodes.UnityVideoExplore().walk(pipe, clip, "W", "a room", "first frame", 32, 32, 1, 0, "v1")
    assert frames.shape == (5, 32, 32, 3)
    grey = tmp_path / "grey.png"
    iio.imwrite(grey, (np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8))
    assert _as_frames(grey).shape == (1, 40, 48, 3)
