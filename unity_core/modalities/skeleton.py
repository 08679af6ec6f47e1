"""Human skeletons <-> OpenPose-style renderings (the release's "skeleton" modality, DWPose
annotations drawn in OpenPose's 18-keypoint body layout).

Values: ``[F, P, 18, 3]`` = (x, y, confidence) per person and keypoint, x/y in pixels; a
keypoint with confidence < 0.3 is not drawn. Keypoint order (OpenPose COCO-18): nose, neck,
right shoulder, right elbow, right wrist, left shoulder, left elbow, left wrist, right hip,
right knee, right ankle, left hip, left knee, left ankle, right eye, left eye, right ear,
left ear. Limbs are drawn with OpenPose's limb colours at 60 % intensity, keypoints as discs in
full colour on top, on black. Decoding finds each keypoint's full-colour disc and returns its
centroid; confidence is the fraction of the disc found.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

KEYPOINT_NAMES: Tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye", "left_eye",
    "right_ear", "left_ear",
)
#: OpenPose body limbs (0-based keypoint pairs), in its drawing order.
LIMBS: Tuple[Tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
#: OpenPose's 18 colours (RGB, 0-255): keypoint k and limb k use colour k.
COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
], dtype=np.uint8)
MIN_CONFIDENCE = 0.3
LIMB_INTENSITY = 0.6


def disc_radius(height: int, width: int) -> int:
    """Keypoint disc radius in pixels for a frame size (2 px at 64 px, 4 px at 256 px, ...)."""
    return max(2, round(min(height, width) / 64))


def encode(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Keypoints ``[F, P, 18, 3]`` -> frames ``[F, H, W, 3]`` in [0, 1].

    Raises:
        ValueError: wrong shape.
    """
    import cv2

    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    if kp.ndim != 4 or kp.shape[2:] != (18, 3):
        raise ValueError(f"keypoints must be [F, P, 18, 3] (x, y, confidence), got {tuple(kp.shape)}")
    r = disc_radius(height, width)
    thickness = max(1, r - 1)
    frames = np.zeros((kp.shape[0], height, width, 3), dtype=np.uint8)
    pts = kp.numpy()
    for f in range(pts.shape[0]):
        canvas = frames[f]
        for person in pts[f]:
            for i, (a, b) in enumerate(LIMBS):
                if person[a, 2] >= MIN_CONFIDENCE and person[b, 2] >= MIN_CONFIDENCE:
                    col = tuple(int(c * LIMB_INTENSITY) for c in COLORS[i])
                    pa = tuple(int(round(v)) for v in person[a, :2])
                    pb = tuple(int(round(v)) for v in person[b, :2])
                    cv2.line(canvas, pa, pb, col, thickness, lineType=cv2.LINE_AA)
        for person in pts[f]:
            for k in range(18):
                if person[k, 2] >= MIN_CONFIDENCE:
                    centre = tuple(int(round(v)) for v in person[k, :2])
                    cv2.circle(canvas, centre, r, tuple(int(c) for c in COLORS[k]), -1, lineType=cv2.LINE_8)
    return torch.from_numpy(frames).float() / 255.0


def _group_people(blobs: dict, people: int) -> List[dict]:
    """Blobs ``{keypoint: [(area, x, y), ...]}`` -> people ``[{keypoint: (area, x, y)}, ...]``.

    The keypoint with the most blobs seeds one person per blob; every keypoint's blobs then go
    to the nearest person, at most one blob per person and keypoint (greedy by distance), and
    each person's position is the mean of its blobs; three rounds."""
    seed_k = max(blobs, key=lambda k: len(blobs[k]))
    centres = np.array([(x, y) for _, x, y in blobs[seed_k]][:people], dtype=np.float64)
    members: List[dict] = []
    for _ in range(3):
        members = [{} for _ in centres]
        for k, found in blobs.items():
            pts = np.array([(x, y) for _, x, y in found], dtype=np.float64)
            dist = np.linalg.norm(pts[:, None] - centres[None], axis=-1)  # [blobs, people]
            for flat in np.argsort(dist, axis=None):
                b, p = np.unravel_index(flat, dist.shape)
                if k not in members[p] and all(members[q].get(k) is not found[b] for q in range(len(centres))):
                    members[p][k] = found[b]
        centres = np.array([np.mean([(x, y) for _, x, y in m.values()], 0) if m else c
                            for m, c in zip(members, centres)])
    return members


def decode(frames: torch.Tensor, max_people: int = 1, tolerance: float = 60.0) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` -> keypoints ``[F, max_people, 18, 3]`` (x, y pixels, confidence).

    For each keypoint colour, pixels within ``tolerance`` (0-255 units, Euclidean) form
    connected blobs (at least a quarter of a joint disc). The blobs are then grouped into people
    (:func:`_group_people`), so a person's keypoints never come from another figure; the
    ``max_people`` people with the most keypoints are kept, ordered left to right. Missing
    keypoints come back as (0, 0, 0); confidence is the blob's area over a disc's, at most 1.
    """
    import cv2

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    h, w = frames.shape[1:3]
    disc_area = float(np.pi * disc_radius(h, w) ** 2)
    px = (frames.float().clamp(0, 1) * 255).numpy()
    out = np.zeros((frames.shape[0], max_people, 18, 3), dtype=np.float32)
    for f in range(px.shape[0]):
        dist = np.linalg.norm(px[f][:, :, None, :] - COLORS[None, None].astype(np.float32), axis=-1)  # H, W, 18
        nearest = dist.argmin(-1)
        close = dist.min(-1) < tolerance
        blobs = {}
        for k in range(18):
            mask = (close & (nearest == k)).astype(np.uint8)
            if not mask.any():
                continue
            n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
            found = [(float(stats[j, cv2.CC_STAT_AREA]), float(cents[j, 0]), float(cents[j, 1])) for j in range(1, n)
                     if stats[j, cv2.CC_STAT_AREA] >= 0.25 * disc_area]
            if found:
                blobs[k] = found
        if not blobs:
            continue
        people = _group_people(blobs, max(len(v) for v in blobs.values()))
        kept = sorted((m for m in people if m), key=lambda m: -len(m))[:max_people]
        kept = sorted(kept, key=lambda m: np.mean([x for _, x, _ in m.values()]))  # left to right
        for p, person in enumerate(kept):
            for k, (area, cx, cy) in person.items():
                out[f, p, k] = (cx, cy, min(1.0, area / disc_area))
    return torch.from_numpy(out)
