"""Whole clips in a real ComfyUI (skipped without COMFYUI_PATH; see tests/comfy_env.py): core's
context windows tried on the packed latent (they run, but are not what estimation needs: the
finding of ``nodes/windows.py``), UnityVideo Windowed Sampling on a batch longer than one window
(every window sampled by core, the overlap conditioned through the noise mask, Cancel between
windows), the default estimate graph on a real clip at its size and fps, and Load Video's
frame range, stride, cap and size cap."""

import pytest

from tests.comfy_env import check, run_child


@pytest.fixture(scope="module")
def checks():
    return run_child("comfy_windows", timeout=900)  # tests/comfy_children/comfy_windows.py


def test_core_context_windows_run_on_the_packed_latent_but_are_not_our_windows(checks):
    """Core's WanContextWindowsManual on a 41-frame packed latent (11 latent frames): 3 windows of 5
    latent frames per step, the clean stream kept. Why the pack still has its own window node
    (``nodes/windows.py``): core cuts latent frames of one whole-clip latent, so a window that
    starts mid-clip is not the latent of those frames as a clip (the codec's first latent
    encodes one frame), and it averages the windows' predictions with no known frames and no
    scale and shift."""
    info = check(checks, "core_context_windows")
    assert info["latent"] == [1, 16, 11, 8, 16]
    assert info["calls"] == [[1, 16, 5, 8, 16]] * 6  # 3 windows x 2 steps
    assert info["clean_kept"] and info["finite"]
    assert info["cut_vs_clip"] > 0.05, info["cut_vs_clip"]


def test_windowed_sampling_runs_every_window_through_core(checks):
    info = check(checks, "windowed")
    assert info["vis"] == [40, 72, 88, 3] and info["values"] == [40, 72, 88] and info["modality"] == "depth"
    assert 0 <= info["range"][0] and info["range"][1] <= 1
    # 72x88 -> 64x80 at the model (aspect kept on the 16-pixel grid): 5 x 8 x (10 | 10) latents
    assert info["calls"] == [[1, 16, 5, 8, 20]] * (info["windows"] * 2)
    assert info["windows"] == 3  # windows at 0, 12 and 23 (the last aligned to the end)
    known_latents = [(k - 1) // 4 + 1 if k else 0 for k in info["known"]]
    assert [m[0] for m in info["masks"]] == known_latents and known_latents[0] == 0 and min(known_latents[1:]) >= 1
    assert all(m[1] == 1 for m in info["masks"])  # the RGB stream is clean in every window
    assert info["preset_diff"] == 0  # UnityVideo Estimate is this node with euler / simple / cfg 1
    assert info["noised_vs_clean"] > 0  # the two conditionings differ (each matches the library's: test_media_nodes)


def test_windowed_control_and_errors(checks):
    info = check(checks, "control_and_errors")
    assert info["rgb"] == [9, 72, 88, 3] and info["values"] is None
    assert 0 <= info["range"][0] and info["range"][1] <= 1
    assert "task must be one of ['video2flow', 'flow2video']" in info["text2all"]
    assert "control_cfg guides controllable generation (flow2video) only" in info["control_on_estimation"]
    assert "exactly one of 'codec'" in info["two_coders"] and "neither is connected" in info["no_coder"]
    assert "window 16 is not 4k+1" in info["bad_window"]
    assert "overlap must be 0 <= overlap < window" in info["overlap_ge_window"]
    assert "conditioning must be one of ['clean', 'noised', 'none']" in info["bad_conditioning"]
    assert "frames must be an IMAGE batch [F, H, W, 3]" in info["not_image"]


def test_cancel_stops_between_windows(checks):
    info = check(checks, "cancel")
    assert info["error"].startswith("InterruptProcessingException") and info["windows_sampled"] == 1


def test_load_video_range_stride_cap_and_size(checks):
    info = check(checks, "load_video")
    assert info["full"] == [120, 144, 176, 3] and info["count"] == 120
    assert info["part"] == [5, 144, 176, 3] and info["part_count"] == 5 and info["part_frames_equal"]
    assert info["part_fps"] == pytest.approx(info["fps"] / 3)
    assert info["small"] == [2, 72, 88, 3]
    assert info["ranged_count"] == 10
    assert "start frame 500 is outside the clip's 120 frames" in info["past_end"]
    assert "end (5) must be after start (5)" in info["end_before_start"]
    assert "end_frame (3) must be after skip_first_frames (5)" in info["validate_bad"] and info["validate_ok"] is True


def test_default_estimate_graph_keeps_frames_size_and_fps(checks):
    info = check(checks, "default_graph")
    assert info["success"], info
    assert info["saved"] == ["unityvideo/estimate_depth.mp4"]
    assert info["frames"] == 40 and info["size"] == [144, 176]
    assert info["fps"] == pytest.approx(info["source_fps"], rel=1e-3)
