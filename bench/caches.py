"""Diffusers' step caches against the uncached sampler, interleaved on the same inputs.

Default mode (the embedded model, or ``--checkpoint``): per held-out synthworld clip, depth
estimation and joint generation (text -> RGB + depth) at ``--steps`` (20), each cache case run
right after an uncached run of the same task and clip (A B A B ...), ``--rounds`` times. Reported
per case:

- ``speedup_wall``: median over pairs of uncached / cached seconds of the whole task call
  (text encoding cached, codec encode/decode included); ``speedup_denoise``: the same for the
  time spent inside the transformer (what a cache can save);
- ``skipped_evaluations`` / ``forwards`` (whole evaluations the block caches skipped) and
  ``computed_fraction`` (block attention/FFN parts that ran, over an uncached run's);
- ``psnr_db`` / ``ssim`` of the decoded output against the uncached output (estimation: the depth
  video; joint generation: RGB and depth videos);
- ``depth_absrel``: estimation's depth AbsRel against synthworld's ground truth (as
  ``bench/eval_default.py`` scores it), beside the uncached run's (``absrel_change`` relative).

``meets_goal``: speedup_wall >= 2.5 with psnr >= 30 dB and |absrel_change| <= 2 %. ``pareto``: the
cases no other case beats in both speedup_wall and psnr.

``--random``: speed only, on a model with random weights at a preset's real shapes (e.g. the 5B
on a GPU: ``--preset wan2.2-ti2v-5b --device cuda --dtype bf16 --frames 33 --height 256 --width
256``): the sampler alone on random latents and prompt tokens, MagCache's ratios calibrated on an
uncached run first. Random weights make output quality meaningless, so none is reported.

    python bench/caches.py [--clips 2] [--steps 20] [--rounds 3] [--cases first-block:0.1,mag,...]

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402
from unity_core.io import latent_frame_count  # noqa: E402
from unity_core.sampling.caches import CacheCounter, MagRatioRecorder, cache_config, enabled_cache  # noqa: E402

#: default cases; MagCache's thresholds sit above the default's per-step ratio error (~0.08: its
#: calibrated ratios are ~0.92), below which it would never skip
CASES = ("first-block:0.05,first-block:0.1,first-block:0.2,mag:0.1,mag:0.25,mag:0.5:4,taylorseer:3,taylorseer:5,"
         "pab:2,pab:3,faster:2")
SPATIAL = {"wan2.2-ti2v-5b": 16, "yume-5b": 16, "unityvideo-small": 8}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of frames in [0, 1] (inf when equal)."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of frames ``[F, H, W, 3]`` in [0, 1] (Gaussian window 11, sigma 1.5, per channel)."""
    x, y = (t.float().permute(0, 3, 1, 2) for t in (a, b))
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g = (g / g.sum())
    win = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)
    blur = lambda t: F.conv2d(t, win, padding=5, groups=3)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean().item()


class ForwardTimer:
    """Seconds spent inside a module's forward (pre/post hooks; syncs CUDA)."""

    def __init__(self, module):
        self.seconds, self._start = 0.0, None
        self._handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _pre(self, *_):
        self._sync()
        self._start = time.perf_counter()

    def _post(self, *_):
        self._sync()
        self.seconds += time.perf_counter() - self._start

    def remove(self):
        for h in self._handles:
            h.remove()


def timed(model, config, fn):
    """(result, wall seconds, transformer seconds, counter summary) of ``fn()`` with ``config``."""
    timer = ForwardTimer(model)
    try:
        with torch.no_grad(), enabled_cache(model, config), CacheCounter(model) as counter:
            start = time.perf_counter()
            out = fn()
            wall = time.perf_counter() - start
    finally:
        timer.remove()
    return out, wall, timer.seconds, counter.summary()


def summarise(rows, steps):
    """Per-case aggregates of the per-run rows (see the module docstring)."""
    result = {}
    for case, runs in rows.items():
        entry = {"speedup_wall": round(statistics.median(r["speedup_wall"] for r in runs), 3),
                 "speedup_denoise": round(statistics.median(r["speedup_denoise"] for r in runs), 3),
                 "forwards": sum(r["forwards"] for r in runs),
                 "skipped_evaluations": sum(r["skipped_evaluations"] for r in runs),
                 "computed_fraction": round(statistics.mean(r["computed_fraction"] for r in runs), 4)}
        quality = [r for r in runs if "psnr_db" in r]
        if quality:
            entry["psnr_db"] = round(statistics.mean(min(r["psnr_db"], 99.0) for r in quality), 2)
            entry["ssim"] = round(statistics.mean(r["ssim"] for r in quality), 4)
            for task in ("estimate", "generate"):
                sub = [r for r in quality if r["task"] == task]
                if sub:
                    entry[f"psnr_db_{task}"] = round(statistics.mean(min(r["psnr_db"], 99.0) for r in sub), 2)
        absrel = [r for r in runs if "depth_absrel" in r]
        if absrel:
            cached = statistics.mean(r["depth_absrel"] for r in absrel)
            base = statistics.mean(r["depth_absrel_uncached"] for r in absrel)
            entry.update(depth_absrel=round(cached, 4), depth_absrel_uncached=round(base, 4),
                         absrel_change=round(cached / base - 1, 4))
        if "psnr_db" in entry and "absrel_change" in entry:
            entry["meets_goal"] = bool(entry["speedup_wall"] >= 2.5 and entry["psnr_db"] >= 30
                                       and abs(entry["absrel_change"]) <= 0.02)
        result[case] = entry
    return result


