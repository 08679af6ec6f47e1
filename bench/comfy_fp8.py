"""fp8 weight storage of the native ComfyUI MODEL against 16-bit storage: the error of one model
evaluation and of a whole core KSampler run (euler / simple / cfg 1), per ``weight_dtype`` of
``UnityVideo Loader``.

Runs inside a real ComfyUI (``COMFYUI_PATH``, see ``tests/comfy_env.py``) on the embedded default,
joint generation on a 17x64x64 clip's packed latent (16 x 5 x 8 x 16). The reference is the
transformer stored in bfloat16 (``--reference bf16``, the 5B's shipped dtype) or float32. Prints one
JSON object last.

    COMFYUI_PATH=/path/to/ComfyUI python bench/comfy_fp8.py [--steps 20] [--reference bf16]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402

CODE = r'''
import importlib, json, time, torch
import nodes, comfy.sample, comfy.model_management as mm
M = importlib.import_module(pack.__name__ + ".nodes.model")
from unity_core.pipeline import UnityVideoPipeline

ARGS = json.loads(ARGS_JSON)
ref_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[ARGS["reference"]]
text = UnityVideoPipeline.from_pretrained("default").text_encoder  # the default's MiniLM
ctx, mctx = text.encode(["A first-person view of a room."]), text.encode(["depth map"])
cond = [[ctx, {"unityvideo_packed": True, "unityvideo_modality": "depth", "unityvideo_modality_context": mctx}]]
latent = {"samples": torch.zeros(1, 16, 5, 8, 16)}
x = comfy.sample.prepare_noise(latent["samples"], 0)


def build(weight_dtype, load_dtype):
    tf = UnityVideoPipeline.from_pretrained("default", dtype=load_dtype).transformer
    if weight_dtype == "reference":  # store exactly in the reference dtype
        ops = comfy.ops.manual_cast if load_dtype != torch.float32 else comfy.ops.disable_weight_init
        M.adapt_transformer(tf, ops, load_dtype, torch.float32)
        model_config = M.UnityVideoModelConfig(dict(tf.config), M.UnityVideoDefaultLatent())
        model_config.set_inference_dtype(load_dtype, torch.float32)
        return comfy.model_patcher.ModelPatcher(M.UnityVideoModel(model_config, tf, load_dtype), mm.get_torch_device(),
                                                mm.unet_offload_device())
    return M.make_model_patcher(tf, weight_dtype, default_codec=True)


import comfy.ops, comfy.model_patcher
out = {"bench": "comfy_fp8", "reference": ARGS["reference"], "steps": ARGS["steps"], "device": str(mm.get_torch_device())}
runs = {}
REF = ARGS["reference"] + "_storage"
for name, wd, load in ((REF, "reference", ref_dtype), ("fp8_e4m3fn", "fp8_e4m3fn", torch.bfloat16),
                       ("fp8_e5m2", "fp8_e5m2", torch.bfloat16)):
    mp = build(wd, load)
    mm.load_models_gpu([mp], force_full_load=True)
    x0 = mp.model.apply_model(x, torch.tensor([0.7]), c_crossattn=ctx, unityvideo_packed=True,
                              unityvideo_modality="depth", unityvideo_modality_context=mctx, transformer_options={})
    t = time.time()
    sampled = nodes.common_ksampler(mp, 0, ARGS["steps"], 1.0, "euler", "simple", cond, cond, latent)[0]["samples"]
    runs[name] = (x0, sampled, time.time() - t, mp.model_size())
ref_x0, ref_sampled, _, _ = runs[REF]
for name, (x0, sampled, seconds, size) in runs.items():
    out[name] = {"weight_bytes": int(size), "seconds": round(seconds, 2),
                 "x0_max_abs": float((x0 - ref_x0).abs().max()), "x0_rel_rms": float((x0 - ref_x0).pow(2).mean().sqrt() / ref_x0.pow(2).mean().sqrt()),
                 "sampled_max_abs": float((sampled - ref_sampled).abs().max()),
                 "sampled_rel_rms": float((sampled - ref_sampled).pow(2).mean().sqrt() / ref_sampled.pow(2).mean().sqrt())}
emit(out)
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    ap.add_argument("--reference", choices=["bf16", "fp32"], default="bf16")
    args = ap.parse_args()
    from tests.comfy_env import run_in_comfy

    result = run_in_comfy(f"ARGS_JSON = {json.dumps(json.dumps(vars(args)))}\n" + CODE, timeout=1800)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
