"""Model evaluations and time per clip for each sampler, and the block cache's speed-up
against its deviation from the uncached result.

Runs the ``unityvideo-small`` preset with random weights on a 17x64x64 clip's latent
(16 x 5 x 8 x 8) for joint generation, so the figures are the sampler's cost on the shipped
default's shapes. Prints one JSON object last.

    python bench/samplers.py [--steps 20] [--weights path.safetensors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402
from unity_core.model import UnityVideoTransformer, get_config, load_transformer  # noqa: E402
from unity_core.sampling import AAM, BlockCache, TimeTravel, rank_blocks_by_removal, sample  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    ap.add_argument("--weights", default=None, help="a trained checkpoint instead of random weights")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = load_transformer(args.weights) if args.weights else UnityVideoTransformer.from_config(get_config("unityvideo-small")).eval()
    cfg = model.config
    shape = (1, cfg.in_channels, 5, 8, 8)
    ctx = torch.randn(1, 32, cfg.text_dim)
    neg = torch.zeros(1, 32, cfg.text_dim)
    base = dict(context=ctx, modality="depth", modality_context=ctx, shape=shape, steps=args.steps, seed=0)
    ranked = rank_blocks_by_removal(model, torch.randn(shape), torch.tensor([500.0]), ctx, torch.randn(shape), "depth", ctx)
    n_cache = max(1, cfg.num_layers // 4)
    runs = {
        "euler": {},
        "euler_cfg5": dict(cfg=5.0, negative_context=neg),
        "unipc": dict(scheduler="unipc"),
        "dpmpp_2m": dict(scheduler="dpmpp_2m"),
        "tts_ode_s2_l2": dict(time_travel=TimeTravel(interval=2, lookahead=2)),
        "tts_sde_s2_l2": dict(time_travel=TimeTravel(interval=2, lookahead=2, sde=True, eta=0.3)),
        "aam_k5_cfg5": dict(cfg=5.0, negative_context=neg, aam=AAM(k=5, first_pass_steps=max(1, args.steps * 3 // 5))),
        "cache_interval2": dict(cache=BlockCache(blocks=ranked[:n_cache], interval=2)),
        "cache_interval3": dict(cache=BlockCache(blocks=ranked[:n_cache], interval=3)),
    }
    result = {"preset": "unityvideo-small" if not args.weights else args.weights, "latent": list(shape),
              "steps": args.steps, "threads": torch.get_num_threads(), "cached_blocks": ranked[:n_cache], "samplers": {}}
    outputs = {}
    with torch.no_grad():
        for name, extra in runs.items():
            start = time.perf_counter()
            out = sample(model, "text2all", **base, **extra)
            elapsed = time.perf_counter() - start
            outputs[name] = out
            result["samplers"][name] = {"model_evaluations": out.model_evaluations, "seconds": round(elapsed, 3)}
            print(f"{name:>16}: {out.model_evaluations:3d} evaluations, {elapsed:.3f} s")
    ref = outputs["euler"].rgb_latent
    for name in ("cache_interval2", "cache_interval3"):
        dev = ((outputs[name].rgb_latent - ref).norm() / ref.norm()).item()
        speed = result["samplers"]["euler"]["seconds"] / result["samplers"][name]["seconds"]
        result["samplers"][name].update(speedup=round(speed, 3), relative_deviation=round(dev, 5))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
