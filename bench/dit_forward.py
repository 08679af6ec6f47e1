"""Forward time, FLOPs, MFU and peak memory of the UnityVideo DiT, interleaved case by case.

Cases (``--cases``, comma-separated; the first is the baseline of every ratio):

- ``rgb``: ours on the RGB stream alone (a plain Wan2.2 forward);
- ``joint``: ours on the joint RGB + modality sequence (twice the tokens, the tasks' forward);
- ``diffusers``: diffusers' ``WanTransformer3DModel`` on the same latent (the reference DiT);
- ``rgb@BACKEND`` / ``joint@BACKEND``: the same with ``set_attention_backend(BACKEND)``
  (``native``, ``_native_math``, ``_native_cudnn``, ``_native_flash``, ``flex``, ...);
- ``rgb+compile`` / ``joint+compile``: with regional ``torch.compile`` of the repeated blocks;
- ``rgb+fp8`` / ``joint+fp8``: fp8 (e4m3) weight storage, compute in ``--dtype``;
- ``rgb+fuseqkv`` / ``joint+fuseqkv``: after ``fuse_qkv_projections()`` (one ``to_qkv`` matmul per
  self-attention, one ``to_kv`` per cross-attention);
- ``rgb+offload`` / ``joint+offload`` (CUDA only): block-level group offloading from the CPU.

Every case is built once and warmed up; then ``--rounds`` rounds each run every case once, in
order (A B C A B C ...), so slow spells of a shared machine hit all cases alike. Reported per
case: the median time and its spread (min, max), and the median over rounds of the paired ratio
to the baseline case in the same round (with its spread). FLOPs per forward are counted from the
architecture (matmuls and attention; the rest is below 1 %); on CUDA, MFU = FLOPs / time /
``--peak-tflops`` (default: the device's dense bf16 peak when known) and each case's peak
memory (the counter is reset before each call). Weights are random: speed does not depend on
them.

    python bench/dit_forward.py                                   # CPU, unityvideo-small, 17x64x64
    python bench/dit_forward.py --preset wan2.2-ti2v-5b --device cuda --dtype bf16 \\
        --frames 81 --height 480 --width 832 --cases joint,rgb,joint@_native_cudnn,joint+compile

Latent size follows the preset's codec (Wan2.2 VAE: 4x time, 16x space, 48 channels; the small
default codec: 4x time, 8x space, 16 channels). Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.constants import embedded_defaults  # noqa: E402
from unity_core.io import latent_frame_count  # noqa: E402
from unity_core.model import UnityVideoTransformer, get_config  # noqa: E402

SPATIAL = {"wan2.2-ti2v-5b": 16, "yume-5b": 16, "unityvideo-small": 8}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: dense bf16 tensor-core peaks (TFLOP/s) by device-name fragment
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0, "A10": 125.0}


def forward_flops(cfg, tokens: int, text_tokens: int, joint: bool) -> float:
    """Matmul + attention FLOPs of one forward (2 per multiply-add).

    Per block with N tokens, D width, F ffn width, L text tokens: self-attention projections
    8 N D^2 and scores/values 4 N^2 D; cross-attention q/out 4 N D^2, k/v 4 L D^2 per stream
    and scores/values 4 N L D; FFN 4 N D F. Plus the patch embedding, text embedding and head.
    """
    d, f, L = cfg.dim, cfg.ffn_dim, text_tokens
    n = 2 * tokens if joint else tokens
    streams = 2 if joint else 1
    patch = cfg.in_channels * cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
    block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + streams * 4 * L * d * d + 4 * n * L * d + 4 * n * d * f
    outer = 2 * n * patch * d * 2 + 2 * L * (cfg.text_dim * d + d * d) * streams
    return float(cfg.num_layers * block + outer)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build_case(name, cfg, dtype, device, inputs):
    """(callable, joint?) for one case name (see the module docstring)."""
    base, _, backend = name.partition("@")
    base, _, option = base.partition("+")
    x, t, ctx = inputs
    if base == "diffusers":
        from diffusers import WanTransformer3DModel

        with torch.device(device):
            ref = WanTransformer3DModel(
                patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
                in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim,
                freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
            ).to(dtype).eval()
        return (lambda: ref(x, t, ctx, return_dict=False)), False
    if base not in ("rgb", "joint"):
        raise SystemExit(f"unknown case {name!r}: use rgb, joint or diffusers, with @BACKEND or +compile/+fp8/+fuseqkv/+offload")
    on_cpu_first = option == "offload"
    if on_cpu_first and device.type != "cuda":
        raise SystemExit(f"case {name}: group offloading needs --device cuda")
    with torch.device("cpu" if on_cpu_first else device):
        model = UnityVideoTransformer.from_config(cfg).to(dtype).eval()
    if backend:
        model.set_attention_backend(backend)
    if option == "compile":
        model.compile_repeated_blocks()
    elif option == "fp8":
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    elif option == "fuseqkv":
        model.fuse_qkv_projections()
    elif option == "offload":
        model.enable_group_offload(device, torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1,
                                   use_stream=True)
    elif option:
        raise SystemExit(f"unknown option +{option} in case {name!r}")
    joint = base == "joint"
    if joint:
        return (lambda: model(x, t, ctx, x, "depth", ctx, return_dict=False)), True
    return (lambda: model(x, t, ctx, return_dict=False)), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="unityvideo-small")
    model = embedded_defaults()  # the default model's clip: 17x64x64
    ap.add_argument("--frames", type=int, default=model["num_frames"])
    ap.add_argument("--height", type=int, default=model["height"])
    ap.add_argument("--width", type=int, default=model["width"])
    ap.add_argument("--text-tokens", type=int, default=512, help="context length (UMT5: 512, the release pads to it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    ap.add_argument("--cases", default="rgb,joint,diffusers")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (each runs every case once)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak for MFU (default: by device name)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cfg = get_config(args.preset)
    s = SPATIAL.get(args.preset, 8)
    latent = (1, cfg.in_channels, latent_frame_count(args.frames), args.height // s, args.width // s)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(latent, generator=gen).to(device=device, dtype=dtype)
    ctx = torch.randn(1, args.text_tokens, cfg.text_dim, generator=gen).to(device=device, dtype=dtype)
    t = torch.tensor([700.0], device=device)
    tokens = latent[2] // cfg.patch_size[0] * (latent[3] // cfg.patch_size[1]) * (latent[4] // cfg.patch_size[2])
    names = [c.strip() for c in args.cases.split(",") if c.strip()]

    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in gpu), None)

    cases = {}
    torch.manual_seed(0)
    for name in names:
        fn, joint = build_case(name, cfg, dtype, device, (x, t, ctx))
        with torch.no_grad():
            for _ in range(args.warmup):
                fn()
        _sync(device)
        cases[name] = {"fn": fn, "joint": joint, "times": [], "peak_mib": 0.0}

    for _ in range(args.rounds):
        for name, case in cases.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                case["fn"]()
            _sync(device)
            case["times"].append(time.perf_counter() - start)
            if device.type == "cuda":
                case["peak_mib"] = max(case["peak_mib"], torch.cuda.max_memory_allocated(device) / 2**20)

    base = cases[names[0]]["times"]
    result = {"preset": args.preset, "device": args.device, "dtype": args.dtype, "threads": torch.get_num_threads(),
              "video": [args.frames, args.height, args.width], "latent": list(latent), "tokens_per_stream": tokens,
              "text_tokens": args.text_tokens, "rounds": args.rounds, "baseline": names[0],
              "torch": torch.__version__, "peak_tflops": peak, "cases": {}}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    for name, case in cases.items():
        times = case["times"]
        ratios = [a / b for a, b in zip(times, base)]
        flops = forward_flops(cfg, tokens, args.text_tokens, case["joint"])
        entry = {"median_s": round(statistics.median(times), 5), "min_s": round(min(times), 5),
                 "max_s": round(max(times), 5), "ratio_median": round(statistics.median(ratios), 4),
                 "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
                 "tflops_per_forward": round(flops / 1e12, 4),
                 "achieved_tflops": round(flops / statistics.median(times) / 1e12, 3)}
        if peak:
            entry["mfu"] = round(flops / statistics.median(times) / (peak * 1e12), 4)
        if device.type == "cuda":
            entry["peak_mib"] = round(case["peak_mib"], 1)
        result["cases"][name] = entry
    print(json.dumps(result))


if __name__ == "__main__":
    main()
