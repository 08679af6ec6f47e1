"""Synthworld: procedural 3D clips with exact ground truth for every UnityVideo modality and
Yume's camera actions.

Each clip is a room (textured floor, walls and sky) with boxes, spheres and articulated
human-like figures that walk, turn and wave, seen by a camera driven by Yume's discrete
actions, one action per latent segment of 4 frames. Rendering is vectorised ray casting in
torch: every ray is intersected with analytic planes, boxes and spheres (figures are chains of
spheres along their limbs), so depth, instances, body parts, keypoints and motion are exact,
not estimated.

Coordinates: world and camera frames use OpenCV's convention, x right, y down, z forward; the
floor is the plane y = 0 and "up" is -y. Units are metres, seconds at 8 fps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from unity_core.explore.actions import MOVEMENT_KEYS, ROTATION_KEYS, CameraAction
from unity_core.explore.qcm import action_prompt, prefix_sentence

FPS = 8.0
FRAMES_PER_SEGMENT = 4
CAMERA_HEIGHT = 1.6
STEP_METRES = 0.12       # camera translation per frame for a movement key
STEP_RADIANS = math.radians(2.5)  # camera rotation per frame for a rotation key
MAX_PITCH = math.radians(30)
ROOM = 15.0              # walls at x, z = +-ROOM
SKY = 12.0               # sky plane height


@dataclass
class SynthClip:
    """One rendered clip. All tensors are CPU torch tensors.

    Attributes:
        rgb: ``[F, H, W, 3]`` float32 in [0, 1].
        depth: ``[F, H, W]`` float32, metric depth (camera z) in metres.
        flow: ``[F, H, W, 2]`` float32, forward optical flow t -> t+1 in pixels (u right, v down),
            exact from the known 3D motion (the last frame uses one extra rendered frame).
        flow_valid: ``[F, H, W]`` bool, the point is visible in frame t+1 (not occluded, in view).
        instances: ``[F, H, W]`` int64, 0 = room (background), 1..P figures, P+1.. objects.
        keypoints: ``[F, P, 18, 3]`` float32 (x, y pixels, visibility 1/0), OpenPose-18 order.
        densepose: ``[F, H, W, 3]`` float32 (part index 0..24, U, V in [0, 1]).
        camera_poses: ``[F, 4, 4]`` float32 camera-to-world.
        intrinsics: ``[3, 3]`` float32 pinhole K (pixels).
        actions: one :class:`CameraAction` per 4-frame segment.
        caption: content sentence; action_caption: Yume v1 action sentences, one per segment.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    flow: torch.Tensor
    flow_valid: torch.Tensor
    instances: torch.Tensor
    keypoints: torch.Tensor
    densepose: torch.Tensor
    camera_poses: torch.Tensor
    intrinsics: torch.Tensor
    actions: List[CameraAction]
    caption: str
    action_caption: str
    seed: int = 0

    @property
    def prompt(self) -> str:
        """The training prompt, laid out as an exploration segment's prompt: caption, Yume v1
        prefix sentence, then the action sentences (see :func:`action_sentence`)."""
        return f"{self.caption} {prefix_sentence('v1')} {self.action_caption}".strip()


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

# Limb chains: (joint a, joint b, radius m, part index for front, part for back, end part or 0).
_LIMBS = [
    (1, 18, 0.16, 1, 2, 0),     # torso: neck -> pelvis (18 = pelvis centre, an extra joint)
    (2, 3, 0.055, 16, 18, 0),   # right upper arm
    (3, 4, 0.045, 20, 22, 3),   # right forearm, hand
    (5, 6, 0.055, 15, 17, 0),   # left upper arm
    (6, 7, 0.045, 19, 21, 4),   # left forearm, hand
    (8, 9, 0.075, 7, 9, 0),     # right thigh
    (9, 10, 0.06, 11, 13, 6),   # right shin, foot
    (11, 12, 0.075, 8, 10, 0),  # left thigh
    (12, 13, 0.06, 12, 14, 5),  # left shin, foot
]
HEAD_RADIUS = 0.11


