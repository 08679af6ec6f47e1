"""Run by tests/test_explore_node.py: UnityVideo Explore inside ComfyUI, on the embedded default
(:func:`node_checks`) and on a tiny random Yume-5B with core's VAE and CLIP (:func:`yume_checks`;
its set-up, :func:`yume_setup`, is shared with ``yume_native``)."""

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import torch

import comfy.ldm.wan.vae2_2
import comfy.model_management as mm
import comfy.sd
import nodes


def node_checks(child):
    """The explorer on the embedded default: each check under its name (``@record``)."""
    pack, record, error_of, call_node = child.pack, child.record, child.error_of, child.call_node
    run_prompt = child.run_prompt
    explore_node = pack.nodes.explore
    EXPLORE = nodes.NODE_CLASS_MAPPINGS["UnityVideoExplore"]
    (model, codec, text_encoder), _ = call_node("UnityVideoLoader", checkpoint="(embedded default)", weight_dtype="default")

    def walk(image, actions, size=64, prompt="a room", node=None, **kw):
        inputs = dict(model=model, codec=codec, text_encoder=text_encoder, image=image, actions=actions, prompt=prompt,
                      start="last frame", width=size, height=size, steps=2, seed=1, sentence_set="v1")
        inputs.update(kw)
        (frames, done), _ = call_node("UnityVideoExplore", hidden={"UNIQUE_ID": node} if node else None, **inputs)
        return frames, done

    @record("contract")
    def _():
        info = EXPLORE.GET_NODE_INFO_V1()
        req, opt = info["input"]["required"], info["input"].get("optional", {})
        loader = nodes.NODE_CLASS_MAPPINGS["UnityVideoLoader"]
        return {"category": info["category"], "display": info["display_name"], "output": info["output"],
                "output_name": info["output_name"], "hidden": info["input"].get("hidden"),
                "types": {k: v[0] for k, v in {**req, **opt}.items() if isinstance(v[0], str)},
                "optional": sorted(opt), "sentence_sets": req["sentence_set"][1]["options"],
                "sentence_default": req["sentence_set"][1]["default"], "steps": req["steps"][1],
                "new_widget_defaults": [opt[k][1].get("default") for k in ("tiled_decode", "history_mode")],
                "sockets": [k for k, v in {**req, **opt}.items() if v[0] not in ("STRING", "INT", "BOOLEAN", "COMBO")
                            and not isinstance(v[0], list)],
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
        out["no_image"] = error_of(lambda: walk(None, "W"))
        out["no_text"] = error_of(lambda: walk(torch.rand(1, 16, 16, 3), "W", text_encoder=None))
        out["yume_only"] = error_of(lambda: walk(torch.rand(1, 32, 32, 3), "W", size=32, history_mode="start+last"))
        out["tiled_without_vae"] = error_of(lambda: walk(torch.rand(1, 32, 32, 3), "W", size=32, tiled_decode=True))
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


def yume_setup(child, tiny):
    """Link the tiny Yume-5B's files (``tiny``: a folder written by ``scripts/make_random_5b.py --tiny
    --yume``) into the model folders, make core's VAELoader and CLIPLoader build them at their tiny
    widths, and load the MODEL, VAE and CLIP.

    Returns:
        a namespace: ``explore_node`` (the pack's module), ``model``, ``none_codec``, ``none_text``
        (UnityVideo Loader's outputs), ``vae``, ``clip``, ``image`` (a [1, 40, 48, 3] start),
        ``YUME_FILE``, ``walk(actions, node=None, **inputs)`` -> ``(frames, done)`` and
        ``info_of(node)`` (the settings of the walk the node keeps).
    """
    pack, BASE, call_node = child.pack, child.BASE, child.call_node
    explore_node = pack.nodes.explore
    tiny = Path(tiny)
    for sub in ("diffusion_models", "vae", "text_encoders"):  # where core's loaders and ours look
        (BASE / "models" / sub).mkdir(parents=True, exist_ok=True)
        for f in (tiny / "comfyui" / "models" / sub).iterdir():
            os.symlink(f.resolve(), BASE / "models" / sub / f.name)
    # Core's VAELoader and CLIPLoader detect the Wan2.2 VAE and UMT5-XXL by key names and build them at full
    # width; the tiny files keep the names but not the widths, so only the widths are set to the tiny ones.
    manifest = json.loads((tiny / "MANIFEST.json").read_text())
    _full_vae, _vc = comfy.ldm.wan.vae2_2.WanVAE, manifest["vae_config"]
    comfy.ldm.wan.vae2_2.WanVAE = lambda **kw: _full_vae(**{**kw, "dim": _vc["base_dim"],
                                                             "dec_dim": _vc["decoder_base_dim"]})
    _load_clip, _uc = comfy.sd.load_clip, manifest["umt5_config"]

    def _tiny_clip(*args, model_options={}, **kw):
        sizes = {k: _uc[k] for k in ("vocab_size", "d_kv", "num_heads", "d_ff")}
        return _load_clip(*args, model_options={**model_options, "umt5xxl_model_config": sizes}, **kw)

    comfy.sd.load_clip = _tiny_clip
    YUME_FILE = "yume_5b_random.safetensors"
    (model, none_codec, none_text), _ = call_node("UnityVideoLoader", checkpoint=YUME_FILE, weight_dtype="default")
    (vae,), _ = call_node("VAELoader", vae_name="wan2.2_vae.safetensors")
    (clip,), _ = call_node("CLIPLoader", clip_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors", type="wan", device="default")
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(0))

    def walk(actions, node=None, **kw):
        inputs = dict(model=model, vae=vae, clip=clip, image=image, actions=actions, prompt="a room", start="last frame",
                      width=32, height=32, steps=0, seed=1, sentence_set="model default")
        inputs.update(kw)
        (frames, done), _ = call_node("UnityVideoExplore", hidden={"UNIQUE_ID": node} if node else None, **inputs)
        return frames, done

    def info_of(node):
        r = explore_node._WALKS[node].result
        return {"steps": r.info["steps"], "sentence_set": r.info["sentence_set"], "sampler": r.info["sampler"],
                "history_mode": r.info["history_mode"], "prompts": r.prompts}

    return SimpleNamespace(explore_node=explore_node, model=model, none_codec=none_codec, none_text=none_text,
                           vae=vae, clip=clip, image=image, YUME_FILE=YUME_FILE, walk=walk, info_of=info_of)


def yume_checks(child, tiny):
    """The explorer on a Yume-5B MODEL with core's VAE and CLIP (``tiny``: see :func:`yume_setup`):
    each check under its name (``@record``)."""
    pack, record, error_of, call_node = child.pack, child.record, child.error_of, child.call_node
    run_prompt = child.run_prompt
    y = yume_setup(child, tiny)
    explore_node, model, none_codec, none_text = y.explore_node, y.model, y.none_codec, y.none_text
    vae, clip, YUME_FILE, walk, info_of = y.vae, y.clip, y.YUME_FILE, y.walk, y.info_of

    @record("yume_loader")
    def _():
        return {"codec": none_codec is None, "text": none_text is None,
                "history": pack.nodes.host.unity_transformer(model).config.get("history_embeddings")}

    @record("yume_walk")
    def _():
        explore_node._WALKS.clear()
        frames, done = walk("W D", node="1")
        first = info_of("1")
        more, done2 = walk("A", node="1", continue_walk=True)
        walk("W", node="2", steps=1, sentence_set="v1")
        return {"shape": list(frames.shape), "done": done, "finite": bool(torch.isfinite(frames).all()),
                "range": [float(frames.min()), float(frames.max())], "default": first, "more": list(more.shape),
                "done2": done2, "kept": float((more[:frames.shape[0]] - frames).abs().max()), "set": info_of("2")}

    @record("yume_tiled_and_history_mode")
    def _():
        explore_node._WALKS.clear()
        plain, _ = walk("W", steps=1)
        tiled, _ = walk("W", steps=1, tiled_decode=True)
        last, _ = walk("W S", node="3", steps=1, history_mode="start+last")
        return {"plain": list(plain.shape), "tiled": list(tiled.shape), "diff": float((plain - tiled).abs().max()),
                "start_last": list(last.shape), "mode": info_of("3")["history_mode"]}

    @record("adapters")
    def _():
        ComfyClipTextEncoder, ComfyVaeCodec = pack.nodes.adapters.ComfyClipTextEncoder, pack.nodes.adapters.ComfyVaeCodec
        fmt = model.model.latent_format
        codec = ComfyVaeCodec(vae, fmt)
        frames = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(1))
        video = (frames * 2 - 1).permute(3, 0, 1, 2)[None]  # [1, 3, 5, 32, 32] in [-1, 1]
        z = codec.encode(video)
        (core_latent,), _ = call_node("VAEEncode", pixels=frames, vae=vae)
        back = codec.decode(z)
        (core_frames,), _ = call_node("VAEDecode", samples={"samples": fmt.process_out(z)}, vae=vae)
        text = ComfyClipTextEncoder(clip).encode(["a room", "a long corridor with doors"])
        (cond,), _ = call_node("CLIPTextEncode", clip=clip, text="a room")
        return {"ratios": [codec.spatial_ratio, codec.temporal_ratio], "latent": list(z.shape),
                "vs_core_encode": float((z - fmt.process_in(core_latent["samples"])).abs().max()),
                "decoded": list(back.shape), "range": [float(back.min()), float(back.max())],
                "vs_core_decode": float(((back[0].permute(1, 2, 3, 0) + 1) / 2 - core_frames).abs().max()),
                "text": list(text.shape), "vs_core_text": float((text[:1, :cond[0][0].shape[1]] - cond[0][0]).abs().max())}

    @record("yume_errors")
    def _():
        (default, codec, text_encoder), _ = call_node("UnityVideoLoader", checkpoint="(embedded default)",
                                                      weight_dtype="default")
        (unet,), _ = call_node("UNETLoader", unet_name=YUME_FILE, weight_dtype="default")
        return {"both_codecs": error_of(lambda: walk("W", codec=codec)),
                "both_texts": error_of(lambda: walk("W", text_encoder=text_encoder)),
                "no_vae": error_of(lambda: walk("W", vae=None)),
                "core_unet": error_of(lambda: walk("W", model=unet)),
                "core_unet_class": type(unet.model.diffusion_model).__name__,
                "bad_mode": error_of(lambda: walk("W", history_mode="recent")),
                "default_with_vae": error_of(lambda: walk("W", model=default, clip=None, text_encoder=text_encoder)),
                "default_yume_mode": error_of(lambda: walk("W", model=default, vae=None, clip=None, codec=codec,
                                                           text_encoder=text_encoder, history_mode="start+last"))}

    @record("yume_graph")
    def _():
        explore_node._WALKS.clear()
        prompt = {
            "1": {"class_type": "UnityVideoLoader", "inputs": {"checkpoint": YUME_FILE, "weight_dtype": "default"}},
            "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                         "type": "wan", "device": "default"}},
            "3": {"class_type": "VAELoader", "inputs": {"vae_name": "wan2.2_vae.safetensors"}},
            "4": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x808080}},
            "5": {"class_type": "UnityVideoExplore", "inputs": {
                "model": ["1", 0], "clip": ["2", 0], "vae": ["3", 0], "image": ["4", 0], "actions": "W D",
                "prompt": "a room", "start": "last frame", "width": 32, "height": 32, "steps": 1, "seed": 0,
                "sentence_set": "model default", "continue_walk": False, "tiled_decode": True}},
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
        }
        run = run_prompt(prompt)
        bad = dict(prompt, **{"5": {**prompt["5"], "inputs": {**prompt["5"]["inputs"], "codec": ["7", 1]}}},
                   **{"7": {"class_type": "UnityVideoLoader",
                            "inputs": {"checkpoint": "(embedded default)", "weight_dtype": "default"}}})
        bad_run = run_prompt(bad)
        return {"success": run.success, "error": run.error, "frames": run.outputs("5")[0].shape[0],
                "done": run.outputs("5")[1], "previews": len(run.ui.get("6", {}).get("images", [])),
                "both_codecs": [bad_run.success, str(bad_run.error)]}
