"""MagCache calibration: record the magnitude ratios of a checkpoint's residuals for given tasks
and settings, and write them where ``cache="mag"`` finds them (``mag_ratios.json`` in the
pipeline folder).

    python -m unity_core.sampling.mag_calibration                       # the embedded default
    python -m unity_core.sampling.mag_calibration --checkpoint uv5b --device cuda --dtype bf16 \\
        --size 480 --frames 81 --clips 2                                 # the 5B (needs its real weights)

The ratios depend on the weights, the task, the step count and (less) the size; calibrate with
the settings you sample with. MagCache interpolates them to other step counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from unity_core.sampling.caches import MAG_RATIOS_FILE, MagRatioRecorder


def calibrate(pipe, task: str, clips: int = 4, steps: int = 20, modalities: Sequence[str] = ("depth",),
              size: int = 64, frames: int = 17, seed0: int = 100000) -> List[float]:
    """Mean MagCache ratios of ``task`` over synthworld clips for a pipeline (uncached runs).

    Args:
        pipe: a :class:`~unity_core.pipeline.UnityVideoPipeline`.
        task: ``video2flow`` (estimation), ``text2all`` (joint generation) or ``flow2video``
            (controllable generation).
        clips / steps / modalities / size / frames: the runs (held-out synthworld clips, seeds from
            ``seed0``); average over as many as the use you calibrate for.

    Returns:
        ``steps`` ratios (the first is 1.0).
    """
    from unity_core.data.synthworld import held_actions, modality_values, render_clip
    from unity_core.modalities import encode

    runs = []
    for i in range(clips):
        clip = render_clip(seed0 + i, frames, size, size, actions=held_actions(seed0 + i, frames))
        for modality in modalities:
            rec = MagRatioRecorder(len(pipe.transformer.blocks))
            kw = dict(steps=steps, seed=i, cache=rec)
            if task == "video2flow":
                pipe.estimate(clip.rgb, modality, prompt=clip.prompt, **kw)
            elif task == "text2all":
                pipe.generate(clip.prompt, modality, num_frames=frames, height=size, width=size, **kw)
            elif task == "flow2video":
                pipe.control(encode(modality, modality_values(clip, modality)), modality, clip.prompt, **kw)
            else:
                raise ValueError(f"task must be video2flow, text2all or flow2video, got {task!r}")
            runs.append(rec.ratios)
    return [round(sum(r[k] for r in runs) / len(runs), 5) for k in range(steps)]


def calibrate_main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m unity_core.sampling.mag_calibration``: calibrate MagCache for a pipeline folder and write
    ``mag_ratios.json`` (into the folder, or ``--out``; an existing file is never overwritten)."""
    from unity_core.constants import embedded_defaults
    from unity_core.pipeline import DEFAULT_DIR, UnityVideoPipeline

    ap = argparse.ArgumentParser(prog="python -m unity_core.sampling.mag_calibration",
                                 description="Record MagCache's magnitude ratios for a checkpoint and settings.")
    ap.add_argument("--checkpoint", default="default", help="a pipeline folder (default: the embedded model)")
    ap.add_argument("--tasks", default="video2flow,text2all,flow2video")
    ap.add_argument("--modalities", default="depth", help="comma-separated; ratios are averaged over them")
    ap.add_argument("--clips", type=int, default=4)
    model = embedded_defaults()  # the embedded default's steps, size and frames
    ap.add_argument("--steps", type=int, default=model["steps"])
    ap.add_argument("--size", type=int, default=model["height"], help="frame height = width in pixels")
    ap.add_argument("--frames", type=int, default=model["num_frames"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None, help=f"default: CHECKPOINT/{MAG_RATIOS_FILE}")
    args = ap.parse_args(argv)
    folder = DEFAULT_DIR if args.checkpoint == "default" else Path(args.checkpoint)
    out = args.out or folder / MAG_RATIOS_FILE
    if out.exists():
        raise SystemExit(f"{out} exists; remove it or pass --out")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint, dtype=dtype, device=args.device)
    modalities = [m for m in args.modalities.split(",") if m]
    table = {"checkpoint": str(args.checkpoint), "steps": args.steps, "modalities": modalities, "clips": args.clips,
             "video": [args.frames, args.size, args.size], "dtype": args.dtype,
             "note": "MagCache ratios mean(||r_t|| / ||r_t-1||), r = last block out - first block in; "
                     "written by python -m unity_core.sampling.mag_calibration", "tasks": {}}
    with torch.no_grad():
        for task in [t for t in args.tasks.split(",") if t]:
            table["tasks"][task] = {"ratios": calibrate(pipe, task, args.clips, args.steps, modalities, args.size,
                                                        args.frames)}
            print(f"{task}: {table['tasks'][task]['ratios']}", flush=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(calibrate_main())
