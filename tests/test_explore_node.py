"""The exploration node inside a real ComfyUI (skipped without COMFYUI_PATH; see tests/comfy_env.py),
and the exploration command and library calls behind it."""

import json

import numpy as np
import pytest
import torch

from tests.comfy_env import check, run_in_comfy
from unity_core.cli import main
from unity_core.io import read_video

NODE_CHECKS = r"""
import math

import torch
import comfy.model_management as mm
import nodes

explore_node = pack.nodes.explore
EXPLORE = nodes.NODE_CLASS_MAPPINGS["UnityVideoExplore"]
(model, codec, text_encoder), _ = call_node("UnityVideoLoader", checkpoint="(embedded default)", weight_dtype="default")


def walk(image, actions, size=64, prompt="a room", node=None, **kw):
    inputs = dict(model=model, codec=codec, text_encoder=text_encoder, image=image, actions=actions, prompt=prompt,
                  start="last frame", width=size, height=size, steps=2, seed=1, sentence_set="v1")
    inputs.update(kw)
    (frames, done), _ = call_node("UnityVideoExplore", hidden={"UNIQUE_ID": node} if node else None, **inputs)
    return frames, done


def error_of(fn):
    try:
        fn()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


@record("contract")
def _():
    info = EXPLORE.GET_NODE_INFO_V1()
    req, opt = info["input"]["required"], info["input"].get("optional", {})
    loader = nodes.NODE_CLASS_MAPPINGS["UnityVideoLoader"]
    return {"category": info["category"], "display": info["display_name"], "output": info["output"],
            "output_name": info["output_name"], "hidden": info["input"].get("hidden"),
            "types": {k: v[0] for k, v in {**req, **opt}.items() if isinstance(v[0], str)},
            "optional": sorted(opt), "sentence_sets": req["sentence_set"][1]["options"],
            "loader_outputs": list(loader.RETURN_TYPES),
            "fingerprint_continue_is_nan": math.isnan(EXPLORE.fingerprint_inputs(continue_walk=True)),
            "fingerprint_new": [EXPLORE.fingerprint_inputs(continue_walk=False), EXPLORE.fingerprint_inputs()]}


@record("walk_then_continue")
def _():
    explore_node._WALKS.clear()
    clip = torch.rand(3, 48, 80, 3)  # the last frame is the start, resized and cropped to 64x64
    frames, done = walk(clip, "W ←", node="1")
    more, done2 = walk(clip, "d", node="1", continue_walk=True)
    return {"shape": list(frames.shape), "done": done, "finite": bool(torch.isfinite(frames).all()),
            "range": [float(frames.min()), float(frames.max())], "more": list(more.shape), "done2": done2,
            "kept": float((more[:9] - frames).abs().max())}


@record("memory_by_node_id")
def _():
    explore_node._WALKS.clear()
    image = torch.rand(1, 32, 32, 3)
    steps = [walk(image, "D", size=32, node="7", continue_walk=True),  # nothing in memory: a new walk
             walk(image, "S", size=32, node="7", continue_walk=True),  # found by node id
             walk(image, "W", size=32, node="7", continue_walk=True, prompt="a garden")]  # another world: new
    other = walk(image, "A", size=32, node="8", continue_walk=True)  # another node id: its own walk
    return {"walks": [[f.shape[0], d] for f, d in steps], "other": [other[0].shape[0], other[1]],
            "kept": sorted(explore_node._WALKS)}


@record("loaded_by_comfyui")
def _():
    mm.unload_all_models()
    before = any(m.model is model for m in mm.current_loaded_models)
    walk(torch.rand(1, 32, 32, 3), "W", size=32, steps=1)
    after = [m for m in mm.current_loaded_models if m.model is model]
    transformer = model.model.diffusion_model
    return {"before": before, "after": len(after),
            "device": str(next(transformer.parameters()).device), "comfy_device": str(mm.get_torch_device())}


@record("interrupted")
def _():
    explore_node._WALKS.clear()
    mm.interrupt_current_processing(True)
    try:
        error = error_of(lambda: walk(torch.rand(1, 32, 32, 3), "W", size=32, node="3"))
    finally:
        mm.interrupt_current_processing(False)
    return {"error": error, "kept": sorted(explore_node._WALKS)}


@record("bad_inputs")
def _():
    out = {}
    for script in ("W W+S", "W Q", "   "):
        out[script] = [error_of(lambda: walk(torch.rand(1, 16, 16, 3), script, model=None, codec=None)),
                       EXPLORE.validate_inputs(actions=script)]
    out["valid"] = EXPLORE.validate_inputs(actions="W W+A ←")
    out["no_codec"] = error_of(lambda: walk(torch.rand(1, 16, 16, 3), "W", codec=None))
    out["not_ours"] = error_of(lambda: walk(torch.rand(1, 16, 16, 3), "W", model=object()))
    out["middle"] = error_of(lambda: walk(torch.rand(5, 8, 8, 3), "W", start="middle"))
    first, _ = walk(torch.rand(5, 8, 8, 3), "W", size=32, start="first frame", steps=1)
    out["first_frame"] = list(first.shape)
    return out


@record("graph")
def _():
    explore_node._WALKS.clear()
    prompt = {
        "1": {"class_type": "UnityVideoLoader",
              "inputs": {"checkpoint": "(embedded default)", "weight_dtype": "default"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x808080}},
        "3": {"class_type": "UnityVideoExplore", "inputs": {
            "model": ["1", 0], "codec": ["1", 1], "text_encoder": ["1", 2], "image": ["2", 0], "actions": "W",
            "prompt": "a room", "start": "last frame", "width": 32, "height": 32, "steps": 1, "seed": 0,
            "sentence_set": "v1", "continue_walk": False}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    runs = [run_prompt(prompt)]
    runs.append(run_prompt(prompt, runs[0].executor))  # same inputs: served from the cache
    prompt["3"]["inputs"]["continue_walk"] = True
    runs.append(run_prompt(prompt, runs[0].executor))  # a continuation always runs
    runs.append(run_prompt(prompt, runs[0].executor))  # ... and extends the walk again
    bad = dict(prompt, **{"3": {**prompt["3"], "inputs": {**prompt["3"]["inputs"], "actions": "W Q"}}})
    return {"runs": [{"success": r.success, "explore_ran": "3" in r.executed, "loader_ran": "1" in r.executed,
                      "frames": r.outputs("3")[0].shape[0], "done": r.outputs("3")[1],
                      "previews": len(r.ui.get("4", {}).get("images", []))} for r in runs],
            "bad": error_of(lambda: run_prompt(bad))}
"""