def _figure_joints(t: float, phase: float, wave: bool) -> np.ndarray:
    """19 joints (OpenPose-18 + pelvis centre) in the body frame (x right, y down, z forward) at
    time t seconds; feet on y = 0."""
    swing = 0.5 * math.sin(2 * math.pi * 1.0 * t + phase)
    j = np.zeros((19, 3))
    j[18] = (0, -0.95, 0)
    j[1] = (0, -1.45, 0)
    j[0] = (0, -1.6, 0.1)
    j[14], j[15] = (0.04, -1.64, 0.09), (-0.04, -1.64, 0.09)
    j[16], j[17] = (0.09, -1.61, 0.0), (-0.09, -1.61, 0.0)
    j[2], j[5] = (0.2, -1.42, 0), (-0.2, -1.42, 0)
    j[8], j[11] = (0.1, -0.95, 0), (-0.1, -0.95, 0)

    def hang(start, angle, length, side=0.0):
        return start + length * np.array([side, math.cos(angle), math.sin(angle)])

    j[9] = hang(j[8], swing, 0.45)
    j[10] = hang(j[9], swing - 0.3 * max(0.0, -swing), 0.45)
    j[12] = hang(j[11], -swing, 0.45)
    j[13] = hang(j[12], -swing - 0.3 * max(0.0, swing), 0.45)
    j[3] = hang(j[2], -swing * 0.8, 0.3, 0.1)
    j[4] = hang(j[3], -swing * 0.8 - 0.2, 0.27, 0.05)
    if wave:  # left arm raised, forearm waving
        j[6] = j[5] + np.array([-0.2, -0.22, 0.0])
        a = 0.6 * math.sin(2 * math.pi * 1.5 * t)
        j[7] = j[6] + 0.27 * np.array([-math.sin(a), -math.cos(a), 0.0])
    else:
        j[6] = hang(j[5], swing * 0.8, 0.3, -0.1)
        j[7] = hang(j[6], swing * 0.8 - 0.2, 0.27, -0.05)
    return j


@dataclass
class _Figure:
    start: np.ndarray
    heading: float
    turn_rate: float
    speed: float
    phase: float
    wave: bool
    colour: np.ndarray

    def pose(self, t: float) -> Tuple[np.ndarray, np.ndarray]:
        """World joints ``[19, 3]`` and the body yaw at time t."""
        heading = self.heading + self.turn_rate * t
        # integrate the curved path in closed form for a constant turn rate
        if abs(self.turn_rate) < 1e-6:
            dx, dz = self.speed * t * math.sin(self.heading), self.speed * t * math.cos(self.heading)
        else:
            r = self.speed / self.turn_rate
            dx = r * (math.cos(self.heading) - math.cos(heading))
            dz = r * (math.sin(heading) - math.sin(self.heading))
        c, s = math.cos(heading), math.sin(heading)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        joints = _figure_joints(t, self.phase, self.wave) @ rot.T + self.start + np.array([dx, 0, dz])
        return joints, heading


def _figure_spheres(joints: np.ndarray, heading: float) -> Tuple[np.ndarray, np.ndarray]:
    """Spheres ``[S, 4]`` (centre, radius) along the limbs plus the head, and per sphere
    (part front, part back, u0, u1, limb axis x3, forward x3) ``[S, 10]``."""
    fwd = np.array([math.sin(heading), 0.0, math.cos(heading)])
    spheres, meta = [], []
    for a, b, r, front, back, end in _LIMBS:
        pa, pb = joints[a], joints[b]
        length = float(np.linalg.norm(pb - pa))
        n = max(2, int(math.ceil(length / (0.9 * r))) + 1)
        axis = (pb - pa) / max(length, 1e-6)
        for i in range(n):
            s = i / (n - 1)
            spheres.append([*(pa + s * (pb - pa)), r])
            part_f, part_b = (end, end) if (end and i == n - 1) else (front, back)
            meta.append([part_f, part_b, s, 0.0, *axis, *fwd])
    spheres.append([*(joints[0] + np.array([0, 0, -0.05])), HEAD_RADIUS])
    meta.append([23, 24, 0.5, 0.0, 0.0, -1.0, 0.0, *fwd])
    return np.array(spheres), np.array(meta)


