"""Every node honours ComfyUI's V3 node contract, and the loader, task, split, codec, modality and save
nodes behave (and refuse bad input) as documented. The nodes import ``comfy_api``, so all of this
runs in a ComfyUI process (``tests/comfy_env.py``); without ``COMFYUI_PATH`` it is skipped.
"""

from __future__ import annotations

import pytest

from tests.comfy_env import run_child


@pytest.fixture(scope="module")
def figures():
    return run_child("pack_nodes", timeout=900)  # tests/comfy_children/pack_nodes.py


def test_every_node_honours_the_v3_contract(figures):
    assert len(figures["contract"]) >= 15
    for node_id, c in figures["contract"].items():
        assert c["registered"] and c["tooltips"] and c["description"] and c["output_names"], (node_id, c)
        assert c["display"].startswith("UnityVideo") and c["category"].startswith("UnityVideo/"), (node_id, c)


def test_no_second_sampling_loop_among_the_nodes(figures):
    assert "UnityVideoSampler" not in figures["contract"]
    assert {"UnityVideoTask", "UnityVideoSplit", "UnityVideoControlGuider", "UnityVideoTimeTravelSampler"} <= set(figures["contract"])


def test_loader_refuses_paths_outside_the_model_folders(figures):
    assert "escapes" in figures["errors"]["escape"]
    assert "not found" in figures["errors"]["unknown"]
    assert figures["choices_first"]


def test_loader_gives_core_model_codec_and_text_encoder(figures):
    f = figures["loader"]
    assert f["patcher"] and f["wrapper"] == "UnityVideoModel" and f["format"] == "UnityVideoDefaultLatent", f
    assert f["factors"] == [16, 3] and f["codec_channels"] == 16 and f["text_dim"] == 384, f
    assert f["shift"] == 1.0 and f["multiplier"] == 1000.0, f


def test_fp8_storage_runs_close_to_fp32(figures):
    f = figures["fp8"]
    assert f["linear_dtype"] == "torch.float8_e4m3fn" and f["manual_cast"] == "torch.float32", f
    assert 0 < f["err_vs_fp32"] < 0.1 * f["scale"], f


def test_default_previews_follow_the_video(figures):
    f = figures["preview"]
    assert f["previewer"] == "Latent2RGBPreviewer", f
    assert f["mean_abs_error"] < 0.1, f  # colours in [0, 1] on an unseen clip


def test_task_node_refuses_missing_inputs_naming_the_fix(figures):
    e = figures["errors"]
    assert "needs modality_latent" in e["flow2video"]
    assert "needs rgb_latent" in e["video2flow"]
    assert "connect 'clip'" in e["no_encoder"] and "text_encoder" in e["no_encoder"]
    assert "[B, C, F, H, W]" in e["shapes"]
    assert "even width" in e["split"] or "packed UnityVideo latent" in e["split"]


def test_task_node_packs_the_streams_and_masks_the_clean_one(figures):
    f = figures["task"]
    assert f["packed"] == [1, 16, 2, 8, 16]
    assert f["mask_rgb"] == 0.0 and f["mask_mod"] == 1.0
    for cond in (f["cond"], f["neg_cond"]):
        assert {"unityvideo_modality", "unityvideo_modality_context", "unityvideo_packed"} <= set(cond)
    assert f["joint"] == [2, 16, 3, 4, 16] and not f["joint_mask"]


def test_core_ksampler_moves_the_progress_bar_with_previews_and_cancels(figures):
    assert figures["progress"] == [[1, 4, True], [2, 4, True], [3, 4, True], [4, 4, True]]
    assert "InterruptProcessingException" in figures["cancel"]["error"] and figures["cancel"]["steps"] == 2


def test_modality_nodes_round_trip_and_refuse_unknown_names(figures):
    assert figures["round_trip"] < 0.01
    assert "unknown modality" in figures["errors"]["modality"]


def test_save_nodes_stay_inside_the_output_folder(figures):
    assert "leads outside the output folder" in figures["errors"]["save_up"]
    assert "leads outside the output folder" in figures["errors"]["save_abs"]
    assert figures["saved"] == {"subfolder": "sub", "exists": True}