def pareto(cases):
    """Cases no other case beats in both speedup_wall and psnr_db (ties kept)."""
    front = []
    for name, e in cases.items():
        if "psnr_db" not in e:
            continue
        if not any(o["speedup_wall"] >= e["speedup_wall"] and o["psnr_db"] >= e["psnr_db"]
                   and (o["speedup_wall"], o["psnr_db"]) != (e["speedup_wall"], e["psnr_db"])
                   for n, o in cases.items() if n != name and "psnr_db" in o):
            front.append(name)
    return sorted(front, key=lambda n: cases[n]["speedup_wall"])


def bench_default(args, specs):
    from bench.eval_default import HELD_OUT, score_depth
    from unity_core.data.synthworld import held_actions, render_clip
    from unity_core.pipeline import UnityVideoPipeline

    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    model = pipe.transformer
    clips = [render_clip(HELD_OUT + i, 17, 64, 64, actions=held_actions(HELD_OUT + i, 17)) for i in range(args.clips)]
    tasks = [t for t in args.tasks.split(",") if t]

    def call(task, clip, i):
        if task == "estimate":
            return lambda: pipe.estimate(clip.rgb, "depth", prompt=clip.prompt, steps=args.steps, seed=i)
        return lambda: pipe.generate(clip.prompt, "depth", steps=args.steps, seed=i)

    def frames(task, out):
        return out.modality_frames if task == "estimate" else torch.cat([out.rgb, out.modality_frames], 2)

    configs = {s: pipe.step_cache_config(s, "video2flow", args.steps) for s in specs}
    configs_joint = {s: pipe.step_cache_config(s, "text2all", args.steps) for s in specs}
    for i, clip in enumerate(clips):  # warm-up, and the prompts encoded once
        for task in tasks:
            timed(model, None, call(task, clip, i))
    rows = {s: [] for s in specs}
    start = time.time()
    for r in range(args.rounds):
        for i, clip in enumerate(clips):
            for task in tasks:
                fn = call(task, clip, i)
                for spec in specs:
                    config = (configs if task == "estimate" else configs_joint)[spec]
                    ref, wall0, dit0, _ = timed(model, None, fn)
                    out, wall, dit, counts = timed(model, config, fn)
                    row = {"task": task, "speedup_wall": wall0 / wall, "speedup_denoise": dit0 / dit, **counts}
                    if r == 0:  # outputs are deterministic: quality once
                        a, b = frames(task, out), frames(task, ref)
                        row.update(psnr_db=psnr(a, b), ssim=ssim(a, b))
                        if task == "estimate":
                            row.update(depth_absrel=score_depth(out.values, clip)["depth_absrel"],
                                       depth_absrel_uncached=score_depth(ref.values, clip)["depth_absrel"])
                    rows[spec].append(row)
        print(f"round {r + 1}/{args.rounds} done ({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    cases = summarise(rows, args.steps)
    return {"mode": "default", "checkpoint": args.checkpoint, "clips": args.clips, "tasks": tasks,
            "video": [17, 64, 64], "cases": cases, "pareto": pareto(cases),
            "goal_met_by": [n for n, e in cases.items() if e.get("meets_goal")]}


def bench_random(args, specs):
    from unity_core.model import UnityVideoTransformer, get_config
    from unity_core.sampling import sample

    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    cfg = get_config(args.preset)
    with torch.device(device):
        model = UnityVideoTransformer.from_config(cfg).to(dtype).eval()
    s = SPATIAL.get(args.preset, 8)
    shape = (1, cfg.in_channels, latent_frame_count(args.frames), args.height // s, args.width // s)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    ctx = torch.randn(1, args.text_tokens, cfg.text_dim, generator=g).to(device=device, dtype=dtype)
    tasks = [t for t in args.tasks.split(",") if t]

    def call(task, cache=None):
        kw = dict(context=ctx, modality="depth", steps=args.steps, seed=0, cache=cache)
        if task == "estimate":
            return lambda: sample(model, "video2flow", rgb_latent=x, **kw)
        return lambda: sample(model, "text2all", shape=shape, **kw)

    ratios = {}
    for task in tasks:  # MagCache ratios of these random weights (meaningless but needed to run it)
        rec = MagRatioRecorder(len(model.blocks))
        with torch.no_grad():
            call(task, rec)()
        ratios[task] = rec.ratios
    rows = {sp: [] for sp in specs}
    for _ in range(args.rounds):
        for task in tasks:
            for spec in specs:
                config = cache_config(spec, model, steps=args.steps, mag_ratios=ratios[task])
                _, wall0, dit0, _ = timed(model, None, call(task))
                _, wall, dit, counts = timed(model, config, call(task))
                rows[spec].append({"task": task, "speedup_wall": wall0 / wall, "speedup_denoise": dit0 / dit, **counts})
    result = {"mode": "random", "preset": args.preset, "device": args.device, "dtype": args.dtype,
              "video": [args.frames, args.height, args.width], "latent": list(shape), "tasks": tasks,
              "note": "random weights: speed only (output quality is meaningless)", "cases": summarise(rows, args.steps)}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--cases", default=CASES, help="comma-separated cache specs (unity_core.sampling.caches)")
    ap.add_argument("--tasks", default="estimate,generate")
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--random", action="store_true", help="speed only, random weights at --preset's shapes")
    ap.add_argument("--preset", default="wan2.2-ti2v-5b")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    # --random's video: the release's (the 5B's) frames and size
    ap.add_argument("--frames", type=int, default=INFERENCE_DEFAULTS["num_frames"])
    ap.add_argument("--height", type=int, default=INFERENCE_DEFAULTS["height"])
    ap.add_argument("--width", type=int, default=INFERENCE_DEFAULTS["width"])
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [c.strip() for c in args.cases.split(",") if c.strip()]
    result = bench_random(args, specs) if args.random else bench_default(args, specs)
    result.update(steps=args.steps, rounds=args.rounds, threads=torch.get_num_threads(), torch=torch.__version__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
