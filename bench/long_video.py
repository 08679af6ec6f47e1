"""Whole-video estimation: quality of stitched windows, seams, and memory / speed on 1080p clips.

Quality, on synthworld clips with ground truth (``--frames`` frames, default 129, a camera action
per 4 frames: the camera moves through the room), depth AbsRel / delta1 (prediction mapped to
metres with the clip's disparity range, as ``bench/eval_default.py``) and flow EPE of

- ``stitched``: windows with overlap, each conditioned on the previous window's output
  (``--stitched``: overlap and conditioning, one row per setting),
- ``independent``: windows with no overlap and no conditioning (the last window, aligned to the
  clip's end, still shares frames and is blended),
- ``subsample``: the release's single window (17 frames spread uniformly over the clip) with
  the values interpolated linearly in time back to every frame (flow vectors unchanged).

Temporal consistency at seams: for each pair of consecutive frames, the mean absolute
frame-to-frame change of the predicted relative depth minus that of the ground truth's,
averaged over pairs that straddle a window boundary (``seam``) and over the others
(``inside``); ``seam_ratio`` = seam / inside.

Memory and speed: a 10 s and a 60 s 1920x1080 30 fps clip (synthetic moving pattern, written
with PyAV) estimated by ``unityvideo estimate`` in a child process; its peak RSS (``os.wait4``,
the figure ``/usr/bin/time -v`` prints as "Maximum resident set size"; given in GiB and in GB)
and frames per second over the whole run (decode, windows, 1080p encode, values), and
``peak_rss_ratio``, the longest clip's peak over the shortest's (memory must not grow with the
clip's length). ``--hd-steps`` (default 1) is the sampler's step count for these runs: at the
default model's 64x112 the steps change the time spent in the model, not what is held at the
source size, and one step keeps the 60 s clip (150 windows) to tens of minutes on one CPU
thread; ``--hd-steps 20`` gives the release's speed.

    python bench/long_video.py [--clips 1] [--frames 129] [--steps 20] [--stitched 5:clean,5:noised,9:clean]
        [--hd-seconds 10,60] [--hd-steps 1] [--skip-quality] [--skip-hd]

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_default import score_depth, score_flow  # noqa: E402

from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402
from unity_core.data.synthworld import modality_values, render_clip  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402

SEED0 = 200000
CACHE = Path(tempfile.gettempdir()) / "unityvideo_long_video_bench"


def clip_for(seed: int, frames: int, size: int):
    """A rendered synthworld clip, cached on disk (rendering 129 frames takes about a minute)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"clip_{seed}_{frames}_{size}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    clip = render_clip(seed, frames, size, size)
    torch.save(clip, path)
    return clip


def seam_errors(pred: torch.Tensor, truth: torch.Tensor, seams: set) -> dict:
    """Mean |change of prediction - change of truth| over frame pairs at seams and inside windows."""
    dp = (pred[1:] - pred[:-1]).abs().flatten(1).mean(1)
    dt = (truth[1:] - truth[:-1]).abs().flatten(1).mean(1)
    err = (dp - dt).abs()
    at = torch.tensor([t + 1 in seams for t in range(err.shape[0])])
    seam = float(err[at].mean()) if at.any() else float("nan")
    inside = float(err[~at].mean())
    return {"seam": seam, "inside": inside, "seam_ratio": seam / inside if inside > 0 else float("nan")}


def time_upsample(values: torch.Tensor, idx, frames: int) -> torch.Tensor:
    """Values at source indices ``idx`` -> every frame by linear interpolation in time."""
    idx = torch.tensor(idx, dtype=torch.float64)
    t = torch.arange(frames, dtype=torch.float64)
    hi = torch.searchsorted(idx, t).clamp(1, len(idx) - 1)
    lo = hi - 1
    w = ((t - idx[lo]) / (idx[hi] - idx[lo])).clamp(0, 1).float().view(-1, *([1] * (values.ndim - 1)))
    return (1 - w) * values[lo] + w * values[hi]


