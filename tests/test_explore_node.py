"""The exploration node inside a real ComfyUI (skipped without COMFYUI_PATH; see tests/comfy_env.py),
and the exploration command and library calls behind it."""

import json

import numpy as np
import pytest
import torch

from tests.comfy_env import check, run_child
from unity_core.cli import main
from unity_core.io import read_video


@pytest.fixture(scope="module")
def node_checks():
    return run_child("explore_node", "node_checks", timeout=900)  # tests/comfy_children/explore_node.py


def test_node_contract_and_widget_inputs(node_checks):
    info = check(node_checks, "contract")
    assert info["category"] == "UnityVideo/explore" and info["display"] == "UnityVideo Explore (keyboard walk)"
    assert info["output"] == ["IMAGE", "STRING"] and info["output_name"] == ["frames", "actions_done"]
    # the frontend widget writes `actions` (STRING) and flags `continue_walk` (BOOLEAN, optional)
    assert info["types"]["actions"] == "STRING" and info["types"]["continue_walk"] == "BOOLEAN"
    assert info["optional"] == ["clip", "codec", "continue_walk", "history_mode", "image", "sampler", "sigmas",
                                "text_encoder", "tiled_decode", "vae"]
    # saved UI graphs link by slot: the first four sockets keep theirs, core's VAE and CLIP come after,
    # then Yume-5B's core SAMPLER and SIGMAS
    assert info["sockets"] == ["model", "codec", "text_encoder", "image", "vae", "clip", "sampler", "sigmas"]
    assert info["hidden"] == {"unique_id": ["UNIQUE_ID"]}
    # the loader's three outputs plug into the explorer's first three inputs; core's VAE and CLIP beside them
    assert [info["types"][k] for k in ("model", "codec", "text_encoder")] == info["loader_outputs"]
    assert info["loader_outputs"] == ["MODEL", "UNITYVIDEO_CODEC", "UNITYVIDEO_TEXT_ENCODER"]
    assert info["types"]["vae"] == "VAE" and info["types"]["clip"] == "CLIP"
    # "model default" / steps 0 take the model's settings; saved graphs with v1 / 20 still validate
    assert info["sentence_sets"] == ["model default", "v1", "v1_5"] and info["sentence_default"] == "model default"
    assert info["steps"]["default"] == 0 and info["steps"]["min"] == 0 and "0 = the model's default" in \
        info["steps"]["tooltip"]
    # the inputs added later have no default, so graphs saved before them are filled with nothing
    assert info["new_widget_defaults"] == [None, None]
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
    assert "needs exactly one of 'codec' and 'vae' (neither is connected)" in info["no_codec"]
    assert "'vae' from VAELoader" in info["no_codec"]
    assert "needs exactly one of 'text_encoder' and 'clip' (neither is connected)" in info["no_text"]
    assert "needs a start image: connect 'image'" in info["no_image"]
    assert "history_mode 'start+last' is Yume-5B's" in info["yume_only"] and "UnityVideo Loader" in info["yume_only"]
    assert "tiled_decode is core's tiled VAE decode; connect 'vae'" in info["tiled_without_vae"]
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


# -- a Yume-5B MODEL from UnityVideo Loader with core's VAE and CLIP ------------------------------

# tests/comfy_children/explore_node.py's yume_checks, on a folder written by scripts/make_random_5b.py --tiny --yume
@pytest.fixture(scope="module")
def yume_checks(tmp_path_factory):
    import sys

    from tests.comfy_env import REPO, comfy_path

    comfy_path()  # skip before writing anything when there is no ComfyUI
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    from make_random_5b import make_random_5b

    folder = tmp_path_factory.mktemp("tiny_yume")
    make_random_5b(folder, tiny=True, yume=True, log=lambda *_: None)
    return run_child("explore_node", "yume_checks", kwargs={"tiny": str(folder)}, timeout=900)


def test_yume_model_from_our_loader_has_history_layers_and_no_builtin_codec(yume_checks):
    assert check(yume_checks, "yume_loader") == {"codec": True, "text": True, "history": True}


def test_yume_walk_with_core_vae_and_clip_takes_the_yume_defaults(yume_checks):
    from unity_core.explore.long_video import walk_frame_count
    from unity_core.explore.samplers import YUME5B_DEFAULTS

    info = check(yume_checks, "yume_walk")
    assert info["shape"] == [walk_frame_count(2), 32, 32, 3] == [1 + 32 * 2, 32, 32, 3] and info["done"] == "W D"
    assert info["finite"] and 0 <= info["range"][0] and info["range"][1] <= 1
    # steps 0 and "model default": the Yume-5B sampler's 4 steps and Yume 1.5's sentences
    default = info["default"]
    assert default["sampler"] == "yume-5b" and default["history_mode"] == "all"
    assert default["steps"] == YUME5B_DEFAULTS["steps"] == 4 and default["sentence_set"] == "v1_5"
    assert "The camera pushes forward (W)." in default["prompts"][0] and "(D)" in default["prompts"][1]
    # a continuation appends 32 frames per action and keeps the walk so far
    assert info["more"] == [walk_frame_count(3), 32, 32, 3] and info["done2"] == "W D A" and info["kept"] < 1e-5
    # values the user set win over the model's
    assert info["set"]["steps"] == 1 and info["set"]["sentence_set"] == "v1"


