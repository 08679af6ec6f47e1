"""Evaluate a pipeline (default: the embedded model) on held-out synthworld clips.

Estimation: depth AbsRel / delta1, flow EPE, segmentation mIoU, skeleton PCK@0.1, each beside
the best constant-per-clip baseline (an oracle that knows the clip's ground truth and predicts
one constant per clip: the median depth, the mean flow vector, the better of all-background /
all-foreground, each keypoint's mean position). Controllable generation from depth: depth
re-estimated from the generated RGB against the control (with the pipeline's control guidance,
or ``--control-cfg``). Joint generation: generated depth against depth re-estimated from the
generated RGB.

    python bench/eval_default.py [--clips 8] [--steps 20] [--checkpoint default] [--depth-only]
                                 [--control-cfg G]

"x better than the baseline" is the baseline's error over the model's, with errors AbsRel,
1 - delta1, EPE, 1 - mIoU and 1 - PCK. Control and joint agreement come beside mismatched pairs
(the mean over every other clip's control / generated depth), which shows what chance agreement
is, and the share of clips whose own target is the closest of all ("top-1").
``--depth-only`` scores depth estimation alone (for single-task models).

Seeds start at 100000 (training used 0..N-1); each clip holds one camera action, as training's. Prints one JSON object last.
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

from unity_core import metrics  # noqa: E402
from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402
from unity_core.data.synthworld import held_actions, modality_values, render_clip  # noqa: E402
from unity_core.modalities import encode  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402

HELD_OUT = 100000


def depth_from_relative(rel: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Relative depth (0 near, 1 far, in inverse depth) -> metres, using the clip's GT inverse-depth
    range (a per-clip scale-and-shift alignment in disparity)."""
    disp = 1.0 / gt
    hi, lo = disp.max(), disp.min()
    return 1.0 / (hi - rel.clamp(0, 1) * (hi - lo)).clamp_min(1e-6)


def relative_absrel(pred: torch.Tensor, target: torch.Tensor) -> float:
    """AbsRel between two relative-depth maps in [0, 1]: mean |pred - target| / (target + 0.1)
    (the 0.1 keeps near pixels, where relative depth is 0, from dividing by zero)."""
    return float(((pred - target).abs() / (target + 0.1)).mean())


def score_depth(rel: torch.Tensor, clip) -> Dict[str, float]:
    """Depth AbsRel / delta1 of relative depth ``[F, H, W]`` (0 near, 1 far) against the clip's
    metric depth, beside the constant (median depth) baseline."""
    gt = clip.depth
    pred, const = depth_from_relative(rel, gt), torch.full_like(gt, float(gt.median()))
    return {"depth_absrel": metrics.abs_rel(pred, gt), "depth_absrel_const": metrics.abs_rel(const, gt),
            "depth_delta1": metrics.delta1(pred, gt), "depth_delta1_const": metrics.delta1(const, gt)}


def score_flow(flow: torch.Tensor, clip) -> Dict[str, float]:
    """EPE of flow ``[F, H, W, 2]`` (pixels) beside the constant (mean flow vector) baseline."""
    mean_flow = clip.flow[clip.flow_valid].mean(0)
    return {"flow_epe": metrics.epe(flow, clip.flow, clip.flow_valid),
            "flow_epe_const": metrics.epe(mean_flow.expand_as(clip.flow), clip.flow, clip.flow_valid)}


def score_segmentation(seg: torch.Tensor, clip) -> Dict[str, float]:
    """Foreground mIoU of labels ``[F, H, W]`` beside the better of all-background / all-foreground."""
    gt = modality_values(clip, "segmentation")
    const = max(metrics.miou(torch.zeros_like(gt), gt, 2), metrics.miou(torch.ones_like(gt), gt, 2))
    return {"seg_miou": metrics.miou(seg, gt, 2), "seg_miou_const": const}


def score_skeleton(keypoints: torch.Tensor, clip) -> Dict[str, float]:
    """PCK@0.1 of keypoints ``[F, 1, 18, 3]`` against the clip's first figure (the decoder returns
    one person), beside each keypoint's mean position."""
    gt = clip.keypoints[:, :1]
    vis = gt[..., 2:3] > 0
    mean_kp = (gt * vis).sum(0, keepdim=True) / vis.sum(0, keepdim=True).clamp_min(1)
    return {"pck": metrics.pck(keypoints, gt), "pck_const": metrics.pck(mean_kp.expand_as(gt), gt)}


