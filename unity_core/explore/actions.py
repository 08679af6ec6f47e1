"""Yume's quantized camera motion (QCM): the discrete action vocabulary and its geometry.

An action is a pair (movement, rotation) with keys from ``YUME_QCM["movement_keys"]``
(W, A, S, D, the pairs W+A, W+D, S+A, S+D, and "·" for none) and
``YUME_QCM["rotation_keys"]`` (→, ←, ↑, ↓, the pairs ↑→, ↑←, ↓→, ↓←, and "·").

Camera frame: OpenCV convention, x right, y down, z forward (the viewing direction).
- movement W = +z, S = -z, D = +x, A = -x (unit vector, pairs normalised);
- rotation yaw > 0 turns right (→), pitch > 0 tilts up (↑); both as signs in {-1, 0, 1}.

This module is the one home of that geometry: synthworld drives its camera with it and the
instruction-following scorer classifies estimated motion back into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

from unity_core.constants import YUME_QCM

MOVEMENT_KEYS: Tuple[str, ...] = tuple(YUME_QCM["movement_keys"])
ROTATION_KEYS: Tuple[str, ...] = tuple(YUME_QCM["rotation_keys"])
NONE_KEY = "·"

_MOVE_AXES = {"W": (0.0, 0.0, 1.0), "S": (0.0, 0.0, -1.0), "D": (1.0, 0.0, 0.0), "A": (-1.0, 0.0, 0.0)}
_ROT_AXES = {"→": (1, 0), "←": (-1, 0), "↑": (0, 1), "↓": (0, -1)}


@dataclass(frozen=True)
class CameraAction:
    """One segment's camera command: a movement key and a rotation key (either may be "·")."""

    movement: str = NONE_KEY
    rotation: str = NONE_KEY

    def __post_init__(self) -> None:
        if self.movement not in MOVEMENT_KEYS:
            raise ValueError(f"unknown movement {self.movement!r}; use one of {', '.join(MOVEMENT_KEYS)}")
        if self.rotation not in ROTATION_KEYS:
            raise ValueError(f"unknown rotation {self.rotation!r}; use one of {', '.join(ROTATION_KEYS)}")

    def translation_direction(self) -> Tuple[float, float, float]:
        """Unit translation direction in the camera frame (x right, y down, z forward); zeros for "·"."""
        return movement_direction(self.movement)

    def rotation_signs(self) -> Tuple[int, int]:
        """(yaw, pitch) signs in {-1, 0, 1}: yaw > 0 turns right, pitch > 0 tilts up."""
        return rotation_signs(self.rotation)


def movement_direction(key: str) -> Tuple[float, float, float]:
    """Unit camera-frame translation for a movement key, e.g. ``"W+D"`` -> (0.707, 0, 0.707).

    Raises:
        ValueError: unknown key.
    """
    if key not in MOVEMENT_KEYS:
        raise ValueError(f"unknown movement {key!r}; use one of {', '.join(MOVEMENT_KEYS)}")
    if key == NONE_KEY:
        return (0.0, 0.0, 0.0)
    vec = [0.0, 0.0, 0.0]
    for part in key.split("+"):
        for i, c in enumerate(_MOVE_AXES[part]):
            vec[i] += c
    norm = math.sqrt(sum(c * c for c in vec))
    return tuple(c / norm for c in vec)  # type: ignore[return-value]


def rotation_signs(key: str) -> Tuple[int, int]:
    """(yaw, pitch) signs for a rotation key, e.g. ``"↑→"`` -> (1, 1).

    Raises:
        ValueError: unknown key.
    """
    if key not in ROTATION_KEYS:
        raise ValueError(f"unknown rotation {key!r}; use one of {', '.join(ROTATION_KEYS)}")
    yaw = pitch = 0
    for ch in key:
        if ch in _ROT_AXES:
            dy, dp = _ROT_AXES[ch]
            yaw += dy
            pitch += dp
    return yaw, pitch


def movement_key_from_direction(x: float, z: float, threshold: float = 1e-4) -> str:
    """Quantise a camera-frame translation (x right, z forward) to a movement key.

    Each axis counts when its magnitude exceeds ``threshold`` (Yume's code uses 1e-4) and
    exceeds ``tan(22.5°)`` times the other axis, so diagonal keys cover ±22.5° sectors.
    """
    ax, az = abs(x), abs(z)
    use_x = ax > threshold and ax >= math.tan(math.radians(22.5)) * az
    use_z = az > threshold and az >= math.tan(math.radians(22.5)) * ax
    fwd = ("W" if z > 0 else "S") if use_z else ""
    side = ("D" if x > 0 else "A") if use_x else ""
    if fwd and side:
        return f"{fwd}+{side}"
    return fwd or side or NONE_KEY


def rotation_key_from_angles(yaw: float, pitch: float, threshold: float = 1e-3) -> str:
    """Quantise yaw/pitch (radians; yaw > 0 right, pitch > 0 up) to a rotation key.

    Each angle counts when its magnitude exceeds ``threshold`` (Yume's code uses 1e-3) and
    exceeds ``tan(22.5°)`` times the other.
    """
    ay, ap = abs(yaw), abs(pitch)
    use_y = ay > threshold and ay >= math.tan(math.radians(22.5)) * ap
    use_p = ap > threshold and ap >= math.tan(math.radians(22.5)) * ay
    vert = ("↑" if pitch > 0 else "↓") if use_p else ""
    horiz = ("→" if yaw > 0 else "←") if use_y else ""
    return (vert + horiz) or NONE_KEY