# ----------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------

_PALETTE = {
    "red": (0.8, 0.2, 0.2), "green": (0.2, 0.7, 0.3), "blue": (0.2, 0.35, 0.8), "yellow": (0.85, 0.8, 0.2),
    "orange": (0.9, 0.5, 0.15), "purple": (0.55, 0.3, 0.7), "white": (0.85, 0.85, 0.85), "teal": (0.2, 0.65, 0.65),
}
_FLOORS = {"grey tiled": (0.55, 0.55, 0.55), "wooden": (0.6, 0.42, 0.25), "green grass": (0.3, 0.55, 0.25),
           "sandy": (0.8, 0.7, 0.5)}


@dataclass
class _Scene:
    floor_name: str
    floor_colour: np.ndarray
    wall_colour: np.ndarray
    boxes: np.ndarray            # [B, 6] min xyz, max xyz
    box_colours: np.ndarray      # [B, 3]
    spheres: np.ndarray          # [S, 4]
    sphere_colours: np.ndarray   # [S, 3]
    object_names: List[str]
    figures: List[_Figure]
    light: np.ndarray = field(default_factory=lambda: np.array([0.4, -0.8, 0.3]) / np.linalg.norm([0.4, -0.8, 0.3]))


def _make_scene(rng: np.random.Generator) -> _Scene:
    floor_name = list(_FLOORS)[rng.integers(len(_FLOORS))]
    colours = list(_PALETTE)
    boxes, box_cols, spheres, sphere_cols, names = [], [], [], [], []
    for _ in range(rng.integers(2, 5)):
        cx, cz = rng.uniform(-8, 8), rng.uniform(3, 12) * rng.choice([-1, 1]) if rng.random() < 0.2 else rng.uniform(3, 12)
        sx, sy, sz = rng.uniform(0.6, 2.0), rng.uniform(0.6, 2.5), rng.uniform(0.6, 2.0)
        boxes.append([cx - sx / 2, -sy, cz - sz / 2, cx + sx / 2, 0.0, cz + sz / 2])
        name = colours[rng.integers(len(colours))]
        box_cols.append(_PALETTE[name])
        names.append(f"a {name} box")
    for _ in range(rng.integers(1, 4)):
        r = rng.uniform(0.3, 1.0)
        spheres.append([rng.uniform(-7, 7), -r, rng.uniform(3, 12), r])
        name = colours[rng.integers(len(colours))]
        sphere_cols.append(_PALETTE[name])
        names.append(f"a {name} ball")
    figures = []
    for i in range(rng.integers(1, 3)):
        figures.append(_Figure(
            start=np.array([rng.uniform(-2.5, 2.5), 0.0, rng.uniform(3.5, 7.0)]),
            heading=rng.uniform(-math.pi, math.pi), turn_rate=rng.uniform(-0.6, 0.6), speed=rng.uniform(0.5, 1.2),
            phase=rng.uniform(0, 2 * math.pi), wave=bool(rng.random() < 0.4),
            colour=np.array(_PALETTE[colours[rng.integers(len(colours))]]),
        ))
    return _Scene(floor_name, np.array(_FLOORS[floor_name]), rng.uniform(0.45, 0.8, 3), np.array(boxes).reshape(-1, 6),
                  np.array(box_cols).reshape(-1, 3), np.array(spheres).reshape(-1, 4), np.array(sphere_cols).reshape(-1, 3),
                  names, figures)


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return r_yaw @ r_pitch