def add_x_better(result: Dict[str, float]) -> None:
    """Add ``<metric>_x_better`` = baseline error / error for each scored metric in ``result``
    (errors: AbsRel, 1 - delta1, EPE, 1 - mIoU, 1 - PCK)."""
    errors = {"depth_absrel": lambda v: v, "depth_delta1": lambda v: 1 - v, "flow_epe": lambda v: v,
              "seg_miou": lambda v: 1 - v, "pck": lambda v: 1 - v}
    for k, err in errors.items():
        if k in result:
            result[f"{k}_x_better"] = round(err(result[f"{k}_const"]) / max(err(result[k]), 1e-6), 2)


def add_scores(rows: Dict[str, List[float]], *scores: Dict[str, float]) -> None:
    """Append each per-clip score to its row in ``rows`` (a ``defaultdict(list)``)."""
    for score in scores:
        for k, v in score.items():
            rows[k].append(v)


def mean_rows(rows: Dict[str, List[float]]) -> Dict[str, float]:
    """Per-key means (4 decimals) of per-clip rows, in insertion order."""
    return {k: round(sum(v) / len(v), 4) for k, v in rows.items() if v}


def agreement(pairs, i: int, name: str) -> Dict[str, float]:
    """Relative-depth AbsRel of clip ``i``'s re-estimated depth against its own target, the mean
    against every other clip's target (chance), and whether its own target is the closest.

    Args:
        pairs: per clip ``(target, re_estimated)`` relative depth ``[F, H, W]`` in [0, 1].
        i: the clip; name: the key prefix (``control`` / ``joint``).
    """
    target, estimate = pairs[i][0], pairs[i][1]
    own = relative_absrel(estimate, target)
    others = [relative_absrel(estimate, t) for j, (t, _) in enumerate(pairs) if j != i]
    return {f"{name}_depth_absrel": own, f"{name}_depth_absrel_mismatched": sum(others) / max(len(others), 1),
            f"{name}_top1": float(bool(others) and own < min(others))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--depth-only", action="store_true", help="depth estimation only (single-task models)")
    ap.add_argument("--control-cfg", type=float, default=None,
                    help="control guidance for the control task (default: the pipeline's, see pipeline.json)")
    args = ap.parse_args()
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    rows: Dict[str, List[float]] = defaultdict(list)
    controls, generated = [], []
    start = time.time()
    for i in range(args.clips):
        clip = render_clip(HELD_OUT + i, 17, 64, 64, actions=held_actions(HELD_OUT + i, 17))
        kw = dict(steps=args.steps, seed=i, prompt=clip.prompt)
        add_scores(rows, score_depth(pipe.estimate(clip.rgb, "depth", **kw).values, clip))
        if args.depth_only:
            print(f"clip {i + 1}/{args.clips} done ({time.time() - start:.0f}s)")
            continue
        add_scores(rows, score_flow(pipe.estimate(clip.rgb, "raft", **kw).values, clip),
                   score_segmentation(pipe.estimate(clip.rgb, "segmentation", **kw).values, clip),
                   score_skeleton(pipe.estimate(clip.rgb, "skeleton", **kw).values, clip))
        # controllable generation from depth: re-estimate depth from the generated RGB
        control = encode("depth", modality_values(clip, "depth"))
        ctl_kw = {} if args.control_cfg is None else {"control_cfg": args.control_cfg}
        gen = pipe.control(control, "depth", clip.prompt, steps=args.steps, seed=i, **ctl_kw)
        re = pipe.estimate(gen.rgb, "depth", **kw).values
        target = modality_values(clip, "depth")
        controls.append((target, re))
        joint = pipe.generate(clip.prompt, "depth", steps=args.steps, seed=i)
        re = pipe.estimate(joint.rgb, "depth", **kw).values
        generated.append((joint.values, re))
        print(f"clip {i + 1}/{args.clips} done ({time.time() - start:.0f}s)")
    for name, pairs in (("control", controls), ("joint", generated)):
        add_scores(rows, *(agreement(pairs, i, name) for i in range(len(pairs))))
    result = mean_rows(rows)
    add_x_better(result)
    result.update(clips=args.clips, steps=args.steps, seconds=round(time.time() - start, 1), checkpoint=args.checkpoint,
                  control_cfg=args.control_cfg if args.control_cfg is not None else pipe.defaults.get("control_cfg", 1.0),
                  note="control/joint AbsRel are in relative depth, |a-b|/(b+0.1)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
