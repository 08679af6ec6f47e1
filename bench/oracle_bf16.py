"""The release's float32 oracle (tests/fixtures/oracle) run in bfloat16: error with and without
the modules diffusers' Wan keeps in float32 (``UnityVideoTransformer._keep_in_fp32_modules``).

The tiny oracle model (official key layout, float32 weights) is loaded with
``load_transformer(dtype=torch.bfloat16)`` twice: as the class declares it (time embedder,
modulation tables and cross-attention norm kept float32) and with nothing kept (every tensor
bf16, the behaviour before ``_keep_in_fp32_modules`` existed). Both run the oracle's seven
single-forward cases and its three 3-step Euler denoise loops; the error is against the float32
outputs recorded from the official code. Reported: max and mean absolute error over all outputs,
and the same relative to the outputs' max magnitude.

    python bench/oracle_bf16.py

Prints one JSON object last.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.model import UnityVideoTransformer, load_transformer  # noqa: E402
from unity_core.sampling import sample  # noqa: E402

ORACLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "oracle"
TINY = dict(dim=128, num_layers=2, num_heads=4, ffn_dim=256, in_channels=48, out_channels=48, text_dim=32)


def _velocities(model, o, dtype):
    """(got, want) pairs of the single-forward cases."""
    pairs = []
    for task in ("text2all", "video2flow", "flow2video"):
        for modality in ("depth", "skeleton", None):
            if modality is None and task != "text2all":
                continue
            p = f"case.{task}.{modality or 'depth'}."
            q = f"case.{task}.{modality or 'none'}.out."
            ctx_m = o[p + "in.context_flow"].to(dtype) if modality else None
            with torch.no_grad():
                out = model(o[p + "in.rgb"].to(dtype), o[p + "in.timestep"], o[p + "in.context"].to(dtype),
                            o[p + "in.flow"].to(dtype), modality, ctx_m, return_dict=False)
            pairs += [(out[0], o[q + "v_rgb"]), (out[1], o[q + "v_flow"])]
    return pairs


def _denoised(model, o, dtype):
    pairs = []
    for task in ("text2all", "video2flow", "flow2video"):
        kw = dict(context=o["shared.ctx_content"].to(dtype), modality="depth",
                  modality_context=o["shared.ctx_modality.depth"].to(dtype), steps=3)
        if task == "text2all":
            kw.update(rgb_noise=o["shared.noise_rgb"].to(dtype), modality_noise=o["shared.noise_flow"].to(dtype))
        elif task == "video2flow":
            kw.update(rgb_latent=o["shared.x_rgb"].to(dtype), modality_noise=o["shared.noise_flow"].to(dtype))
        else:
            kw.update(modality_latent=o["shared.x_flow.depth"].to(dtype), rgb_noise=o["shared.noise_rgb"].to(dtype))
        with torch.no_grad():
            out = sample(model, task, **kw)
        pairs += [(out.rgb_latent, o[f"denoise.{task}.depth.out.rgb"]),
                  (out.modality_latent, o[f"denoise.{task}.depth.out.flow"])]
    return pairs


def _errors(pairs):
    diffs = [(g.float() - w).abs() for g, w in pairs]
    scale = max(w.abs().max().item() for _, w in pairs)
    mx = max(d.max().item() for d in diffs)
    mean = sum(d.sum().item() for d in diffs) / sum(d.numel() for d in diffs)
    return {"max_abs": mx, "mean_abs": mean, "max_rel": mx / scale, "mean_rel": mean / scale}


def run(dtype, keep) -> dict:
    saved = UnityVideoTransformer._keep_in_fp32_modules
    if not keep:
        UnityVideoTransformer._keep_in_fp32_modules = None
    try:
        model = load_transformer(ORACLE / "unityvideo_tiny_oracle_weights.safetensors", config=TINY, dtype=dtype)
    finally:
        UnityVideoTransformer._keep_in_fp32_modules = saved
    fp32 = sorted(n for n, p in model.named_parameters() if p.dtype == torch.float32)
    o = load_file(str(ORACLE / "unityvideo_tiny_oracle.safetensors"))
    return {"fp32_tensors": len(fp32), "forward": _errors(_velocities(model, o, dtype)),
            "denoise_3_steps": _errors(_denoised(model, o, dtype))}


def main() -> None:
    result = {"oracle": "tests/fixtures/oracle (tiny, official layout)", "torch": torch.__version__,
              "float32": run(torch.float32, True)["forward"],
              "bf16_fp32_kept": run(torch.bfloat16, True), "bf16_nothing_kept": run(torch.bfloat16, False)}
    for name in ("bf16_fp32_kept", "bf16_nothing_kept"):
        r = result[name]
        print(f"{name:18s} forward max abs {r['forward']['max_abs']:.4g} mean abs {r['forward']['mean_abs']:.4g}; "
              f"3-step denoise max abs {r['denoise_3_steps']['max_abs']:.4g} mean abs "
              f"{r['denoise_3_steps']['mean_abs']:.4g} ({r['fp32_tensors']} fp32 tensors)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