def test_yume_tiled_decode_and_start_last_history(yume_checks):
    info = check(yume_checks, "yume_tiled_and_history_mode")
    assert info["plain"] == info["tiled"] == [33, 32, 32, 3]
    assert info["diff"] < 1e-3  # one tile covers 32x32: core's tiled decode gives the same frames
    assert info["start_last"] == [65, 32, 32, 3] and info["mode"] == "start+last"


def test_vae_and_clip_adapters_agree_with_cores_nodes(yume_checks):
    info = check(yume_checks, "adapters")
    assert info["ratios"] == [16, 4] and info["latent"] == [1, 48, 2, 2, 2] and info["decoded"] == [1, 3, 5, 32, 32]
    assert info["vs_core_encode"] < 1e-5 and info["vs_core_decode"] < 1e-5  # VAEEncode + process_in / VAEDecode
    assert -1 <= info["range"][0] and info["range"][1] <= 1
    assert info["text"][0] == 2 and info["text"][2] == 4096 and info["vs_core_text"] < 1e-5


def test_yume_explore_refuses_wrong_connections_and_cores_unet_loader(yume_checks):
    info = check(yume_checks, "yume_errors")
    assert "needs exactly one of 'codec' and 'vae' (both are connected)" in info["both_codecs"]
    assert "needs exactly one of 'text_encoder' and 'clip' (both are connected)" in info["both_texts"]
    assert "needs exactly one of 'codec' and 'vae' (neither is connected)" in info["no_vae"]
    # core's Load Diffusion Model reads the Yume file as a plain Wan2.2 and drops the history layers
    assert info["core_unet_class"] == "WanModel"
    assert "got ModelPatcher around WanModel" in info["core_unet"] and "UNETLoader" in info["core_unet"]
    assert "load the checkpoint with UnityVideo Loader" in info["core_unet"]
    assert "unknown history_mode 'recent'" in info["bad_mode"]
    assert "history_mode 'start+last' is Yume-5B's" in info["default_yume_mode"]
    assert "the VAE makes 48-channel latents but this MODEL takes 16" in info["default_with_vae"]


def test_yume_explore_graph_through_comfyuis_executor(yume_checks):
    info = check(yume_checks, "yume_graph")
    assert info["success"], info["error"]
    assert info["frames"] == 65 and info["done"] == "W D" and info["previews"] == 65
    assert info["both_codecs"][0] is False and "needs exactly one of 'codec' and 'vae'" in info["both_codecs"][1]


@pytest.fixture(scope="module")
def pipe(default_pipeline):
    return default_pipeline


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
    first = pipe.explore(torch.rand(1, 32, 32, 3), "W S", steps=1, seed=0)
    assert first.segment_frames == [(1, 5), (5, 9)] and first.frames.shape[0] == 9
    more = pipe.explore(None, "D", steps=1, seed=0, history=first.latent)
    # a bare latent keeps all of its decoded frames (it has no record of still frames)
    total = 1 + (first.latent.shape[2] - 1) * 4
    assert more.frames.shape[0] == total + 4 and more.segment_frames == [(total, total + 4)]
    again = pipe.explore(None, "D", steps=1, seed=0, history=first)
    assert again.segment_frames[-1] == (9, 13) and again.frames.shape[0] == 13
    assert again.info["content_shortened"] is False and "prefix" in again.info
    with pytest.raises(ValueError, match="pass image=None and size=None"):
        pipe.explore(torch.rand(1, 32, 32, 3), "D", steps=1, history=first)
    with pytest.raises(ValueError, match="pass image=None and size=None"):
        pipe.explore(None, "D", steps=1, history=first, size=(64, 64))


def test_start_choices_and_grey_start_images(tmp_path):
    import imageio.v3 as iio

    from unity_core.explore.start import as_frames, start_frames

    clip = torch.rand(5, 8, 8, 3)
    assert torch.equal(start_frames(clip, "first"), clip[:1]) and torch.equal(start_frames(clip, "last"), clip[4:])
    assert start_frames(clip, "clip") is clip
    with pytest.raises(ValueError, match="unknown start 'middle'; use one of first, last, clip"):
        start_frames(clip, "middle")
    grey = tmp_path / "grey.png"
    iio.imwrite(grey, (np.random.default_rng(0).random((40, 48)) * 255).astype(np.uint8))
    assert as_frames(grey).shape == (1, 40, 48, 3)
