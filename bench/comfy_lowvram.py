"""The native ComfyUI model under ComfyUI's low-VRAM path: partially loaded against fully loaded.

    python bench/comfy_lowvram.py --comfy /path/to/ComfyUI            # random UnityVideo-5B, bf16, on CUDA
    python bench/comfy_lowvram.py --comfy /path/to/ComfyUI --smoke    # the small preset on the CPU

ComfyUI is imported in-process (a test tool, GPL-3.0: nothing of it is copied here) and this pack
is loaded as ComfyUI loads a custom node. The transformer gets random weights (speed and the
low-VRAM mechanics do not depend on them), is wrapped as core MODEL (``nodes/model.py``), and one
model evaluation (x0 of a packed joint latent at sigma 0.7) runs twice: fully loaded
(``load_models_gpu(force_full_load=True)``) and partially loaded with a budget of half the
weights (``ModelPatcher.partially_load``), where ComfyUI streams the rest layer by layer. On a
GPU a weight left on the wrong device fails or changes the output, which a CPU cannot show.
Prints one JSON object last: lowvram flag, loaded fraction, max abs difference, seconds and (on
CUDA) peak memory of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy", required=True, type=Path, help="a ComfyUI folder (setup.sh's last line)")
    ap.add_argument("--smoke", action="store_true", help="unityvideo-small on the CPU (checks the script)")
    ap.add_argument("--frames", type=int, default=9, help="video frames (4k+1) of the latent")
    ap.add_argument("--size", type=int, default=256, help="video height = width in pixels")
    args = ap.parse_args()

    import torch

    sys.path.insert(0, str(args.comfy))  # ComfyUI's top-level modules (nodes, folder_paths) first
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = args.smoke or not torch.cuda.is_available()
    import comfy.model_management as mm
    import nodes as comfy_nodes

    if not asyncio.run(comfy_nodes.load_custom_node(str(REPO))):
        raise SystemExit(f"ComfyUI did not load the pack from {REPO}")
    pack = sys.modules[str(REPO).replace(".", "_x_")]  # the name load_custom_node gives a folder
    model_module = sys.modules[pack.__name__ + ".nodes.model"]

    from unity_core.io import latent_frame_count
    from unity_core.model import UnityVideoTransformer, get_config

    cfg = get_config("unityvideo-small" if args.smoke else "wan2.2-ti2v-5b")
    torch.manual_seed(0)
    start = time.perf_counter()
    transformer = UnityVideoTransformer.from_config(cfg).to(torch.float32 if args.smoke else torch.bfloat16).eval()
    build_s = time.perf_counter() - start
    patcher = model_module.make_model_patcher(transformer, "default")
    device = mm.get_torch_device()

    spatial = 8 if args.smoke else 16
    h = w = args.size // spatial
    f = latent_frame_count(args.frames)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.in_channels, f, h, 2 * w, generator=g)
    ctx = torch.randn(1, 512 if not args.smoke else 32, cfg.text_dim, generator=g)

    def evaluate():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = patcher.model.apply_model(x, torch.tensor([0.7]), c_crossattn=ctx, unityvideo_packed=True,
                                            unityvideo_modality="depth", unityvideo_modality_context=ctx,
                                            transformer_options={})
        if device.type == "cuda":
            torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        return out.float().cpu(), time.perf_counter() - t0, peak

    mm.load_models_gpu([patcher], force_full_load=True)
    full, full_s, full_peak = evaluate()
    patcher.detach()
    patcher.partially_load(device, extra_memory=patcher.model_size() // 2)
    partial, partial_s, partial_peak = evaluate()
    result = {
        "bench": "comfy_lowvram", "preset": "unityvideo-small" if args.smoke else "wan2.2-ti2v-5b",
        "device": str(device), "latent": list(x.shape), "build_s": round(build_s, 1),
        "lowvram": bool(patcher.model.model_lowvram),
        "loaded_fraction": round(patcher.model.model_loaded_weight_memory / patcher.model_size(), 3),
        "max_abs_diff": float((full - partial).abs().max()), "full_s": round(full_s, 3),
        "partial_s": round(partial_s, 3), "full_peak_mib": full_peak, "partial_peak_mib": partial_peak,
        "torch": torch.__version__,
    }
    patcher.detach()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
