"""Evaluation metrics (UniBench-style) for estimation, generation and camera control.

Formulas follow the standard definitions used by the depth (Eigen et al. 2014; MiDaS /
Ranftl et al. 2020 for scale-and-shift alignment), flow (Baker et al. 2011, Middlebury EPE),
segmentation (PASCAL VOC mIoU), pose (PCK, Yang & Ramanan 2013) and video consistency
(temporal warping error, Lai et al. 2018) literature.

Camera control is scored by :mod:`unity_core.metrics.camera_motion` (its own module: OpenCV and
the geometry of the motion fits), which estimates each segment's action from the frames and
counts the matches with :func:`action_accuracy`.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch


def _check_mask(mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A validity mask must be boolean: an integer 0/1 tensor would index, not mask."""
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (e.g. valid > 0 or mask.bool()), got {mask.dtype}")
    return mask


def _masked(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return x[_check_mask(mask)] if mask is not None else x.reshape(-1)


def fit_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Tuple[float, float]:
    """Least-squares scale ``s`` and shift ``b`` minimising ``|s * pred + b - target|^2`` over the
    elements (where ``mask``), in closed form (float64): MiDaS-style alignment of relative depth,
    and Video Depth Anything's alignment of a window to the previous one on their overlap
    (:class:`unity_core.video.windows.Stitcher`). A constant ``pred`` gets ``s = 1`` and the mean
    offset; no elements give ``(1, 0)``."""
    p, q = pred.double().flatten(), target.double().flatten()
    if mask is not None:
        m = _check_mask(mask).flatten()
        p, q = p[m], q[m]
    if p.numel() == 0:
        return 1.0, 0.0
    pm, qm = p.mean(), q.mean()
    var = ((p - pm) ** 2).sum()
    if var <= 1e-12 * max(1, p.numel()):
        return 1.0, float(qm - pm)
    s = ((p - pm) * (q - qm)).sum() / var
    return float(s), float(qm - s * pm)


def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``s * pred + b`` with (s, b) of :func:`fit_scale_shift` over the clip (one pair per clip)."""
    s, b = fit_scale_shift(pred, target, mask)
    return (pred.double() * s + b).to(pred.dtype)


def abs_rel(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None, align: bool = False) -> float:
    """AbsRel = mean(|pred - target| / target) over valid pixels (target > 0); ``align`` first
    applies :func:`align_scale_shift`."""
    valid = target > 0 if mask is None else _check_mask(mask) & (target > 0)
    if align:
        pred = align_scale_shift(pred, target, valid)
    p, t = pred[valid].double(), target[valid].double()
    return float(((p - t).abs() / t).mean())


def delta1(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None, align: bool = False,
           threshold: float = 1.25) -> float:
    """delta < 1.25: fraction of pixels with max(pred / target, target / pred) < 1.25."""
    valid = target > 0 if mask is None else _check_mask(mask) & (target > 0)
    if align:
        pred = align_scale_shift(pred, target, valid)
    p, t = pred[valid].double().clamp_min(1e-9), target[valid].double()
    return float((torch.maximum(p / t, t / p) < threshold).double().mean())


def epe(pred: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """End-point error: mean Euclidean distance between flow vectors ``[..., 2]`` (pixels)."""
    err = (pred.double() - target.double()).norm(dim=-1)
    return float(_masked(err, mask).mean())


def miou(pred: torch.Tensor, target: torch.Tensor, num_classes: Optional[int] = None) -> float:
    """Mean intersection-over-union over the classes present in prediction or target."""
    n = int(num_classes or max(int(pred.max()), int(target.max())) + 1)
    ious = []
    for c in range(n):
        p, t = pred == c, target == c
        union = (p | t).sum()
        if union > 0:
            ious.append(float((p & t).sum()) / float(union))
    return sum(ious) / len(ious)


def pck(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.1) -> float:
    """PCK@alpha for keypoints ``[..., K, 3]`` (x, y, visibility): a visible target keypoint is
    correct when the prediction is within alpha * max(bbox height, width) of the person's
    visible keypoints (the bounding-box normalisation of Yang & Ramanan)."""
    correct = total = 0
    flat_p, flat_t = pred.reshape(-1, pred.shape[-2], 3), target.reshape(-1, target.shape[-2], 3)
    for p, t in zip(flat_p, flat_t):
        vis = t[:, 2] > 0.5
        if vis.sum() < 2:
            continue
        xy = t[vis, :2]
        size = float((xy.max(0).values - xy.min(0).values).max())
        if size <= 0:
            continue
        dist = (p[vis, :2] - xy).norm(dim=-1)
        correct += int((dist <= alpha * size).sum())
        total += int(vis.sum())
    return correct / total if total else float("nan")


def warping_error(frames: torch.Tensor, flow: torch.Tensor, mask: Optional[torch.Tensor] = None) -> float:
    """Temporal warping error: mean |frame_t - warp(frame_{t+1}, flow_t)| over valid pixels,
    frames ``[F, H, W, C]``, flow ``[F, H, W, 2]`` (frame t -> t+1); the last frame is skipped."""
    from unity_core.preprocess.optical_flow import warp_backward

    warped = warp_backward(frames[1:], flow[:-1])
    err = (warped - frames[:-1]).abs().mean(-1)
    return float(_masked(err, None if mask is None else mask[:-1]).mean())


def action_accuracy(predicted: Sequence[Tuple[str, str]], commanded: Sequence[Tuple[str, str]]) -> Dict[str, float]:
    """Camera-action accuracy: the share of segments whose (movement, rotation) keys match,
    with movement-only and rotation-only shares."""
    if len(predicted) != len(commanded) or not commanded:
        raise ValueError(f"need equally many predicted and commanded actions, got {len(predicted)} and {len(commanded)}")
    n = len(commanded)
    move = sum(p[0] == c[0] for p, c in zip(predicted, commanded)) / n
    rot = sum(p[1] == c[1] for p, c in zip(predicted, commanded)) / n
    both = sum(tuple(p) == tuple(c) for p, c in zip(predicted, commanded)) / n
    return {"overall": both, "movement": move, "rotation": rot}


__all__ = ["abs_rel", "action_accuracy", "align_scale_shift", "delta1", "epe", "fit_scale_shift", "miou", "pck", "warping_error"]
