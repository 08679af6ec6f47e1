"""How far the latent codec alone limits each estimation metric (the "codec floor").

Ground-truth modality values of held-out synthworld clips are drawn as UnityVideo visualisations,
passed through the codec (encode, decode) and turned back into values, then scored as
``bench/eval_default.py`` scores the model. A model that predicted the latent of the true
visualisation exactly would score this, so no model on this codec can do better.

The same clips' RGB goes through the codec too (L1 on the [0, 1] scale, PSNR in dB), and
``--walks`` held-out exploration walks (8 random actions of 4 frames each, as ``bench/explore.py``
walks them) are scored by the camera-motion scorer of ``unity_core.metrics.camera_motion`` before and
after the codec: the instruction following that any transformer on this codec can show at most.
The walks' RGB L1 is given for frames 0-16 and 17-32 apart: a codec trained on 17-frame clips
that drifts past that length shows it in the second figure.

    python bench/codec_floor.py [--clips 8] [--walks 8] [--checkpoint default] [--codec FOLDER]

``--codec`` measures another codec folder (e.g. a fresh ``scripts/train_codec.py`` output) in
place of the pipeline's own (with the pipeline's ``codec_window``). Prints one JSON object last:
per metric the codec round trip beside the constant-per-clip baseline, the ``*_x_better`` ratio
eval_default uses (baseline error over codec error), the RGB figures and the scorer's accuracy
on the walks rendered and coded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.eval_default import (  # noqa: E402
    HELD_OUT, add_scores, add_x_better, mean_rows, score_depth, score_flow, score_segmentation, score_skeleton,
)
from bench.explore import held_out_walk  # noqa: E402
from unity_core.codec import LatentCodec  # noqa: E402
from unity_core.data.synthworld import held_actions, modality_values, render_clip  # noqa: E402
from unity_core.metrics.camera_motion import merge_scores, score_video  # noqa: E402
from unity_core.modalities import decode, encode  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402


@torch.no_grad()
def round_trip(pipe: UnityVideoPipeline, frames: torch.Tensor) -> torch.Tensor:
    """Visualisation frames ``[F, H, W, 3]`` in [0, 1] -> the same after codec encode + decode."""
    video = pipe.prepare_frames(frames, num_frames=frames.shape[0])
    return pipe.decode_latent(pipe.encode_frames(video))


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of two frame stacks in [0, 1]."""
    return float(10 * torch.log10(1 / ((x.float() - y.float()) ** 2).mean().clamp_min(1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--walks", type=int, default=8, help="held-out walks scored before and after the codec")
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--codec", type=Path, default=None, help="a codec folder to measure instead of the pipeline's")
    args = ap.parse_args()
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    if args.codec:
        pipe.codec = LatentCodec.from_pretrained(args.codec, encode_window=pipe.codec.encode_window)
    rows: Dict[str, List[float]] = defaultdict(list)
    start = time.time()
    for i in range(args.clips):
        clip = render_clip(HELD_OUT + i, 17, 64, 64, actions=held_actions(HELD_OUT + i, 17))
        size = clip.rgb.shape[1:3]

        def back(modality: str):
            return decode(modality, round_trip(pipe, encode(modality, modality_values(clip, modality), size=size)))

        rgb = round_trip(pipe, clip.rgb).cpu()
        add_scores(rows, score_depth(back("depth"), clip), score_flow(back("raft"), clip),
                   score_segmentation(back("segmentation"), clip), score_skeleton(back("skeleton"), clip),
                   {"flow_speed_p95": float(clip.flow[clip.flow_valid].norm(dim=-1).quantile(0.95)),
                    "rgb_l1": float((rgb - clip.rgb).abs().mean()), "rgb_psnr_db": psnr(rgb, clip.rgb)})
    rendered, coded = [], []
    for i in range(args.walks):  # bench/explore.py's scored walks
        actions, walk = held_out_walk(i, 8)
        K = walk.intrinsics.numpy()
        back = round_trip(pipe, walk.rgb).cpu()
        rendered.append(score_video(walk.rgb, actions, frames_per_segment=4, K=K))
        coded.append(score_video(back.numpy(), actions, frames_per_segment=4, K=K))
        err = (back - walk.rgb).abs().mean(dim=(1, 2, 3))  # per frame: a codec that drifts past
        rows["walk_rgb_l1_frames_0_16"].append(float(err[:17].mean()))  # its training length
        rows["walk_rgb_l1_frames_17_32"].append(float(err[17:].mean()))  # shows it here
    result = mean_rows(rows)
    add_x_better(result)
    if args.walks:
        for name, scores in (("rendered", rendered), ("coded", coded)):
            merged = merge_scores(scores)
            result[f"walks_{name}"] = {"overall": merged.overall, "movement": merged.movement, "rotation": merged.rotation}
    result.update(clips=args.clips, walks=args.walks, checkpoint=args.checkpoint, codec_window=pipe.codec.encode_window,
                  codec=str(args.codec) if args.codec else "the pipeline's", seconds=round(time.time() - start, 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