@pytest.fixture(scope="module")
def node_checks():
    return run_in_comfy(NODE_CHECKS, timeout=900)


def test_node_contract_and_widget_inputs(node_checks):
    info = check(node_checks, "contract")
    assert info["category"] == "UnityVideo/explore" and info["display"] == "UnityVideo Explore (keyboard walk)"
    assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["frames", "actions_done"]
    # the frontend widget writes `actions` (STRING) and flags `continue_walk` (BOOLEAN, optional)
    assert info["types"]["actions"] == "STRING" and info["types"]["continue_walk"] == "BOOLEAN"
    assert info["optional"] == ["continue_walk"] and info["hidden"] == {"unique_id": ["UNIQUE_ID"]}
    # the loader's three outputs plug into the explorer's first three inputs
    assert [info["types"][k] for k in ("model", "codec", "text_encoder")] == info["loader_outputs"]
    assert info["loader_outputs"] == ["MODEL", "UNITYVIDEO_CODEC", "UNITYVIDEO_TEXT_ENCODER"]
    assert info["sentence_sets"] == ["v1", "v1_5"]
    # NaN: a continuation always runs; a new walk is cached on its inputs
    assert info["fingerprint_continue_is_nan"] and info["fingerprint_new"][0] == info["fingerprint_new"][1]