def camera_path(actions: Sequence[CameraAction], num_frames: int, yaw0: float = 0.0) -> np.ndarray:
    """Camera-to-world poses ``[num_frames, 4, 4]``: segment i (frames 4i -> 4i+4) applies
    ``actions[i]`` per frame: a horizontal step of ``STEP_METRES`` in the action's direction
    (relative to the current yaw) and ``STEP_RADIANS`` of yaw/pitch (pitch clamped to +-30 deg)."""
    pos = np.array([0.0, -CAMERA_HEIGHT, 0.0])
    yaw, pitch = yaw0, 0.0
    poses = []
    for f in range(num_frames):
        pose = np.eye(4)
        pose[:3, :3] = _rotation(yaw, pitch)
        pose[:3, 3] = pos
        poses.append(pose)
        action = actions[min(f // FRAMES_PER_SEGMENT, len(actions) - 1)]
        x, _, z = action.translation_direction()
        c, s = math.cos(yaw), math.sin(yaw)
        pos = pos + STEP_METRES * np.array([c * x + s * z, 0.0, -s * x + c * z])
        dyaw, dpitch = action.rotation_signs()
        yaw += dyaw * STEP_RADIANS
        pitch = float(np.clip(pitch + dpitch * STEP_RADIANS, -MAX_PITCH, MAX_PITCH))
    return np.stack(poses)


def random_actions(rng: np.random.Generator, count: int) -> List[CameraAction]:
    """Random actions: each segment gets a movement alone (45 %), a movement and a rotation
    (30 %) or a rotation alone (25 %); never the "·" / "·" action."""
    out = []
    for _ in range(count):
        kind = rng.random()
        move = MOVEMENT_KEYS[rng.integers(len(MOVEMENT_KEYS) - 1)] if kind < 0.75 else "·"
        rot = ROTATION_KEYS[rng.integers(len(ROTATION_KEYS) - 1)] if kind > 0.45 else "·"
        out.append(CameraAction(move, rot))
    return out


def held_actions(seed: int, num_frames: int) -> List[CameraAction]:
    """One action, drawn from ``seed`` (its own stream, independent of the scene), held for every
    4-frame segment of a ``num_frames`` clip: the default model's training clips, which read like
    one exploration segment each."""
    action = random_actions(np.random.default_rng([seed, 1]), 1)[0]
    return [action] * max(1, (num_frames - 1) // FRAMES_PER_SEGMENT)


def action_sentence(actions: Sequence[CameraAction], version: str = "v1") -> str:
    """Yume's action text (movement then rotation sentence, from
    :func:`unity_core.explore.qcm.action_prompt` without its prefix), one pair per run of equal
    consecutive actions, joined: a clip that holds one action reads like one exploration segment.

    Raises:
        ValueError: unknown sentence set ``version`` (``v1`` or ``v1_5``).
    """
    runs = [a for i, a in enumerate(actions) if i == 0 or a != actions[i - 1]]
    return " ".join(action_prompt(a, version, prefix=False) for a in runs)


# ----------------------------------------------------------------------------------------------
# Ray casting
# ----------------------------------------------------------------------------------------------


def _hit_spheres(o, d, spheres):
    """o [F,1,3], d [F,N,3], spheres [F,S,4] -> t [F,N,S] (inf where missed)."""
    oc = o[:, :, None, :] - spheres[:, None, :, :3]
    a = (d * d).sum(-1)[..., None]
    b = 2 * (oc * d[:, :, None, :]).sum(-1)
    c = (oc * oc).sum(-1) - spheres[:, None, :, 3] ** 2
    disc = b * b - 4 * a * c
    sq = torch.sqrt(disc.clamp_min(0))
    t = (-b - sq) / (2 * a)
    return torch.where((disc > 0) & (t > 1e-4), t, torch.full_like(t, float("inf")))


def _hit_boxes(o, d, boxes):
    """Slab test; boxes [B, 6] -> t [F, N, B]."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t1 = (boxes[None, None, :, :3] - o[:, :, None, :]) * inv[:, :, None, :]
    t2 = (boxes[None, None, :, 3:] - o[:, :, None, :]) * inv[:, :, None, :]
    tmin = torch.minimum(t1, t2).max(-1).values
    tmax = torch.maximum(t1, t2).min(-1).values
    return torch.where((tmax >= tmin) & (tmin > 1e-4), tmin, torch.full_like(tmin, float("inf")))


def _hit_planes(o, d):
    """Floor y=0, sky y=-SKY, walls x=+-ROOM, z=+-ROOM -> t [F, N, 6] and normals [6, 3]."""
    ts = []
    for axis, value in ((1, 0.0), (1, -SKY), (0, ROOM), (0, -ROOM), (2, ROOM), (2, -ROOM)):
        dd = d[..., axis]
        t = (value - o[..., axis]) / torch.where(dd.abs() < 1e-9, torch.full_like(dd, 1e-9), dd)
        ts.append(torch.where(t > 1e-4, t, torch.full_like(t, float("inf"))))
    normals = torch.tensor([[0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0], [0, 0, -1], [0, 0, 1]], dtype=torch.float32)
    return torch.stack(ts, -1), normals


def _value_noise(x, z, seed: int):
    """Cheap deterministic 2-D texture in [0, 1] (sum of sines with seed-dependent phases)."""
    g = np.random.default_rng(seed)
    out = torch.zeros_like(x)
    for _ in range(3):
        fx, fz, ph = g.uniform(0.5, 3.0), g.uniform(0.5, 3.0), g.uniform(0, 6.28)
        out = out + torch.sin(fx * x + fz * z + ph)
    return out / 6 + 0.5


def _render(scene: _Scene, poses: np.ndarray, K: np.ndarray, h: int, w: int, t0: float, seed: int):
    """Render frames for ``poses`` [F, 4, 4]; returns a dict of per-pixel buffers."""
    f = poses.shape[0]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
    d_cam = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1).reshape(-1, 3)
    rot = torch.tensor(poses[:, :3, :3], dtype=torch.float32)
    origin = torch.tensor(poses[:, :3, 3], dtype=torch.float32)[:, None, :]
    d = torch.einsum("fij,nj->fni", rot, d_cam)   # z_cam = 1, so the hit parameter t is the depth

    # figure spheres per frame
    fig_spheres, fig_meta, fig_ids, fig_disp = [], [], [], []
    keypoints = np.zeros((f, len(scene.figures), 19, 3))
    for p, fig in enumerate(scene.figures):
        per_frame, disp = [], []
        for i in range(f):
            t = t0 + i / FPS
            joints, heading = fig.pose(t)
            nxt, nheading = fig.pose(t + 1 / FPS)
            keypoints[i, p] = joints
            s, meta = _figure_spheres(joints, heading)
            s2, _ = _figure_spheres(nxt, nheading)
            per_frame.append(s)
            disp.append(s2[:, :3] - s[:, :3])
            if i == 0:
                fig_meta.append(meta)
        fig_spheres.append(np.stack(per_frame))
        fig_disp.append(np.stack(disp))
        fig_ids.append(np.full(fig_spheres[-1].shape[1], p + 1))
    # also keep per-frame metadata (limb axes change): recompute for all frames
    metas = []
    for i in range(f):
        m = [ _figure_spheres(*scene.figures[p].pose(t0 + i / FPS))[1] for p in range(len(scene.figures))]
        metas.append(np.concatenate(m) if m else np.zeros((0, 10)))
    n_fig = sum(s.shape[1] for s in fig_spheres)
    static = torch.tensor(scene.spheres, dtype=torch.float32)
    all_spheres = torch.cat([
        torch.tensor(np.concatenate(fig_spheres, 1), dtype=torch.float32) if n_fig else torch.zeros(f, 0, 4),
        static[None].expand(f, -1, -1),
    ], 1)
    sphere_disp = torch.cat([
        torch.tensor(np.concatenate(fig_disp, 1), dtype=torch.float32) if n_fig else torch.zeros(f, 0, 3),
        torch.zeros(f, static.shape[0], 3),
    ], 1)
    n_people = len(scene.figures)
    sphere_inst = torch.tensor(np.concatenate(fig_ids + [np.arange(static.shape[0]) + n_people + len(scene.boxes) + 1]), dtype=torch.long)
    boxes = torch.tensor(scene.boxes, dtype=torch.float32)

    t_sph = _hit_spheres(origin, d, all_spheres)
    t_box = _hit_boxes(origin, d, boxes) if len(boxes) else torch.full((f, d.shape[1], 0), float("inf"))
    t_pl, plane_normals = _hit_planes(origin, d)
    t_all = torch.cat([t_sph, t_box, t_pl], -1)
    depth, idx = t_all.min(-1)
    n_s, n_b = t_sph.shape[-1], t_box.shape[-1]
    point = origin + depth[..., None] * d

    is_sph = idx < n_s
    is_box = (idx >= n_s) & (idx < n_s + n_b)
    is_pl = idx >= n_s + n_b
    s_idx = idx.clamp(max=max(n_s - 1, 0))
    b_idx = (idx - n_s).clamp(0, max(n_b - 1, 0))
    p_idx = (idx - n_s - n_b).clamp(0, 5)

    # normals
    normal = torch.zeros_like(point)
    if n_s:
        centre = torch.gather(all_spheres[..., :3], 1, s_idx[..., None].expand(-1, -1, 3))
        normal = torch.where(is_sph[..., None], torch.nn.functional.normalize(point - centre, dim=-1), normal)
    if n_b:
        bmin, bmax = boxes[b_idx][..., :3], boxes[b_idx][..., 3:]
        dist = torch.stack([(point - bmin).abs(), (point - bmax).abs()], -2)  # [F,N,2,3]
        flat = dist.reshape(*dist.shape[:2], 6).argmin(-1)
        axis, side = flat % 3, flat // 3
        bn = torch.nn.functional.one_hot(axis, 3).float() * torch.where(side == 0, -1.0, 1.0)[..., None]
        normal = torch.where(is_box[..., None], bn, normal)
    normal = torch.where(is_pl[..., None], plane_normals[p_idx], normal)

    # albedo
    albedo = torch.zeros_like(point)
    floor_tex = ((torch.floor(point[..., 0]) + torch.floor(point[..., 2])) % 2) * 0.25 + 0.75
    floor_tex = floor_tex * (0.85 + 0.3 * _value_noise(point[..., 0] * 3, point[..., 2] * 3, seed))
    floor = torch.tensor(scene.floor_colour, dtype=torch.float32) * floor_tex[..., None]
    wall_tex = 0.8 + 0.2 * ((torch.floor(point[..., 1] * 2) % 2)) * _value_noise(point[..., 0] + point[..., 2], point[..., 1], seed + 1)
    wall = torch.tensor(scene.wall_colour, dtype=torch.float32) * wall_tex[..., None]
    sky_t = (point[..., 0] * 0.05).sin() * 0.1 + 0.5 + 0.3 * _value_noise(point[..., 0] * 0.3, point[..., 2] * 0.3, seed + 2)
    sky = torch.stack([0.45 * sky_t, 0.65 * sky_t, 0.95 + 0 * sky_t], -1).clamp(0, 1)
    plane_alb = torch.where((p_idx == 0)[..., None], floor, torch.where((p_idx == 1)[..., None], sky, wall))
    albedo = torch.where(is_pl[..., None], plane_alb, albedo)
    if n_b:
        stripes = 0.8 + 0.2 * torch.sin(6 * (point[..., 0] + point[..., 1] + point[..., 2]))
        albedo = torch.where(is_box[..., None], torch.tensor(scene.box_colours, dtype=torch.float32)[b_idx] * stripes[..., None], albedo)
    if n_s:
        sph_cols = torch.cat([
            torch.tensor(np.concatenate([np.repeat(fig.colour[None], s.shape[1], 0) for fig, s in zip(scene.figures, fig_spheres)]) if n_fig else np.zeros((0, 3)), dtype=torch.float32),
            torch.tensor(scene.sphere_colours, dtype=torch.float32),
        ])
        dots = 0.85 + 0.15 * torch.sin(8 * point[..., 0]) * torch.sin(8 * point[..., 1])
        albedo = torch.where(is_sph[..., None], sph_cols[s_idx] * dots[..., None], albedo)
    light = torch.tensor(scene.light, dtype=torch.float32)
    shade = 0.35 + 0.65 * (-(normal * light).sum(-1)).clamp_min(0)
    rgb = torch.where(((p_idx == 1) & is_pl)[..., None], sky, albedo * shade[..., None]).clamp(0, 1)

    # instances and motion
    inst = torch.zeros_like(idx)
    if n_s:
        inst = torch.where(is_sph, sphere_inst[s_idx], inst)
    if n_b:
        inst = torch.where(is_box, b_idx + n_people + 1, inst)
    disp = torch.zeros_like(point)
    if n_s:
        disp = torch.where(is_sph[..., None], torch.gather(sphere_disp, 1, s_idx[..., None].expand(-1, -1, 3)), disp)

    # densepose on figure spheres
    iuv = torch.zeros_like(point)
    if n_fig:
        meta = torch.tensor(np.stack(metas), dtype=torch.float32)  # [F, n_fig, 10]
        on_fig = is_sph & (s_idx < n_fig)
        m = torch.gather(meta, 1, s_idx.clamp(max=n_fig - 1)[..., None].expand(-1, -1, 10))
        rel = normal
        axis, fwd = m[..., 4:7], m[..., 7:10]
        facing = (rel * fwd).sum(-1) >= 0
        part = torch.where(facing, m[..., 0], m[..., 1])
        side = torch.nn.functional.normalize(torch.cross(axis, fwd, dim=-1) + 1e-6, dim=-1)
        ang = torch.atan2((rel * side).sum(-1), (rel * fwd).sum(-1))
        iuv = torch.where(on_fig[..., None], torch.stack([part, m[..., 2], (ang / (2 * math.pi) + 0.5)], -1), iuv)
    shape = (f, h, w)
    return {
        "rgb": rgb.reshape(*shape, 3), "depth": depth.reshape(shape), "point": point.reshape(*shape, 3),
        "disp": disp.reshape(*shape, 3), "instances": inst.reshape(shape), "densepose": iuv.reshape(*shape, 3),
        "keypoints_3d": keypoints,
    }


def _project(points: torch.Tensor, pose: np.ndarray, K: np.ndarray):
    """World points [..., 3] -> pixel coords [..., 2] and camera depth [...] for one pose."""
    rot = torch.tensor(pose[:3, :3], dtype=torch.float32)
    t = torch.tensor(pose[:3, 3], dtype=torch.float32)
    cam = (points - t) @ rot
    z = cam[..., 2]
    u = K[0, 0] * cam[..., 0] / z + K[0, 2]
    v = K[1, 1] * cam[..., 1] / z + K[1, 2]
    return torch.stack([u, v], -1), z


def render_clip(seed: int, num_frames: int = 17, height: int = 64, width: int = 64,
                actions: Optional[Sequence[CameraAction]] = None, fov_degrees: float = 60.0) -> SynthClip:
    """Render one clip, deterministic by ``seed``.

    Args:
        seed: scene, figures, texture and (when ``actions`` is None) action seed.
        num_frames: 4k+1 frames.
        height, width: any size in pixels.
        actions: one :class:`CameraAction` per 4-frame segment ((num_frames - 1) / 4 of them; a
            single-frame clip takes one); None draws them from the seed.
        fov_degrees: horizontal field of view.

    Raises:
        ValueError: frame count not 4k+1, a wrong number of actions, or a bad size.
    """
    if num_frames < 1 or (num_frames - 1) % 4:
        raise ValueError(f"num_frames must be 4k+1 (e.g. 17, 33), got {num_frames}")
    if height < 8 or width < 8:
        raise ValueError(f"height and width must be >= 8, got {height}x{width}")
    segments = max(1, (num_frames - 1) // FRAMES_PER_SEGMENT)
    rng = np.random.default_rng(seed)
    scene = _make_scene(rng)
    if actions is None:
        actions = random_actions(rng, segments)
    actions = list(actions)
    if len(actions) != segments:
        raise ValueError(f"{num_frames} frames need {segments} actions (one per 4 frames), got {len(actions)}")
    fx = width / (2 * math.tan(math.radians(fov_degrees) / 2))
    K = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]])
    yaw0 = float(rng.uniform(-0.3, 0.3))
    poses = camera_path(actions + [actions[-1]], num_frames + 1, yaw0)  # one extra frame for the last flow
    buf = _render(scene, poses, K, height, width, 0.0, seed)

    # exact forward flow from the 3D motion, occlusion-checked against frame t+1's depth
    moved = buf["point"][:-1] + buf["disp"][:-1]
    flows, valid = [], []
    for i in range(num_frames):
        uv, z = _project(moved[i], poses[i + 1], K)
        ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        flow = uv - torch.stack([xs, ys], -1)
        px, py = uv[..., 0].floor().long(), uv[..., 1].floor().long()
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height) & (z > 0)
        seen = buf["depth"][i + 1][py.clamp(0, height - 1), px.clamp(0, width - 1)]
        vis = inside & ((seen - z).abs() < 0.03 * z + 0.05)
        flows.append(flow)
        valid.append(vis)

    # keypoints (OpenPose-18) with visibility from the depth buffer
    kp3 = torch.tensor(buf["keypoints_3d"][:num_frames, :, :18], dtype=torch.float32)
    kps = torch.zeros(num_frames, kp3.shape[1], 18, 3)
    for i in range(num_frames):
        uv, z = _project(kp3[i], poses[i], K)
        px, py = uv[..., 0].floor().long(), uv[..., 1].floor().long()
        inside = (px >= 0) & (px < width) & (py >= 0) & (py < height) & (z > 0.1)
        seen = buf["depth"][i][py.clamp(0, height - 1), px.clamp(0, width - 1)]
        vis = inside & (z < seen + 0.25)  # joints sit inside the limb spheres, up to a radius behind the surface
        kps[i] = torch.cat([uv, vis[..., None].float()], -1)

    names = scene.object_names
    people = len(scene.figures)
    who = "a person" if people == 1 else f"{people} people"
    doing = "waving" if any(f.wave for f in scene.figures) else "walking"
    caption = (f"A first-person view of a room with a {scene.floor_name} floor, where {who} {'is' if people == 1 else 'are'} "
               f"{doing} near {', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1 else names[0]}.")
    return SynthClip(
        rgb=buf["rgb"][:num_frames].float(), depth=buf["depth"][:num_frames].float(), flow=torch.stack(flows).float(),
        flow_valid=torch.stack(valid), instances=buf["instances"][:num_frames].long(), keypoints=kps,
        densepose=buf["densepose"][:num_frames].float(), camera_poses=torch.tensor(poses[:num_frames], dtype=torch.float32),
        intrinsics=torch.tensor(K, dtype=torch.float32), actions=actions, caption=caption,
        action_caption=action_sentence(actions), seed=seed,
    )


def modality_values(clip: SynthClip, modality: str):
    """The clip's ground truth in the value layout of :mod:`unity_core.modalities`."""
    from unity_core.constants import resolve_modality
    from unity_core.modalities.depth import relative_depth

    name = resolve_modality(modality)
    if name == "depth":
        return relative_depth(clip.depth)
    if name == "raft":
        return clip.flow
    if name == "segmentation":
        return clip.instances.clamp(max=1)
    if name == "skeleton":
        return clip.keypoints
    return clip.densepose
