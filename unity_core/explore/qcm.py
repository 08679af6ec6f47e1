"""Yume's quantized camera motion as text: keyboard keys -> actions -> prompt sentences, and
an action script format for nodes and the command line.

Keys: W A S D move (pairs such as W+A allowed), arrow keys or ← → ↑ ↓ rotate; opposite keys
(W+S, A+D, ←+→, ↑+↓) are rejected. Sentences come from Yume's published tables (v1 and v1.5,
``unity_core/data/yume_qcm.json``): prefix, movement sentence, rotation sentence and an optional
speed sentence.

Action script: one entry per segment, separated by spaces, e.g. ``"W W W+A ← · W→"``. An entry
is a movement, a rotation, or both written together (movement first, e.g. ``W+A↑→``); ``·``
(or ``.``) stands still. ASCII spellings are accepted for arrows: ``<`` ``>`` ``^`` ``v``.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

from unity_core.constants import YUME_QCM
from unity_core.explore.actions import MOVEMENT_KEYS, NONE_KEY, ROTATION_KEYS, CameraAction

_ASCII = {"<": "←", ">": "→", "^": "↑", "v": "↓", ".": NONE_KEY}
_KEY_NAMES = {"arrowleft": "←", "arrowright": "→", "arrowup": "↑", "arrowdown": "↓", "left": "←", "right": "→",
              "up": "↑", "down": "↓", "w": "W", "a": "A", "s": "S", "d": "D"}
_OPPOSITE = [{"W", "S"}, {"A", "D"}, {"←", "→"}, {"↑", "↓"}]


def action_from_keys(keys: Iterable[str]) -> CameraAction:
    """Keys held together (e.g. ``["w", "a", "ArrowRight"]``) -> one action.

    Raises:
        ValueError: an unknown key or opposite keys pressed together.
    """
    held = set()
    for key in keys:
        k = _KEY_NAMES.get(str(key).lower(), _ASCII.get(str(key), str(key)))
        if k not in {"W", "A", "S", "D", "←", "→", "↑", "↓"}:
            raise ValueError(f"unknown key {key!r}; use W/A/S/D and the arrow keys")
        held.add(k)
    for pair in _OPPOSITE:
        if pair <= held:
            raise ValueError(f"opposite keys {' and '.join(sorted(pair))} cannot be combined")
    move = "+".join(k for k in ("W", "S") if k in held) + ("+" if held & {"W", "S"} and held & {"A", "D"} else "") + \
        "".join(k for k in ("A", "D") if k in held)
    rot = "".join(k for k in ("↑", "↓") if k in held) + "".join(k for k in ("→", "←") if k in held)
    return CameraAction(move or NONE_KEY, rot or NONE_KEY)


def parse_entry(entry: str) -> CameraAction:
    """One script entry (``W+A``, ``←``, ``W↑→``, ``·``) -> action.

    Raises:
        ValueError: not a movement and/or rotation; the message lists the valid keys.
    """
    text = "".join(_ASCII.get(c, c) for c in entry.strip())
    if text in ("", NONE_KEY):
        return CameraAction()
    for move in sorted(MOVEMENT_KEYS, key=len, reverse=True):
        if move != NONE_KEY and text.upper().startswith(move):
            rest = text[len(move):].lstrip(",+") or NONE_KEY
            if rest in ROTATION_KEYS:
                return CameraAction(move, rest)
    if text in ROTATION_KEYS:
        return CameraAction(NONE_KEY, text)
    raise ValueError(f"bad action {entry!r}: use a movement ({' '.join(MOVEMENT_KEYS)}), a rotation "
                     f"({' '.join(ROTATION_KEYS)}) or both, e.g. 'W+A→'")


def parse_script(script: str) -> List[CameraAction]:
    """``"W W W+A ← ·"`` -> one action per segment.

    Raises:
        ValueError: an empty script or a bad entry (named with its position).
    """
    entries = script.split()
    if not entries:
        raise ValueError("the action script is empty; write e.g. 'W W W+A ←'")
    actions = []
    for i, e in enumerate(entries):
        try:
            actions.append(parse_entry(e))
        except ValueError as err:
            raise ValueError(f"entry {i + 1}: {err}") from None
    return actions


def format_script(actions: Iterable[CameraAction]) -> str:
    """Inverse of :func:`parse_script`."""
    out = []
    for a in actions:
        if a.movement == NONE_KEY and a.rotation == NONE_KEY:
            out.append(NONE_KEY)
        else:
            out.append((a.movement if a.movement != NONE_KEY else "") + (a.rotation if a.rotation != NONE_KEY else ""))
    return " ".join(out)


def action_prompt(action: CameraAction, version: str = "v1", speed: Optional[dict] = None, prefix: bool = True) -> str:
    """Yume's text for one segment: prefix + movement + rotation (+ speed) sentences.

    Args:
        version: ``v1`` (Yume 1.0) or ``v1_5``.
        speed: ``{"distance", "turn", "rotation"}`` for the speed sentence (v1 defaults from
            the table when ``{}``), or None for none.

    Raises:
        ValueError: unknown version.
    """
    if version not in ("v1", "v1_5"):
        raise ValueError(f"unknown sentence set {version!r}; use 'v1' or 'v1_5'")
    table = YUME_QCM[version]
    parts = [table["prefix"]] if prefix else []
    parts += [table["movement"][action.movement], table["rotation"][action.rotation]]
    if speed is not None:
        values = {**table.get("speed_default", {}), **speed}
        parts.append(table["speed_format"].format(**values))
    return " ".join(parts)
