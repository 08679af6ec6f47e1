"""Automatic instruction-following score for camera control: estimate the camera motion of
each segment of a video, quantise it into Yume's action set and compare it with the command.

Yume judged instruction following by people (its camera-pose estimators were too inaccurate);
here it is measured. Per segment (frames ``s * n`` to ``(s + 1) * n``):

1. **Tracks**: points on a regular grid are followed frame by frame with OpenCV's DIS optical
   flow (forward and backward; points whose round trip misses by more than
   ``fb_threshold`` pixels, that leave the image or sit on flat texture are dropped). Chaining
   small frame-to-frame motions is far more reliable than one flow over the whole segment.
   Each track carries the structure tensor of its start patch (its "information"): on an edge,
   such as a row of bricks, only the motion across the edge is measured (the aperture problem),
   so every residual below is a Mahalanobis distance in that metric, and a track along an edge
   only counts across it.
2. **Rotation first**: a pure rotation maps bearing vectors by R (a homography K R K^-1 in
   pixels); R is fitted robustly (2-point RANSAC + Kabsch, then a robust Levenberg-Marquardt
   refinement of the reprojection error). Rotation dominates small translations, so it is the
   model tried first.
3. **Translation**: monocular translation is only known up to scale, so whether the camera
   moved is decided from parallax: the rotation-only fit leaves residuals where depth varies,
   the essential-matrix fit (OpenCV RANSAC + ``recoverPose`` as one start, then a robust
   Levenberg-Marquardt refinement of the Sampson error) does not, and its residual measures the
   flow noise. The direction of travel is kept in the first camera's x-z plane, as Yume's
   movement keys never move the camera up or down. When the rotation-only residual exceeds
   ``parallax_ratio`` (3) times the epipolar one plus ``min_parallax`` (0.005 rad; 75th
   percentiles), the camera translated: rotation and translation direction come from the
   essential fit (direction sign by cheirality). Otherwise movement is "·" and rotation comes
   from the rotation-only fit.
4. **Quantisation**: :func:`~unity_core.explore.actions.rotation_key_from_angles` with
   ``min_rotation`` (radians per segment) and
   :func:`~unity_core.explore.actions.movement_key_from_direction` on the unit direction.

Conventions (as :mod:`unity_core.explore.actions`): camera x right, y down, z forward; yaw > 0
turns right, pitch > 0 tilts up. Intrinsics K map camera coordinates to pixel coordinates in
which the image spans [0, W] x [0, H] (pixel centres at +0.5), as synthworld's.

The defaults were calibrated on synthworld clips at 64 x 64 (segment motion 0.48 m and 10
degrees; seeds 7001-7016: 0.78 of the segments right, rotation 0.98, with DIS tracks; 0.96
with synthworld's exact flow); ``bench/explore.py`` and the tests report the accuracy on held-out
seeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from unity_core.explore.actions import NONE_KEY, CameraAction, movement_key_from_direction, rotation_key_from_angles


@dataclass
class SegmentMotion:
    """Estimated camera motion between two frames.

    Attributes:
        yaw, pitch: camera rotation in radians (yaw > 0 turns right, pitch > 0 tilts up).
        direction: unit translation direction (x, y, z) in the first camera's frame, zeros when
            no translation was detected.
        translating: whether parallax showed a translation.
        parallax: rotation-only minus epipolar residual (75th percentiles), for information.
        points: tracked points used.
        movement, rotation: the quantised keys.
        rotation_residual, epipolar_residual: 75th percentiles of the rotation-only and the
            essential-matrix fits' residuals, in normalised image units (about radians) measured
            in the tracks' information metric.
    """

    yaw: float
    pitch: float
    direction: Tuple[float, float, float]
    translating: bool
    parallax: float
    points: int
    movement: str
    rotation: str
    rotation_residual: float = 0.0
    epipolar_residual: float = 0.0

    @property
    def action(self) -> CameraAction:
        return CameraAction(self.movement, self.rotation)


def default_intrinsics(height: int, width: int, fov_degrees: float = 60.0) -> np.ndarray:
    """Pinhole K ``[3, 3]`` with the given horizontal field of view, principal point at the
    image centre (synthworld's camera)."""
    f = width / (2 * math.tan(math.radians(fov_degrees) / 2))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def _to_numpy_frames(frames) -> np.ndarray:
    from unity_core.io.video import check_unit_frames

    return check_unit_frames(frames).float().numpy()  # 0-255 frames would track nothing


def _gray(frame: np.ndarray, scale: int) -> np.ndarray:
    g = cv2.cvtColor(np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1 else g


def _sample(flow: np.ndarray, pts: np.ndarray) -> np.ndarray:
    x = pts[:, 0].astype(np.float32).reshape(-1, 1)
    y = pts[:, 1].astype(np.float32).reshape(-1, 1)
    return cv2.remap(flow, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 2)


def track_points(frames, start: int, end: int, scale: int = 2, step: int = 2, fb_threshold: float = 0.25,
                 min_gradient: float = 2.0, aperture_floor: float = 0.05
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points tracked from frame ``start`` to ``end`` by chained DIS flow.

    Args:
        frames: ``[F, H, W, 3]`` in [0, 1] (numpy or torch).
        scale: frames are upsampled by this factor before the flow (helps DIS on small frames).
        step: grid spacing in upsampled pixels.
        fb_threshold: forward-backward tolerance per frame pair, in original pixels.
        min_gradient: minimum grey-level gradient (0-255 scale) at the start point.
        aperture_floor: smallest eigenvalue of the normalised information (see Returns).

    Returns:
        (points at ``start``, points at ``end``, information): points ``[N, 2]`` (x, y) in
        original pixel coordinates where the image spans [0, W] x [0, H]; information
        ``[N, 2, 2]``, the structure tensor at the start point over DIS's patch, scaled to
        trace 2 and floored at ``aperture_floor``: about the identity on corner-like texture,
        close to rank 1 on an edge, where only the motion across the edge is measured (the
        aperture problem; synthworld's brick walls are such edges).
    """
    frames = _to_numpy_frames(frames)
    if not 0 <= start < end < len(frames):
        raise ValueError(f"need 0 <= start < end < {len(frames)} frames, got start={start}, end={end}")
    h, w = frames.shape[1:3]
    hs, ws = h * scale, w * scale
    ys, xs = np.mgrid[step // 2:hs:step, step // 2:ws:step]
    p0 = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32)
    p = p0.copy()
    ok = np.ones(len(p), bool)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    prev = _gray(frames[start], scale)
    g0 = prev.astype(np.float32)
    for k in range(start, end):
        nxt = _gray(frames[k + 1], scale)
        fwd = dis.calc(prev, nxt, None)
        bwd = dis.calc(nxt, prev, None)
        d = _sample(fwd, p)
        q = p + d
        ok &= np.linalg.norm(d + _sample(bwd, q), axis=1) < fb_threshold * scale
        ok &= (q[:, 0] >= 0) & (q[:, 0] <= ws - 1) & (q[:, 1] >= 0) & (q[:, 1] <= hs - 1)
        p, prev = q, nxt
    gx, gy = cv2.Sobel(g0, cv2.CV_32F, 1, 0), cv2.Sobel(g0, cv2.CV_32F, 0, 1)
    grad = np.hypot(gx, gy) / scale
    iy, ix = p0[:, 1].astype(int), p0[:, 0].astype(int)
    ok &= grad[iy, ix] > min_gradient
    sigma = 4.0  # half of DIS medium's 8-pixel patch (upsampled pixels)
    st = [cv2.GaussianBlur(a, (0, 0), sigma)[iy, ix] for a in (gx * gx, gx * gy, gy * gy)]
    info = np.stack([np.stack([st[0], st[1]], -1), np.stack([st[1], st[2]], -1)], -2).astype(np.float64)
    info = info / np.maximum(np.trace(info, axis1=1, axis2=2), 1e-9)[:, None, None] * 2.0
    w, v = np.linalg.eigh(info)
    info = np.einsum("nij,nj,nkj->nik", v, np.maximum(w, aperture_floor), v)
    # upsampled pixel index i covers original [i / scale, (i + 1) / scale): centre (i + 0.5) / scale
    return (p0[ok] + 0.5) / scale, (p[ok] + 0.5) / scale, info[ok]


def tracks_from_flow(flow, start: int, end: int, valid=None, step: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Grid points carried from frame ``start`` to ``end`` by given optical flow (e.g.
    synthworld's exact flow, or flow estimated by UnityVideo or RAFT).

    Args:
        flow: ``[F, H, W, 2]`` pixels (u right, v down), frame i = flow i -> i+1.
        valid: optional ``[F, H, W]`` bool, where the flow is trustworthy.

    Returns:
        (points at ``start``, points at ``end``) ``[N, 2]``, coordinates as :func:`track_points`.
    """
    if isinstance(flow, torch.Tensor):
        flow = flow.detach().cpu().float().numpy()
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be [F, H, W, 2], got shape {flow.shape}")
    if valid is not None:
        valid = valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)
    if not 0 <= start < end <= len(flow):
        raise ValueError(f"need 0 <= start < end <= {len(flow)} flow frames, got start={start}, end={end}")
    h, w = flow.shape[1:3]
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    p0 = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32)  # pixel indices (centres at +0.5)
    p = p0.copy()
    ok = np.ones(len(p), bool)
    for k in range(start, end):
        if valid is not None:
            q = np.clip(np.round(p).astype(int), 0, [w - 1, h - 1])
            ok &= valid[k][q[:, 1], q[:, 0]].astype(bool)
        p = p + _sample(np.ascontiguousarray(flow[k]), p)
        ok &= (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
    return p0[ok] + 0.5, p[ok] + 0.5


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------


def _bearings(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    h = np.c_[points, np.ones(len(points))] @ np.linalg.inv(K).T
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def _kabsch(b1: np.ndarray, b2: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """R minimising sum w |b2 - R b1|^2."""
    m = (b2 * (weights[:, None] if weights is not None else 1.0)).T @ b1
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _angle_error(b1: np.ndarray, b2: np.ndarray, R: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((b2 * (b1 @ R.T)).sum(1), -1.0, 1.0))


def fit_rotation(b1: np.ndarray, b2: np.ndarray, inlier_angle: float, rng: np.random.Generator,
                 iterations: int = 200) -> Tuple[np.ndarray, np.ndarray]:
    """Robust pure-rotation fit b2 ~ R b1 (bearings ``[N, 3]``): 2-point RANSAC, then Kabsch
    reweighted with a Cauchy weight of scale ``inlier_angle``. Returns (R, angular residuals)."""
    n = len(b1)
    best = np.ones(n, bool)
    best_count = -1
    for _ in range(iterations):
        idx = rng.choice(n, 2, replace=False)
        R = _kabsch(b1[idx], b2[idx])
        inl = _angle_error(b1, b2, R) < inlier_angle
        if inl.sum() > best_count:
            best, best_count = inl, int(inl.sum())
    R = _kabsch(b1[best], b2[best])
    for _ in range(5):
        e = _angle_error(b1, b2, R)
        R = _kabsch(b1, b2, 1.0 / (1.0 + (e / inlier_angle) ** 2))
    return R, _angle_error(b1, b2, R)


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def _planar_direction(th: float) -> np.ndarray:
    """Unit direction at heading ``th`` (radians, 0 = forward, > 0 = right) in the camera's x-z
    plane: Yume's movement keys never move the camera up or down."""
    return np.array([math.sin(th), 0.0, math.cos(th)])


def _sampson(params: np.ndarray, x1: np.ndarray, x2: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Sampson distances ``[N, 1]`` (normalised image units) of x2^T [t]x R x1 = 0 with params =
    (rotvec of R, heading th of the camera centre c in frame 1) and t = -R c; ``cov``
    ``[N, 2, 2]`` is each point's position covariance (the identity gives the classical Sampson
    distance)."""
    R, _ = cv2.Rodrigues(params[:3].reshape(3, 1))
    E = _skew(-R @ _planar_direction(params[3])) @ R
    a = (x1 @ E.T)[:, :2]
    b = (x2 @ E)[:, :2]
    num = (x2 * (x1 @ E.T)).sum(1)
    den = np.einsum("ni,nij,nj->n", a, cov, a) + np.einsum("ni,nij,nj->n", b, cov, b)
    return (num / np.sqrt(den + 1e-18))[:, None]


def _rotation_residuals(rotvec: np.ndarray, x1: np.ndarray, x2: np.ndarray, root: np.ndarray) -> np.ndarray:
    """Reprojection errors ``[N, 2]`` of x2 ~ R x1 (normalised image units), whitened by ``root``
    (``[N, 2, 2]``, root root^T = information)."""
    R, _ = cv2.Rodrigues(rotvec.reshape(3, 1))
    y = x1 @ R.T
    d = y[:, :2] / y[:, 2:3] - x2[:, :2]
    return np.einsum("nji,nj->ni", root, d)


def _refine(residuals: Callable[[np.ndarray], np.ndarray], params: np.ndarray, scale: float, iterations: int = 15):
    """Robust (Cauchy on each point's residual norm, IRLS) Levenberg-Marquardt of
    ``residuals(params) -> [N, k]``; returns (params, cost)."""
    def cost(p):
        r = residuals(p)
        return float(np.sum(np.log1p((r * r).sum(1) / scale ** 2))), r

    c, r = cost(params)
    lam = 1e-3
    for _ in range(iterations):
        w = np.repeat(1.0 / (1.0 + (r * r).sum(1) / scale ** 2), r.shape[1])
        J = np.empty((r.size, len(params)))
        for j in range(len(params)):
            dp = np.zeros(len(params))
            dp[j] = 1e-6
            J[:, j] = (residuals(params + dp) - r).ravel() / 1e-6
        A = J.T @ (J * w[:, None])
        g = J.T @ (w * r.ravel())
        while True:
            step = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), -g)
            c_new, r_new = cost(params + step)
            if c_new < c:
                params, c, r, lam = params + step, c_new, r_new, lam * 0.3
                break
            lam *= 10
            if lam > 1e8:
                return params, c
    return params, c


def _cheirality_sign(R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> float:
    """+1 or -1: the sign of t that puts more triangulated points in front of both cameras
    (x2 ~ R x1 + t)."""
    a = x1 @ R.T
    # depths (z1, z2) from z2 x2 = z1 R x1 + t, least squares per point (closed form 2x2)
    aa = (a * a).sum(1)
    bb = (x2 * x2).sum(1)
    ab = (a * x2).sum(1)
    det = aa * bb - ab * ab + 1e-18
    at = a @ t
    bt = x2 @ t
    z1 = (-bb * at + ab * bt) / det
    z2 = (ab * at - aa * bt) / det * -1.0
    front = ((z1 > 0) & (z2 > 0)).sum()
    back = ((z1 < 0) & (z2 < 0)).sum()
    return 1.0 if front >= back else -1.0


def estimate_motion(p1: np.ndarray, p2: np.ndarray, K: np.ndarray, information: Optional[np.ndarray] = None, *,
                    min_parallax: float = 0.005, parallax_ratio: float = 3.0,
                    min_rotation: float = math.radians(4.0), seed: int = 0) -> SegmentMotion:
    """Camera motion from point correspondences (see the module docstring).

    Args:
        p1, p2: ``[N, 2]`` pixel coordinates in the first and second frame (N >= 8).
        K: ``[3, 3]`` intrinsics.
        information: ``[N, 2, 2]`` how well each track is measured in each image direction (from
            :func:`track_points`; None: equally well everywhere). Residuals are measured in its
            metric, so tracks on edges only count across the edge.
        min_parallax, parallax_ratio: the camera is taken to translate when the rotation-only
            residual exceeds ``parallax_ratio`` times the epipolar residual (the flow noise)
            plus ``min_parallax`` (radians; 75th percentiles of both).
        min_rotation: yaw / pitch magnitude (radians) that counts as a rotation key.
        seed: RANSAC seed (results are deterministic).

    Raises:
        ValueError: fewer than 8 correspondences.
    """
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    if len(p1) < 8:
        raise ValueError(f"need at least 8 tracked points to estimate camera motion, got {len(p1)}")
    K = np.asarray(K, np.float64)
    f = float(K[0, 0])
    rng = np.random.default_rng(seed)
    b1, b2 = _bearings(p1, K), _bearings(p2, K)
    R_rot, _ = fit_rotation(b1, b2, 1.5 / f, rng)

    x1 = np.c_[p1, np.ones(len(p1))] @ np.linalg.inv(K).T
    x2 = np.c_[p2, np.ones(len(p2))] @ np.linalg.inv(K).T
    info = np.broadcast_to(np.eye(2), (len(p1), 2, 2)) if information is None else np.asarray(information, np.float64)
    if info.shape != (len(p1), 2, 2):
        raise ValueError(f"information must be [N, 2, 2] = [{len(p1)}, 2, 2], got {info.shape}")
    root, cov = np.linalg.cholesky(info), np.linalg.inv(info)
    scale = 0.5 / f
    rv_rot, _ = _refine(lambda p: _rotation_residuals(p, x1, x2, root), cv2.Rodrigues(R_rot)[0].ravel(), scale)
    R_rot = cv2.Rodrigues(rv_rot.reshape(3, 1))[0]
    err_rot = np.linalg.norm(_rotation_residuals(rv_rot, x1, x2, root), axis=1)
    starts = [np.r_[rv_rot, th] for th in np.linspace(-math.pi, math.pi, 8, endpoint=False)]
    cv2.setRNGSeed(seed)
    try:  # OpenCV's five-point start; OpenCV 5 raises on degenerate (e.g. pure rotation) samples
        E, _ = cv2.findEssentialMat(p1, p2, K, cv2.RANSAC, 0.999, 0.3)
    except cv2.error:
        E = None
    if E is not None and E.shape[0] >= 3:
        _, Re, te, _ = cv2.recoverPose(E[:3], p1, p2, K)
        ce = -Re.T @ te.ravel()
        starts.insert(0, np.r_[cv2.Rodrigues(Re)[0].ravel(), math.atan2(ce[0], ce[2])])
    best, best_cost = None, math.inf
    for start in starts:
        params, cost = _refine(lambda p: _sampson(p, x1, x2, cov), start, scale)
        if cost < best_cost:
            best, best_cost = params, cost
    err_epi = np.abs(_sampson(best, x1, x2, cov)[:, 0])
    # compare on the points the epipolar model explains, so independently moving objects
    # (outliers of both models) do not pose as parallax
    common = err_epi < 3.0 * np.median(err_epi) + 0.5 / f
    if common.sum() < 8:
        common = np.ones(len(err_epi), bool)
    res_rot, res_epi = float(np.percentile(err_rot[common], 75)), float(np.percentile(err_epi[common], 75))
    parallax = res_rot - res_epi
    translating = res_rot > parallax_ratio * res_epi + min_parallax
    if translating:
        R, _ = cv2.Rodrigues(best[:3].reshape(3, 1))
        c = _planar_direction(best[3])
        direction = c * _cheirality_sign(R, -R @ c, x1, x2)  # camera centre of frame 2 in frame 1
        R_cam = R.T
    else:
        R_cam = R_rot.T
        direction = np.zeros(3)
    rv = cv2.Rodrigues(R_cam)[0].ravel()
    yaw, pitch = float(rv[1]), float(rv[0])
    movement = movement_key_from_direction(float(direction[0]), float(direction[2])) if translating else NONE_KEY
    rotation = rotation_key_from_angles(yaw, pitch, min_rotation)
    return SegmentMotion(yaw, pitch, tuple(float(v) for v in direction), translating, parallax, len(p1), movement,
                         rotation, res_rot, res_epi)


# ----------------------------------------------------------------------------------------------
# Scoring a video
# ----------------------------------------------------------------------------------------------


@dataclass
class InstructionScore:
    """Instruction following of one or more videos.

    Attributes:
        overall: share of segments whose (movement, rotation) both match the command.
        movement, rotation: share of segments whose movement / rotation key matches.
        per_movement, per_rotation: for each commanded key, the share of its segments whose
            key matched (and its count in ``counts``).
        predicted, commanded: the keys per segment.
        motions: the raw estimates (None where too few points could be tracked).
    """

    overall: float
    movement: float
    rotation: float
    per_movement: Dict[str, float]
    per_rotation: Dict[str, float]
    counts: Dict[str, int]
    predicted: List[Tuple[str, str]]
    commanded: List[Tuple[str, str]]
    motions: List[Optional[SegmentMotion]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"overall": self.overall, "movement": self.movement, "rotation": self.rotation,
                "per_movement": self.per_movement, "per_rotation": self.per_rotation, "counts": self.counts,
                "segments": len(self.commanded), "untracked": sum(m is None for m in self.motions)}


def estimate_segments(frames, num_segments: int, frames_per_segment: int = 4, first_frame: int = 0,
                      K: Optional[np.ndarray] = None, flow=None, flow_valid=None,
                      **kwargs) -> List[Optional[SegmentMotion]]:
    """Motion of each segment ``[first + s * n, first + (s + 1) * n]`` of a video.

    Args:
        frames: ``[F, H, W, 3]`` in [0, 1].
        K: intrinsics (default: 60 degree horizontal field of view, :func:`default_intrinsics`).
        flow, flow_valid: optional given flow ``[F', H, W, 2]`` (frame i = i -> i+1) and its
            validity, used instead of DIS tracking (:func:`tracks_from_flow`).
        kwargs: ``scale``, ``step``, ``fb_threshold``, ``aperture_floor``, ``min_gradient`` for
            :func:`track_points` (not with ``flow``); the rest (``min_parallax``,
            ``min_rotation``, ...) for :func:`estimate_motion`.

    Returns:
        one :class:`SegmentMotion` per segment (None where fewer than 8 points were tracked).

    Raises:
        ValueError: the video is too short for the segments, frames not in [0, 1], or tracking
            settings given with ``flow``.
    """
    frames = _to_numpy_frames(frames)
    need = first_frame + num_segments * frames_per_segment + 1
    if len(frames) < need:
        raise ValueError(f"{num_segments} segments of {frames_per_segment} frames from frame {first_frame} need "
                         f"{need} frames, the video has {len(frames)}")
    K = default_intrinsics(*frames.shape[1:3]) if K is None else np.asarray(K, np.float64)
    track_kw = {k: kwargs.pop(k) for k in ("scale", "fb_threshold", "step", "aperture_floor", "min_gradient")
                if k in kwargs}
    if flow is not None and track_kw:
        raise ValueError(f"{sorted(track_kw)} set DIS tracking, which a given flow replaces; drop them or flow=")
    out: List[Optional[SegmentMotion]] = []
    for s in range(num_segments):
        a = first_frame + s * frames_per_segment
        if flow is not None:
            p1, p2 = tracks_from_flow(flow, a, a + frames_per_segment, flow_valid)
            info = None
        else:
            p1, p2, info = track_points(frames, a, a + frames_per_segment, **track_kw)
        out.append(estimate_motion(p1, p2, K, info, seed=s, **kwargs) if len(p1) >= 8 else None)
    return out


def compare_actions(predicted: Sequence[Tuple[str, str]], commanded: Sequence[CameraAction],
                    motions: Optional[List[Optional[SegmentMotion]]] = None) -> InstructionScore:
    """Accuracy overall, per component and per commanded key.

    Raises:
        ValueError: different numbers of predicted and commanded segments, or none.
    """
    from unity_core.metrics import action_accuracy

    cmd = [(a.movement, a.rotation) for a in commanded]
    acc = action_accuracy(list(predicted), cmd)
    hits: Dict[str, List[bool]] = defaultdict(list)
    rhits: Dict[str, List[bool]] = defaultdict(list)
    for p, c in zip(predicted, cmd):
        hits[c[0]].append(p[0] == c[0])
        rhits[c[1]].append(p[1] == c[1])
    counts = {f"movement {k}": len(v) for k, v in hits.items()}
    counts.update({f"rotation {k}": len(v) for k, v in rhits.items()})
    return InstructionScore(
        acc["overall"], acc["movement"], acc["rotation"],
        {k: float(np.mean(v)) for k, v in sorted(hits.items())}, {k: float(np.mean(v)) for k, v in sorted(rhits.items())},
        counts, list(predicted), cmd, list(motions or []),
    )


def score_video(frames, actions: Sequence[CameraAction], frames_per_segment: int = 4, first_frame: int = 0,
                K: Optional[np.ndarray] = None, **kwargs) -> InstructionScore:
    """Instruction following of one video against its per-segment commands.

    Args:
        frames: ``[F, H, W, 3]`` in [0, 1]; segment s spans frames ``first_frame + s * n`` to
            ``first_frame + (s + 1) * n`` (n = ``frames_per_segment``).
        actions: the commanded action of each segment.
        K: intrinsics (default: 60 degree horizontal field of view).
        kwargs: thresholds, or ``flow`` / ``flow_valid``, for :func:`estimate_segments`.

    Untrackable segments count as ("·", "·").
    """
    motions = estimate_segments(frames, len(actions), frames_per_segment, first_frame, K, **kwargs)
    predicted = [(m.movement, m.rotation) if m is not None else (NONE_KEY, NONE_KEY) for m in motions]
    return compare_actions(predicted, actions, motions)


def merge_scores(scores: Sequence[InstructionScore]) -> InstructionScore:
    """Pool several videos' segments into one score."""
    predicted = [p for s in scores for p in s.predicted]
    commanded = [CameraAction(*c) for s in scores for c in s.commanded]
    motions = [m for s in scores for m in s.motions]
    return compare_actions(predicted, commanded, motions)


__all__ = [
    "InstructionScore", "SegmentMotion", "compare_actions", "default_intrinsics", "estimate_motion",
    "estimate_segments", "fit_rotation", "merge_scores", "score_video", "track_points", "tracks_from_flow",
]
