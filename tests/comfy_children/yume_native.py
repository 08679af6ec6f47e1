"""Run by tests/test_yume_native.py: a Yume-5B walk sampled by ComfyUI's core, against the library's."""

import time

import torch
from safetensors.torch import save_file

import comfy.model_management as mm
import comfy.sample

from unity_core.explore.samplers import generate_yume_walk
from unity_core.explore.qcm import parse_script

from .explore_node import yume_setup


def main(child, tiny):
    """Each check under its name (``@record``), on :func:`explore_node.yume_setup`'s model, VAE and CLIP
    (``tiny``: the folder of the tiny random Yume-5B)."""
    pack, BASE, record, call_node = child.pack, child.BASE, child.record, child.call_node
    load_extras = child.load_extras
    y = yume_setup(child, tiny)
    explore_node, model, vae, clip, image, walk = y.explore_node, y.model, y.vae, y.clip, y.image, y.walk
    load_extras("nodes_model_advanced", "nodes_easycache")
    host = pack.nodes.host
    transformer = host.unity_transformer(model)
    ACTIONS = "W D"

    def err(a, b):
        return float((a.float() - b.float()).abs().max())

    def node_walk(m, node, **kw):
        walk(ACTIONS, node=node, model=m, **kw)
        return explore_node._WALKS[node].result

    def library_walk(**kw):
        # the library's own sampler (generate_yume_walk inside pipe.explore), same start, prompts and seed
        pipe = host.pipeline(model, None, None, "test", vae=vae, clip=clip)
        frames = image[-1:]
        return pipe.explore(frames, parse_script(ACTIONS), "a room", seed=1, size=(32, 32), decode=False, **kw)

    def count_forwards(fn, modules):
        calls = [[] for _ in modules]
        hooks = [m.register_forward_pre_hook(lambda m, a, c=c: c.append(1)) for m, c in zip(modules, calls)]
        try:
            fn()
        finally:
            for h in hooks:
                h.remove()
        return [len(c) for c in calls]

    T0 = time.perf_counter()
    LIB7 = library_walk()

    @record("defaults")
    def _():
        explore_node._WALKS.clear()
        core = node_walk(model, "1")
        lib = LIB7
        return {"seconds": time.perf_counter() - T0, "err": err(core.latent, lib.latent), "frames": list(core.latent.shape), "steps": core.info["steps"],
                "shift": core.info["shift"], "sampling": core.info.get("sampling"), "prompts": core.prompts == lib.prompts}

    @record("shift")
    def _():
        (patched,), _ = call_node("ModelSamplingSD3", model=model, shift=3.0)
        core = node_walk(patched, "2")
        lib3, lib7 = library_walk(shift=3.0), LIB7
        return {"err_3": err(core.latent, lib3.latent), "vs_7": err(core.latent, lib7.latent),
                "shift": core.info["shift"]}

    @record("easycache")
    def _():
        t = time.perf_counter()
        (plain,) = count_forwards(lambda: node_walk(model, "3", steps=8), [transformer])
        (cached,), _ = call_node("EasyCache", model=model, reuse_threshold=3.0, start_percent=0.15, end_percent=0.95,
                                 verbose=False)
        (fast,) = count_forwards(lambda: node_walk(cached, "4", steps=8), [transformer])
        return {"plain": plain, "cached": fast, "seconds": time.perf_counter() - t}

    @record("block_cache")
    def _():
        modules = [transformer, *transformer.blocks]
        plain = count_forwards(lambda: node_walk(model, "5", steps=12), modules)
        (cached,), _ = call_node("UnityVideoBlockCache", model=model, cache_blocks=1, cache_interval=2)
        fast = count_forwards(lambda: node_walk(cached, "6", steps=12), modules)
        return {"plain": plain, "cached": fast}

    @record("lora")
    def _():
        g = torch.Generator().manual_seed(3)
        dim = transformer.config["dim"]
        down, up = torch.randn(4, dim, generator=g) * 0.5, torch.randn(dim, 4, generator=g) * 0.5
        (BASE / "models" / "loras").mkdir(parents=True, exist_ok=True)
        save_file({"blocks.0.self_attn.q.lora_A.weight": down, "blocks.0.self_attn.q.lora_B.weight": up},
                  str(BASE / "models" / "loras" / "yume_q.safetensors"))
        (patched,), _ = call_node("LoraLoaderModelOnly", model=model, lora_name="yume_q.safetensors", strength_model=0.8)
        with_lora = node_walk(patched, "7")
        mm.unload_all_models()  # core restores the weights it patched
        base = LIB7
        weight = transformer.blocks[0].attn1.to_q.weight
        original = weight.detach().clone()
        with torch.no_grad():
            weight += (0.8 * up @ down).to(weight.dtype)
        try:
            merged = library_walk()
        finally:
            with torch.no_grad():
                weight.copy_(original)
        return {"vs_merged": err(with_lora.latent, merged.latent), "changed": err(with_lora.latent, base.latent)}

    @record("segment_node")
    def _():
        fmt = model.model.latent_format
        still = image[-1:].expand(17, -1, -1, -1)
        still = torch.nn.functional.interpolate(still.permute(0, 3, 1, 2), size=(32, 32), mode="bilinear",
                                                antialias=True).permute(0, 2, 3, 1)
        (start,), _ = call_node("VAEEncode", pixels=still, vae=vae)
        (pos, neg, latent), _ = call_node("UnityVideoYumeSegment", clip=clip, history=start, prompt="a room", action="W",
                                          sentence_set="v1_5", history_mode="all", start_latents=5, negative_prompt="")
        (sampled,), _ = call_node("KSampler", model=model, seed=11, steps=4, cfg=1.0, sampler_name="euler",
                                  scheduler="simple", positive=pos, negative=neg, latent_image=latent, denoise=1.0)
        n = start["samples"].shape[2]
        noise = comfy.sample.prepare_noise(latent["samples"], 11)[:, :, n:]
        hist = fmt.process_in(start["samples"])
        lib = generate_yume_walk(transformer, hist, [pos[0][0]], noise=[noise], seed=0)
        out = fmt.process_in(sampled["samples"])
        (frames,), _ = call_node("VAEDecode", samples=sampled, vae=vae)
        return {"err": err(out[:, :, n:], lib.latent[:, :, n:]), "history_kept": err(out[:, :, :n], hist),
                "latent": list(latent["samples"].shape), "mask": [float(latent["noise_mask"][:, :, :n].max()),
                                                                 float(latent["noise_mask"][:, :, n:].min())],
                "frames": list(frames.shape), "n": n}
