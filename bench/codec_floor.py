"""How far the latent codec alone limits each estimation metric (the "codec floor").

Ground-truth modality values of held-out synthworld clips are drawn as UnityVideo visualisations,
passed through the codec (encode, decode) and turned back into values, then scored as
``bench/eval_default.py`` scores the model. A model that predicted the latent of the true
visualisation exactly would score this, so no model on this codec can do better.

    python bench/codec_floor.py [--clips 8] [--checkpoint default]

Prints one JSON object last: per metric the codec round trip beside the constant-per-clip
baseline, and the ``*_x_better`` ratio eval_default uses (baseline error over codec error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.eval_default import HELD_OUT, depth_from_relative  # noqa: E402
from unity_core import metrics  # noqa: E402
from unity_core.data.synthworld import held_actions, modality_values, render_clip  # noqa: E402
from unity_core.modalities import decode, encode  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402


@torch.no_grad()
def round_trip(pipe: UnityVideoPipeline, frames: torch.Tensor) -> torch.Tensor:
    """Visualisation frames ``[F, H, W, 3]`` in [0, 1] -> the same after codec encode + decode."""
    video = pipe.prepare_frames(frames)
    return pipe.decode_latent(pipe.encode_frames(video))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--checkpoint", default="default")
    args = ap.parse_args()
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    rows = {k: [] for k in ("depth_absrel", "depth_absrel_const", "depth_delta1", "depth_delta1_const", "flow_epe",
                            "flow_epe_const", "seg_miou", "seg_miou_const", "pck", "pck_const", "flow_speed_p95")}
    start = time.time()
    for i in range(args.clips):
        clip = render_clip(HELD_OUT + i, 17, 64, 64, actions=held_actions(HELD_OUT + i, 17))
        size = clip.rgb.shape[1:3]

        def back(modality: str):
            return decode(modality, round_trip(pipe, encode(modality, modality_values(clip, modality), size=size)))

        gt = clip.depth
        pred = depth_from_relative(back("depth"), gt)
        const = torch.full_like(gt, float(gt.median()))
        rows["depth_absrel"].append(metrics.abs_rel(pred, gt)); rows["depth_absrel_const"].append(metrics.abs_rel(const, gt))
        rows["depth_delta1"].append(metrics.delta1(pred, gt)); rows["depth_delta1_const"].append(metrics.delta1(const, gt))
        mean_flow = clip.flow[clip.flow_valid].mean(0)
        rows["flow_epe"].append(metrics.epe(back("raft"), clip.flow, clip.flow_valid))
        rows["flow_epe_const"].append(metrics.epe(mean_flow.expand_as(clip.flow), clip.flow, clip.flow_valid))
        rows["flow_speed_p95"].append(float(clip.flow[clip.flow_valid].norm(dim=-1).quantile(0.95)))
        seg_gt = modality_values(clip, "segmentation")
        rows["seg_miou"].append(metrics.miou(back("segmentation"), seg_gt, 2))
        rows["seg_miou_const"].append(max(metrics.miou(torch.zeros_like(seg_gt), seg_gt, 2),
                                          metrics.miou(torch.ones_like(seg_gt), seg_gt, 2)))
        gt_kp = clip.keypoints[:, :1]
        rows["pck"].append(metrics.pck(back("skeleton"), gt_kp))
        vis = gt_kp[..., 2:3] > 0
        mean_kp = (gt_kp * vis).sum(0, keepdim=True) / vis.sum(0, keepdim=True).clamp_min(1)
        rows["pck_const"].append(metrics.pck(mean_kp.expand_as(gt_kp), gt_kp))
    result = {k: round(sum(v) / len(v), 4) for k, v in rows.items()}
    errors = {"depth_absrel": lambda v: v, "depth_delta1": lambda v: 1 - v, "flow_epe": lambda v: v,
              "seg_miou": lambda v: 1 - v, "pck": lambda v: 1 - v}
    for k, err in errors.items():
        result[f"{k}_x_better"] = round(err(result[f"{k}_const"]) / max(err(result[k]), 1e-6), 2)
    result.update(clips=args.clips, checkpoint=args.checkpoint, seconds=round(time.time() - start, 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
