"""Run by tests/test_comfy_native.py: UnityVideo as a native MODEL under core's samplers."""

import importlib
import logging

import torch
from safetensors.torch import load_file, save_file

import comfy.latent_formats
import comfy.model_management as mm
import comfy.sample
import comfy.samplers
import comfy.utils
import nodes

from unity_core.model import load_transformer, save_transformer
from unity_core.sampling import AAM, BlockCache, TimeTravel, flow_sigmas, rank_blocks_by_removal, sample


def main(child, tiny_oracle):
    """Every figure of the test file in one dict (emitted once). ``tiny_oracle``: the
    ``UnityVideoConfig`` mapping of the oracle weights (``tests.conftest.TINY_ORACLE``)."""
    pack, FIXTURES, BASE, emit = child.pack, child.FIXTURES, child.BASE, child.emit
    error_of, call_node, load_extras = child.error_of, child.call_node, child.load_extras
    M = importlib.import_module(pack.__name__ + ".nodes.model")
    load_extras("nodes_model_advanced", "nodes_easycache", "nodes_custom_sampler")

    TINY = tiny_oracle
    WEIGHTS = FIXTURES / "oracle" / "unityvideo_tiny_oracle_weights.safetensors"
    O = load_file(str(FIXTURES / "oracle" / "unityvideo_tiny_oracle.safetensors"))
    X_RGB, X_MOD = O["shared.x_rgb"], O["shared.x_flow.depth"]
    CTX, MCTX = O["shared.ctx_content"], O["shared.ctx_modality.depth"]
    W = X_RGB.shape[-1]
    FMT = comfy.latent_formats.Wan22()   # the tiny model has the 5B's 48 channels
    SEED = 7
    REF = load_transformer(WEIGHTS, config=TINY)

    class OracleText:  # the modality prompt's tokens, as a text encoder would give them
        def encode(self, prompts):
            return MCTX

    def make_model():
        return M.make_model_patcher(load_transformer(WEIGHTS, config=TINY), "default")

    MODEL = make_model()
    RGB_IN = {"samples": FMT.process_out(X_RGB)}
    MOD_IN = {"samples": FMT.process_out(X_MOD)}

    def task(name):
        (pos, neg, latent), _ = call_node("UnityVideoTask", positive=[[CTX, {}]], negative=[[CTX, {}]], task=name,
                                          modality="depth", text_encoder=OracleText(), rgb_latent=RGB_IN,
                                          modality_latent=MOD_IN)
        return pos, neg, latent

    def ksample(model, name, sampler="euler", scheduler="simple", steps=20):
        pos, neg, latent = task(name)
        out = nodes.common_ksampler(model, SEED, steps, 1.0, sampler, scheduler, pos, neg, latent)[0]
        (rgb, mod), _ = call_node("UnityVideoSplit", samples=out)
        return rgb["samples"], mod["samples"]

    def reference(name, shift=1.0, seed=SEED):
        noise = comfy.sample.prepare_noise(torch.zeros(1, *X_RGB.shape[1:-1], 2 * W), seed)
        clean_rgb, clean_mod = FMT.process_in(RGB_IN["samples"]), FMT.process_in(MOD_IN["samples"])
        r = sample(REF, name, context=CTX, modality="depth", modality_context=MCTX,
                   rgb_latent=clean_rgb if name == "video2flow" else None,
                   modality_latent=clean_mod if name == "flow2video" else None, shape=tuple(X_RGB.shape), steps=20,
                   shift=shift, rgb_noise=noise[..., :W], modality_noise=noise[..., W:])
        return r.rgb_latent, r.modality_latent

    def err(a, b):
        return float((a - b).abs().max())

    res = {}
    # 1. core KSampler == our Euler, all three tasks; the clean stream passes bit-identical
    for name in ("video2flow", "flow2video", "text2all"):
        rgb, mod = ksample(MODEL, name)
        ref_rgb, ref_mod = reference(name)
        res[name] = {
            "rgb": err(FMT.process_in(rgb), ref_rgb), "mod": err(FMT.process_in(mod), ref_mod),
            "rgb_clean_identical": bool(torch.equal(rgb, RGB_IN["samples"])),
            "mod_clean_identical": bool(torch.equal(mod, MOD_IN["samples"])),
        }
    # 2. other core samplers run
    for sampler, scheduler in (("dpmpp_2m", "simple"), ("uni_pc", "simple"), ("euler", "beta")):
        rgb, mod = ksample(MODEL, "video2flow", sampler, scheduler)
        res[sampler + "/" + scheduler] = {"finite": bool(torch.isfinite(mod).all()),
                                          "clean_identical": bool(torch.equal(rgb, RGB_IN["samples"])),
                                          "vs_euler": err(FMT.process_in(mod), reference("video2flow")[1])}
    # what a different result looks like: our Euler from another seed's noise
    res["seed_gap"] = err(reference("video2flow", seed=SEED + 1)[1], reference("video2flow")[1])
    pos, neg, latent = task("video2flow")
    adv = nodes.KSamplerAdvanced().sample(MODEL, "enable", SEED, 20, 1.0, "euler", "simple", pos, neg, latent, 0, 10000,
                                          "disable")[0]
    (_, adv_mod), _ = call_node("UnityVideoSplit", samples=adv)
    res["ksampler_advanced"] = {"vs_ours": err(FMT.process_in(adv_mod["samples"]), reference("video2flow")[1])}
    # conditioning without the task node's keys: the RGB stream alone (a plain Wan text-to-video forward)
    plain_lat = {"samples": torch.zeros(1, *X_RGB.shape[1:])}
    t2v = nodes.common_ksampler(MODEL, SEED, 20, 1.0, "euler", "simple", [[CTX, {}]], [[CTX, {}]], plain_lat)[0]["samples"]
    z, sig = comfy.sample.prepare_noise(plain_lat["samples"], SEED), flow_sigmas(20)
    with torch.no_grad():
        for i in range(20):
            v = REF(z, (sig[i] * 1000).reshape(1), CTX).sample
            z = z + (sig[i + 1] - sig[i]) * v
    res["rgb_alone"] = {"vs_euler": err(FMT.process_in(t2v), z)}
    # CFG: core's guidance on our MODEL is our cfg (a negative prompt of the same length)
    NEG = torch.zeros_like(CTX)
    (cpos, cneg, clat), _ = call_node("UnityVideoTask", positive=[[CTX, {}]], negative=[[NEG, {}]], task="video2flow",
                                      modality="depth", text_encoder=OracleText(), rgb_latent=RGB_IN)
    cfg_out = nodes.common_ksampler(MODEL, SEED, 20, 3.0, "euler", "simple", cpos, cneg, clat)[0]
    (_, cfg_mod), _ = call_node("UnityVideoSplit", samples=cfg_out)
    noise = comfy.sample.prepare_noise(torch.zeros(1, *X_RGB.shape[1:-1], 2 * W), SEED)
    ref_cfg = sample(REF, "video2flow", context=CTX, modality="depth", modality_context=MCTX,
                     rgb_latent=FMT.process_in(RGB_IN["samples"]), steps=20, cfg=3.0, negative_context=NEG,
                     modality_noise=noise[..., W:])
    res["cfg3"] = {"vs_ours": err(FMT.process_in(cfg_mod["samples"]), ref_cfg.modality_latent),
                   "gap": err(FMT.process_in(cfg_mod["samples"]), reference("video2flow")[1])}
    # 3. ModelSamplingSD3 changes the shift to ours
    shifted = nodes.NODE_CLASS_MAPPINGS["ModelSamplingSD3"]().patch(MODEL, 3.0)[0]
    _, mod = ksample(shifted, "video2flow")
    res["shift3"] = {"err": err(FMT.process_in(mod), reference("video2flow", shift=3.0)[1]),
                     "unshifted_gap": err(FMT.process_in(mod), reference("video2flow")[1])}

    # 4. EasyCache skips model evaluations (counted at the transformer)
    calls = []
    hook = MODEL.model.diffusion_model.register_forward_pre_hook(lambda m, a: calls.append(1))
    ksample(MODEL, "text2all")
    plain_calls = len(calls)
    calls.clear()
    (cached,), _ = call_node("EasyCache", model=MODEL, reuse_threshold=3.0, start_percent=0.15, end_percent=0.95,
                             verbose=False)
    ksample(cached, "text2all")
    res["easycache"] = {"plain": plain_calls, "cached": len(calls)}
    hook.remove()

    # 5. partial loading: lowvram, same output as a full load, also with a LoRA applied meanwhile
    def one_eval(model):
        """One model evaluation (x0 of a packed text2all latent at sigma 0.7) on the loaded model."""
        x = comfy.sample.prepare_noise(torch.zeros(1, *X_RGB.shape[1:-1], 2 * W), SEED)
        return model.model.apply_model(x, torch.tensor([0.7]), c_crossattn=CTX, unityvideo_packed=True,
                                       unityvideo_modality="depth", unityvideo_modality_context=MCTX,
                                       transformer_options={})

    def full_and_partial(model):
        mm.load_models_gpu([model], force_full_load=True)
        full = one_eval(model)
        lowvram_full = bool(model.model.model_lowvram)
        model.detach()
        model.partially_load(torch.device("cpu"), extra_memory=model.model_size() // 2)
        partial = one_eval(model)
        info = {"lowvram": bool(model.model.model_lowvram), "full_was_lowvram": lowvram_full,
                "err": err(full, partial), "loaded_fraction": model.model.model_loaded_weight_memory / model.model_size()}
        model.detach()
        return info, full

    def lora_file(name, keys):
        g = torch.Generator().manual_seed(3)
        sd = {}
        for prefix, (out_f, in_f) in keys.items():
            sd[prefix + ".lora_A.weight"] = torch.randn(4, in_f, generator=g) * 0.5
            sd[prefix + ".lora_B.weight"] = torch.randn(out_f, 4, generator=g) * 0.5
        save_file(sd, str(BASE / "models" / "loras" / name))
        return sd

    (BASE / "models" / "loras").mkdir(parents=True, exist_ok=True)
    base_info, base_full = full_and_partial(MODEL)
    res["partial"] = base_info
    TARGETS = {"blocks.0.self_attn.q": (128, 128), "blocks.1.ffn.0": (256, 128)}
    lora_sets = {
        "wan": {k: v for k, v in TARGETS.items()},
        "prefixed": {"diffusion_model." + k: v for k, v in TARGETS.items()},
        "diffusers": {"transformer.blocks.0.attn1.to_q": (128, 128), "transformer.blocks.1.ffn.net.0.proj": (256, 128)},
    }
    OURS = {"blocks.0.self_attn.q": "blocks.0.attn1.to_q.weight", "blocks.1.ffn.0": "blocks.1.ffn.net.0.proj.weight"}
    for kind, keys in lora_sets.items():
        sd = lora_file(kind + ".safetensors", keys)
        patched = nodes.LoraLoaderModelOnly().load_lora_model_only(MODEL, kind + ".safetensors", 0.8)[0]
        info, full = full_and_partial(patched)
        # the same LoRA merged by hand into a fresh model
        merged = load_transformer(WEIGHTS, config=TINY)
        params = dict(merged.named_parameters())
        for prefix in keys:
            wan = prefix.split("diffusion_model.")[-1]
            target = OURS.get(wan) or (wan[len("transformer."):] + ".weight")
            with torch.no_grad():
                params[target] += 0.8 * sd[prefix + ".lora_B.weight"] @ sd[prefix + ".lora_A.weight"]
        by_hand = M.make_model_patcher(merged, "default")
        mm.load_models_gpu([by_hand], force_full_load=True)
        expect = one_eval(by_hand)
        res["lora_" + kind] = {**info, "vs_merged": err(full, expect), "changed": err(full, base_full)}

    # a LoRA whose keys match nothing: core logs it and nothing changes
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logging.getLogger().addHandler(handler)
    lora_file("nothing.safetensors", {"not_a_block.proj": (8, 8)})
    unmatched = nodes.LoraLoaderModelOnly().load_lora_model_only(MODEL, "nothing.safetensors", 1.0)[0]
    logging.getLogger().removeHandler(handler)
    mm.load_models_gpu([unmatched], force_full_load=True)
    res["lora_nothing"] = {"err": err(one_eval(unmatched), base_full),
                           "logged": [m for m in records if "not loaded" in m.lower()]}

    # the loader on a checkpoint file in models/unityvideo (the release's layout, as save_transformer writes it)
    (BASE / "models" / "unityvideo").mkdir(parents=True, exist_ok=True)
    save_transformer(REF, BASE / "models" / "unityvideo" / "tiny.safetensors")
    (loaded, codec, text), _ = call_node("UnityVideoLoader", checkpoint="tiny.safetensors", weight_dtype="default")
    (loaded8, _, _), _ = call_node("UnityVideoLoader", checkpoint="tiny.safetensors", weight_dtype="fp8_e5m2")
    mm.load_models_gpu([loaded], force_full_load=True)
    mm.load_models_gpu([loaded8], force_full_load=True)
    ref_sd, got_sd = REF.state_dict(), loaded.model.diffusion_model.state_dict()
    res["loader_file"] = {"err": err(one_eval(loaded), base_full), "codec": codec is None and text is None,
                          "weights_exact": set(ref_sd) <= set(got_sd) and all(torch.equal(got_sd[k], v) for k, v in ref_sd.items()),
                          "fp8_dtype": str(loaded8.model.diffusion_model.blocks[0].ffn.net[2].weight.dtype),
                          "fp8_err": err(one_eval(loaded8), base_full), "scale": float(base_full.abs().max())}

    # 6. guider and sampler nodes switched off = plain core
    pos, neg, latent = task("flow2video")
    noise = comfy.sample.prepare_noise(latent["samples"], SEED)
    sigmas = comfy.samplers.calculate_sigmas(MODEL.get_model_object("model_sampling"), "simple", 20)

    def custom(guider, sampler):
        return guider.sample(noise, latent["samples"], sampler, sigmas, denoise_mask=latent["noise_mask"], seed=SEED)

    plain_guider = comfy.samplers.CFGGuider(MODEL)
    plain_guider.set_conds(pos, neg)
    plain_guider.set_cfg(1.0)
    euler = comfy.samplers.sampler_object("euler")
    plain = custom(plain_guider, euler)
    (ctrl_off,), _ = call_node("UnityVideoControlGuider", model=MODEL, positive=pos, negative=neg, cfg=1.0, control_cfg=1.0)
    (ctrl_on,), _ = call_node("UnityVideoControlGuider", model=MODEL, positive=pos, negative=neg, cfg=1.0, control_cfg=4.0)
    est_pos, est_neg, _ = task("video2flow")
    res["control_on_estimation"] = error_of(call_node, "UnityVideoControlGuider", model=MODEL, positive=est_pos,
                                            negative=est_neg, cfg=1.0, control_cfg=4.0)
    (tts_off,), _ = call_node("UnityVideoTimeTravelSampler", lookahead=0, interval=2, sde=False, eta=0.3, noise_seed=0)
    (tts_on,), _ = call_node("UnityVideoTimeTravelSampler", lookahead=2, interval=2, sde=True, eta=0.3, noise_seed=0)
    ref_ctrl = sample(REF, "flow2video", context=CTX, modality="depth", modality_context=MCTX,
                      modality_latent=FMT.process_in(MOD_IN["samples"]), steps=20, control_cfg=4.0,
                      rgb_noise=noise[..., :W])
    (aam_off,), _ = call_node("UnityVideoAAMSampler", k=0, packed=True)
    (aam_on,), _ = call_node("UnityVideoAAMSampler", k=2, packed=True)
    ref_aam = sample(REF, "flow2video", context=CTX, modality="depth", modality_context=MCTX,
                     modality_latent=FMT.process_in(MOD_IN["samples"]), steps=20, aam=AAM(k=2), rgb_noise=noise[..., :W])
    res["aam"] = {"off": err(custom(plain_guider, aam_off), plain),
                  "on_vs_ours": err(FMT.process_in(custom(plain_guider, aam_on))[..., :W], ref_aam.rgb_latent),
                  "on_gap": err(custom(plain_guider, aam_on), plain)}
    (tts_ode,), _ = call_node("UnityVideoTimeTravelSampler", lookahead=2, interval=2, sde=False, eta=0.3, noise_seed=0)
    ref_tts = sample(REF, "flow2video", context=CTX, modality="depth", modality_context=MCTX,
                     modality_latent=FMT.process_in(MOD_IN["samples"]), steps=20, time_travel=TimeTravel(2, 2, False),
                     rgb_noise=noise[..., :W])
    res["tts_ode"] = {"vs_ours": err(FMT.process_in(custom(plain_guider, tts_ode))[..., :W], ref_tts.rgb_latent),
                      "evaluations": ref_tts.model_evaluations}
    res["off"] = {
        "control_off": err(custom(ctrl_off, euler), plain), "tts_off": err(custom(plain_guider, tts_off), plain),
        "control_on_vs_ours": err(FMT.process_in(custom(ctrl_on, euler))[..., :W], ref_ctrl.rgb_latent),
        "control_on_gap": err(custom(ctrl_on, euler), plain),
        "tts_on_gap": err(custom(plain_guider, tts_on), plain),
    }

    # 7. the block cache patch: off = the plain MODEL; on = our sampler with the same cache
    (cache_off,), _ = call_node("UnityVideoBlockCache", model=MODEL, cache_blocks=0, cache_interval=2)
    (cache_on,), _ = call_node("UnityVideoBlockCache", model=MODEL, cache_blocks=1, cache_interval=2)
    _, plain_mod = ksample(MODEL, "video2flow")
    _, off_mod = ksample(cache_off, "video2flow")
    _, on_mod = ksample(cache_on, "video2flow")
    patch = cache_on.model_options["transformer_options"][M.BLOCK_CACHE_KEY]
    noise = comfy.sample.prepare_noise(torch.zeros(1, *X_RGB.shape[1:-1], 2 * W), SEED)
    clean = FMT.process_in(RGB_IN["samples"])
    order = rank_blocks_by_removal(REF, clean, torch.tensor([1000.0]), CTX, noise[..., W:], "depth", MCTX)
    ref_cache = BlockCache(order[:1], 2)
    ref = sample(REF, "video2flow", context=CTX, modality="depth", modality_context=MCTX, rgb_latent=clean, steps=20,
                 modality_noise=noise[..., W:], cache=ref_cache)
    res["block_cache"] = {"off": err(off_mod, plain_mod), "order": patch.order, "ref_order": order,
                          "on_vs_ours": err(FMT.process_in(on_mod), ref.modality_latent), "skipped": ref_cache.skipped,
                          "on_gap": err(on_mod, plain_mod)}
    emit(res)