def quality(pipe, args) -> dict:
    rows = {}
    configs = [(f"stitched_o{o}_{c}", dict(overlap=o, conditioning=c)) for o, c in args.stitched]
    configs.append(("independent", dict(overlap=0, conditioning="none")))
    for i in range(args.clips):
        clip = clip_for(SEED0 + i, args.frames, args.size)
        gt_rel = modality_values(clip, "depth")
        for modality in ("depth", "raft"):
            runs = list(configs) if modality == "depth" else [configs[0], configs[-1]]
            for name, opts in runs + [("subsample", None)]:
                start = time.perf_counter()
                if opts is None:
                    out = pipe.estimate(clip.rgb, modality, steps=args.steps, seed=0, num_frames=17)
                    idx = np.linspace(0, args.frames - 1, 17).round().astype(int).tolist()
                    values, seams = time_upsample(out.values.float(), idx, args.frames), set()
                else:
                    out = pipe.estimate(clip.rgb, modality, steps=args.steps, seed=0, **opts)
                    values = out.values
                    seams = {lo for lo in _emit_starts(out.info)}
                row = rows.setdefault(f"{modality}/{name}", {"seconds": 0.0, "clips": 0})
                row["seconds"] += time.perf_counter() - start
                row["clips"] += 1
                scores = score_depth(values, clip) if modality == "depth" else score_flow(values, clip)
                if modality == "depth":
                    scores.update({f"tc_{k}": v for k, v in seam_errors(values, gt_rel, seams).items()})
                for k, v in scores.items():
                    row[k] = row.get(k, 0.0) + v
                print(f"clip {i} {modality}/{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
    for row in rows.values():
        for k in list(row):
            if k not in ("clips",):
                row[k] = round(row[k] / row["clips"], 4) if k != "seconds" else round(row[k], 1)
    return rows


def _emit_starts(info) -> list:
    from unity_core.video.windows import plan_windows

    plan = plan_windows(info["num_frames"], info["window"], info["overlap"], condition=info["conditioning"] != "none")
    return [w.emit[0] for w in plan.windows[1:]]


def make_hd_clip(path: Path, seconds: int, fps: int = 30, size=(1080, 1920)) -> Path:
    """A moving synthetic 1080p clip (gradient, drifting bars, a moving disc), H.264 via PyAV."""
    import av

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(seconds * fps):
            t = i / fps
            r = (xx / w + 0.1 * t) % 1.0
            g = 0.5 + 0.5 * np.sin(2 * np.pi * (yy / 180 + 0.3 * t))
            b = (((xx - 200 * t) % w - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 5) ** 2).astype(np.float32)
            frame = (np.stack([r, g, b], -1) * 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def hd_run(seconds: int, steps: int, folder: Path) -> dict:
    clip = folder / f"hd_{seconds}s.mp4"
    if not clip.is_file():
        make_hd_clip(clip, seconds)
    out = folder / f"depth_{seconds}s.mp4"
    cmd = [sys.executable, "-m", "unity_core.cli", "estimate", "--modality", "depth", "--video", str(clip),
           "--out", str(out), "--steps", str(steps)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    text = proc.stdout.read().decode()
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({status}): {text}")
    frames = seconds * 30
    peak = usage.ru_maxrss * 1024  # bytes (Linux reports KiB)
    return {"frames": frames, "peak_rss_gib": round(peak / 2 ** 30, 3), "peak_rss_gb": round(peak / 1e9, 3),
            "seconds": round(wall, 1),
            "fps": round(frames / wall, 2), "steps": steps, "output": text.strip().splitlines()[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1)
    ap.add_argument("--frames", type=int, default=129)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    ap.add_argument("--stitched", default="5:clean,5:noised,9:clean",
                    help="stitched settings OVERLAP:CONDITIONING, comma-separated; the first is also run on flow")
    ap.add_argument("--hd-seconds", default="10,60")
    ap.add_argument("--hd-steps", type=int, default=1,
                    help="sampler steps of the 1080p memory / speed runs (1: memory is the same, the run is short)")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-hd", action="store_true")
    ap.add_argument("--checkpoint", default="default")
    args = ap.parse_args()
    args.stitched = [(int(o), c) for o, c in (item.split(":") for item in args.stitched.split(",") if item)]
    report = {"frames": args.frames, "steps": args.steps, "clips": args.clips, "torch_threads": torch.get_num_threads()}
    if not args.skip_quality:
        pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
        report["quality"] = quality(pipe, args)
    if not args.skip_hd:
        folder = CACHE / "hd"
        folder.mkdir(parents=True, exist_ok=True)
        hd = {f"{s}s": hd_run(int(s), args.hd_steps, folder) for s in args.hd_seconds.split(",") if s}
        if len(hd) > 1:
            peaks = [r["peak_rss_gib"] for r in hd.values()]
            hd["peak_rss_ratio"] = round(peaks[-1] / peaks[0], 3)
        report["hd_1080p"] = hd
        for p in folder.glob("depth_*"):
            p.unlink()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
