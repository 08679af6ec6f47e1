"""Evaluate a pipeline (default: the embedded model) on held-out synthworld clips.

Estimation: depth AbsRel / delta1, flow EPE, segmentation mIoU, skeleton PCK@0.1, each beside
the best constant-per-clip baseline (an oracle that knows the clip's ground truth and predicts
one constant per clip: the median depth, the mean flow vector, the better of all-background /
all-foreground, each keypoint's mean position). Controllable generation from depth: depth
re-estimated from the generated RGB against the control. Joint generation: generated depth
against depth re-estimated from the generated RGB.

    python bench/eval_default.py [--clips 8] [--steps 20] [--checkpoint default]

Seeds start at 100000 (training used 0..N-1). Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core import metrics  # noqa: E402
from unity_core.data.synthworld import modality_values, render_clip  # noqa: E402
from unity_core.modalities import encode  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402

HELD_OUT = 100000


def depth_from_relative(rel: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Relative depth (0 near, 1 far, in inverse depth) -> metres, using the clip's GT inverse-depth
    range (a per-clip scale-and-shift alignment in disparity)."""
    disp = 1.0 / gt
    hi, lo = disp.max(), disp.min()
    return 1.0 / (hi - rel.clamp(0, 1) * (hi - lo)).clamp_min(1e-6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--checkpoint", default="default")
    args = ap.parse_args()
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    rows = {k: [] for k in ("depth_absrel", "depth_absrel_const", "depth_delta1", "depth_delta1_const", "flow_epe",
                            "flow_epe_const", "seg_miou", "seg_miou_const", "pck", "pck_const", "control_depth_absrel",
                            "joint_depth_absrel")}
    start = time.time()
    for i in range(args.clips):
        clip = render_clip(HELD_OUT + i, 17, 64, 64)
        kw = dict(steps=args.steps, seed=i, prompt=clip.prompt)
        gt = clip.depth
        pred = depth_from_relative(pipe.estimate(clip.rgb, "depth", **kw).values, gt)
        const = torch.full_like(gt, float(gt.median()))
        rows["depth_absrel"].append(metrics.abs_rel(pred, gt)); rows["depth_absrel_const"].append(metrics.abs_rel(const, gt))
        rows["depth_delta1"].append(metrics.delta1(pred, gt)); rows["depth_delta1_const"].append(metrics.delta1(const, gt))
        flow = pipe.estimate(clip.rgb, "raft", **kw).values
        mean_flow = clip.flow[clip.flow_valid].mean(0)
        rows["flow_epe"].append(metrics.epe(flow, clip.flow, clip.flow_valid))
        rows["flow_epe_const"].append(metrics.epe(mean_flow.expand_as(clip.flow), clip.flow, clip.flow_valid))
        seg_gt = modality_values(clip, "segmentation")
        seg = pipe.estimate(clip.rgb, "segmentation", **kw).values
        rows["seg_miou"].append(metrics.miou(seg, seg_gt, 2))
        rows["seg_miou_const"].append(max(metrics.miou(torch.zeros_like(seg_gt), seg_gt, 2), metrics.miou(torch.ones_like(seg_gt), seg_gt, 2)))
        kp = pipe.estimate(clip.rgb, "skeleton", **kw).values
        gt_kp = clip.keypoints[:, :1]  # the decoder returns one person; score the first figure
        rows["pck"].append(metrics.pck(kp, gt_kp))
        vis = gt_kp[..., 2:3] > 0
        mean_kp = (gt_kp * vis).sum(0, keepdim=True) / vis.sum(0, keepdim=True).clamp_min(1)
        rows["pck_const"].append(metrics.pck(mean_kp.expand_as(gt_kp), gt_kp))
        # controllable generation from depth: re-estimate depth from the generated RGB
        control = encode("depth", modality_values(clip, "depth"))
        gen = pipe.control(control, "depth", clip.prompt, steps=args.steps, seed=i)
        re = pipe.estimate(gen.rgb, "depth", **kw).values
        target = modality_values(clip, "depth")
        rows["control_depth_absrel"].append(float(((re - target).abs() / (target + 0.1)).mean()))
        joint = pipe.generate(clip.prompt, "depth", steps=args.steps, seed=i)
        re = pipe.estimate(joint.rgb, "depth", **kw).values
        rows["joint_depth_absrel"].append(float(((re - joint.values).abs() / (joint.values + 0.1)).mean()))
        print(f"clip {i + 1}/{args.clips} done ({time.time() - start:.0f}s)")
    result = {k: round(sum(v) / len(v), 4) for k, v in rows.items() if v}
    result.update(clips=args.clips, steps=args.steps, seconds=round(time.time() - start, 1), checkpoint=args.checkpoint,
                  note="control/joint AbsRel are in relative depth, |a-b|/(b+0.1)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
