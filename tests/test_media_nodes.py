"""The codec, modality and video nodes inside a real ComfyUI (skipped without COMFYUI_PATH; see
tests/comfy_env.py): what they compute, the errors they raise, and how ComfyUI's executor validates
and caches them."""

import pytest

from tests.comfy_env import check, run_child


@pytest.fixture(scope="module")
def checks():
    return run_child("media_nodes", timeout=900)  # tests/comfy_children/media_nodes.py


def test_modality_nodes_round_trip(checks):
    info = check(checks, "modality_round_trip")
    assert info["error"] < 0.01 and info["modality"] == "depth" and info["same_shape"]
    assert "unknown modality" in info["unknown"]


def test_codec_nodes_equal_the_library(checks):
    info = check(checks, "codec")
    assert info["frames"] == [17, 144, 176, 3] and info["latent"] == [1, 16, 5, 18, 22]
    assert info["decoded"] == [17, 144, 176, 3] and 0 <= info["range"][0] and info["range"][1] <= 1
    # the node's codec and the library's are two instances of the same weights: a tight tolerance
    assert info["latent_diff"] < 1e-5 and info["frames_diff"] < 1e-5, info
    assert "48 channels, the built-in codec takes 16" in info["wrong_channels"]
    assert "expected a video latent [B, C, f, h, w]" in info["flat_latent"]
    assert "no built-in codec connected" in info["no_codec"]


def test_estimate_node_runs_the_core_model_as_the_pipeline_does(checks):
    info = check(checks, "estimate")
    assert info["vis"] == [21, 144, 176, 3] and info["modality"] == "depth" and info["values"] == [21, 144, 176]
    # core's sampling (euler, simple) per window against the library's windowed Euler: the windows' frames
    # agree to ~1e-6; the depth decoder's projection onto its colour map can move a value by a fraction
    # of a map step at the joints between segments (seen: 1.4e-3 at 64x80), so the values get that
    # much room at a few pixels and must agree on average
    assert info["windows"] == [2, 2] and info["produced_diff"] < 1e-4
    assert info["values_diff"] < 5e-3 and info["values_mean_diff"] < 1e-5
    assert "needs the built-in codec and text encoder" in info["no_text"]


def test_video_loader_errors(checks):
    info = check(checks, "load_video_errors")
    assert info["widget"] == ["COMBO", ["clip.mp4"], True]  # the input folder's videos, with an upload button
    assert info["listed_later"] == ["clip.mp4"]  # read again each time; other files are not listed
    assert "'nope.mp4' is not in ComfyUI's input folder" in info["missing"]
    assert "escapes the input folder" in info["escape"] and "escapes the input folder" in info["absolute"]
    assert "end (4) must be after start (9)" in info["end_before_start"]
    assert info["validate_bad"] == "end_frame (4) must be after skip_first_frames (9), or 0 for the clip's end"
    assert info["validate_ok"] is True and info["validate_linked"] is True


def test_save_nodes_stay_inside_the_output_folder(checks):
    info = check(checks, "savers_stay_in_the_output_folder")
    assert all(e and "leads outside the output folder" in e for e in info["errors"]) and len(info["errors"]) == 4
    assert info["outside"] == []


def test_graph_saves_caches_and_rereads_a_replaced_file(checks):
    info = check(checks, "graph")
    success, executed = info["first"]
    assert success and sorted(executed) == ["1", "2", "3", "4"]
    assert info["again"] == []  # the file's fingerprint is unchanged: all cached
    assert sorted(info["touched"]) == ["1", "2", "3", "4"]  # new mtime: read again, and all that depends on it
    assert info["ui"]["images"][0]["filename"] == "flow.mp4" and info["ui"]["images"][0]["subfolder"] == "uv"
    assert info["ui"]["animated"] == [False]
    assert info["saved"] == ["uv/flow.mp4", "uv/flow_1.mp4", "uv/flow_raft.npz", "uv/flow_raft_1.npz"]
    assert info["npz"] == ["raft", [9, 26, 32, 2]] and "raft (9, 26, 32, 2)" in info["text"][0]
    assert "prompt failed validation" in info["bad_count"]
    assert "end_frame (4) must be after skip_first_frames (9)" in info["bad_count"]
    success, node, message = info["bad_choice"]
    assert not success and node == "2" and "no offline depth estimator" in message
