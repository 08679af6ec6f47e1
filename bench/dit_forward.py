"""Forward time and peak memory of the UnityVideo DiT against diffusers' Wan transformer.

Three cases on the same latent: diffusers' ``WanTransformer3DModel`` and ours with no
modality stream (same tokens), and ours on the joint RGB + modality sequence (twice the tokens).
Weights are random (the speed of a forward does not depend on them).

    python bench/dit_forward.py                                  # CPU, unityvideo-small, 17x64x64
    python bench/dit_forward.py --preset wan2.2-ti2v-5b --device cuda --dtype bf16 \\
        --frames 81 --height 480 --width 832                      # the 5B on a GPU

Latent size follows the codec of the preset (Wan2.2 VAE: 4x time, 16x space, 48 channels;
the small default codec: 4x time, 8x space, 16 channels). Prints one JSON object last.

Memory: on CUDA each ``*_peak_mib`` is that case's peak allocation (the counter is reset per
case). On CPU there is no per-case counter: the figures are the process's resident high-water
mark so far (``ru_maxrss``), so a later case includes the earlier ones; the JSON says so in
``peak_mib_kind``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.model import UnityVideoTransformer, get_config  # noqa: E402

SPATIAL = {"wan2.2-ti2v-5b": 16, "unityvideo-small": 8}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn, device, repeats):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return sorted(times)[len(times) // 2], peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="unityvideo-small")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-diffusers", action="store_true")
    args = ap.parse_args()

    from diffusers import WanTransformer3DModel

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cfg = get_config(args.preset)
    s = SPATIAL.get(args.preset, 8)
    latent = (1, cfg.in_channels, (args.frames - 1) // 4 + 1, args.height // s, args.width // s)
    ctx = torch.randn(1, 64, cfg.text_dim, device=device, dtype=dtype)
    x = torch.randn(latent, device=device, dtype=dtype)
    t = torch.tensor([700.0], device=device)
    tokens = latent[2] * latent[3] // cfg.patch_size[1] * latent[4] // cfg.patch_size[2]
    result = {"preset": args.preset, "device": args.device, "dtype": args.dtype,
              "video": [args.frames, args.height, args.width], "latent": list(latent), "tokens_per_stream": tokens}

    with torch.device(device):
        ours = UnityVideoTransformer(cfg).to(dtype).eval()
    with torch.no_grad():
        result["ours_rgb_only_s"], result["ours_rgb_only_peak_mib"] = timed(lambda: ours(x, t, ctx), device, args.repeats)
        result["ours_joint_s"], result["ours_joint_peak_mib"] = timed(lambda: ours(x, t, ctx, x, "depth", ctx), device, args.repeats)
    result["params_m"] = round(sum(p.numel() for p in ours.parameters()) / 1e6, 2)
    if not args.skip_diffusers:
        del ours
        with torch.device(device):
            ref = WanTransformer3DModel(
                patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
                in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim,
                freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
            ).to(dtype).eval()
        with torch.no_grad():
            result["diffusers_rgb_only_s"], result["diffusers_peak_mib"] = timed(
                lambda: ref(x, t, ctx, return_dict=False), device, args.repeats)
        result["ours_over_diffusers"] = round(result["ours_rgb_only_s"] / result["diffusers_rgb_only_s"], 3)
    for k, v in list(result.items()):
        if isinstance(v, float):
            result[k] = round(v, 4)
    result["peak_mib_kind"] = "per case" if device.type == "cuda" else "process high-water mark so far (CPU)"
    print(f"threads={torch.get_num_threads()}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