def test_walk_then_continue_appends(node_checks):
    info = check(node_checks, "walk_then_continue")
    assert info["shape"] == [1 + 2 * 4, 64, 64, 3] and info["done"] == "W ←" and info["finite"]
    assert 0 <= info["range"][0] and info["range"][1] <= 1
    assert info["more"] == [1 + 3 * 4, 64, 64, 3] and info["done2"] == "W ← D"
    assert info["kept"] < 1e-5  # the walk so far is kept, the new segment appended


def test_memory_by_node_id_and_new_walk_when_inputs_change(node_checks):
    info = check(node_checks, "memory_by_node_id")
    assert info["walks"] == [[5, "D"], [9, "D S"], [5, "W"]]
    assert info["other"] == [5, "A"] and info["kept"] == ["7", "8"]


def test_model_is_loaded_by_comfyuis_memory_manager(node_checks):
    info = check(node_checks, "loaded_by_comfyui")
    assert info["before"] is False and info["after"] == 1  # unloaded, then loaded again by the node's run
    assert info["device"] == info["comfy_device"]


def test_interrupted_walk_raises_comfyuis_interruption_and_leaves_the_memory_alone(node_checks):
    info = check(node_checks, "interrupted")
    assert info["error"].startswith("InterruptProcessingException") and info["kept"] == []


@pytest.mark.parametrize("script,message", [
    ("W W+S", r"actions: entry 2: bad action 'W+S': opposite keys W and S"),
    ("W Q", r"actions: entry 2: bad action 'Q': unknown key"),
    ("   ", r"actions: the action script is empty"),
])
def test_bad_actions_are_named_when_queued_and_when_run(node_checks, script, message):
    raised, validated = check(node_checks, "bad_inputs")[script]
    assert raised.startswith("ValueError: " + message)  # before touching the (missing) model
    assert validated.startswith(message)


def test_missing_codec_wrong_model_and_start_choices(node_checks):
    info = check(node_checks, "bad_inputs")
    assert info["valid"] is True
    assert "needs the built-in codec and text encoder" in info["no_codec"]
    assert "expected the MODEL output of UnityVideo Loader, got object" in info["not_ours"]
    assert "unknown start 'middle'" in info["middle"]
    assert info["first_frame"] == [5, 32, 32, 3]


def test_graph_through_comfyuis_executor_caches_walks_and_reruns_continuations(node_checks):
    info = check(node_checks, "graph")
    first, cached, cont, cont2 = info["runs"]
    assert all(r["success"] for r in info["runs"])
    assert first["explore_ran"] and first["loader_ran"] and first["frames"] == 5 and first["previews"] == 5
    assert not cached["explore_ran"] and cached["frames"] == 5
    assert cont["explore_ran"] and not cont["loader_ran"] and cont["frames"] == 9 and cont["done"] == "W W"
    assert cont2["explore_ran"] and cont2["frames"] == 13 and cont2["done"] == "W W W"
    assert "prompt failed validation" in info["bad"] and "actions: entry 2: bad action 'Q'" in info["bad"]


@pytest.fixture(scope="module")
def pipe():
    from unity_core.pipeline import UnityVideoPipeline

    return UnityVideoPipeline.from_pretrained("default")


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


def test_start_choices_and_grey_start_images(tmp_path):
    import imageio.v3 as iio

    from unity_core.explore.long_video import _as_frames, start_frames

    clip = torch.rand(5, 8, 8, 3)
    assert torch.equal(start_frames(clip, "first"), clip[:1]) and torch.equal(start_frames(clip, "last"), clip[4:])
    assert start_frames(clip, "clip") is clip
    with pytest.raises(ValueError, match="unknown start 'middle'; use one of first, last, clip"):
        start_frames(clip, "middle")
    grey = tmp_path / "grey.png"
    iio.imwrite(grey, (np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8))
    assert _as_frames(grey).shape == (1, 40, 48, 3)
