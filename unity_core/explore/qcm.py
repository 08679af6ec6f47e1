"""Yume's quantized camera motion (QCM) as text: keyboard keys -> actions -> prompt sentences,
and the action script used by the nodes, the exploration widget and the command line.

Keys
----
``W A S D`` move (forward, left, backward, right), pairs such as ``W+A`` allowed; the arrow
keys rotate (``←``/``→`` turn left/right, ``↑``/``↓`` tilt up/down), pairs such as ``↑→``
allowed. Opposite keys (W+S, A+D, ←+→, ↑+↓) cancel out physically, so they are rejected
with an error instead of being guessed.

Sentences
---------
Yume's published tables (``unity_core/tables/yume_qcm.json``, sets ``v1`` and ``v1_5``): a fixed
prefix, a movement sentence, a rotation sentence and an optional speed sentence built from the
table's ``speed_format``. :func:`segment_prompt` puts the content prompt first and the action
text after it.

Action script grammar
---------------------
One entry per segment, entries separated by whitespace::

    script   := entry ( WS entry )*
    entry    := body [ "*" COUNT ]             COUNT >= 1 repeats the entry ("W*3" = "W W W")
    body     := NONE | move | rot | move [SEP] rot | NONE [SEP] rot | move [SEP] NONE
    move     := MKEY | MKEY "+" MKEY            one of W/S with one of A/D, either order
    rot      := RKEY | RKEY RKEY                one of ↑/↓ with one of ←/→, either order
    SEP      := "+" | ","
    NONE     := "·" | "."
    MKEY     := "W" | "A" | "S" | "D"           case-insensitive
    RKEY     := "←" | "→" | "↑" | "↓"           ASCII spellings "<" ">" "^" "v" accepted

Examples: ``W W W+A ← · W→ S+D↓← W,→ a+w <`` and ``W*4 →*2``. The canonical form written by
:func:`format_script` is ``·`` for none, otherwise the movement key then the rotation key with
no separator (``W+A``, ``←``, ``W+A↑→``); ``parse_script(format_script(a)) == a`` for every
action list, and ``format_script(parse_script(s))`` is the canonical spelling of ``s``.
"""

from __future__ import annotations

from typing import Iterable, List, Mapping, Optional, Sequence, Union

from unity_core.constants import YUME_QCM
from unity_core.explore.actions import MOVEMENT_KEYS, NONE_KEY, ROTATION_KEYS, CameraAction

SENTENCE_SETS = ("v1", "v1_5")

_ASCII = {"<": "←", ">": "→", "^": "↑", "v": "↓", "V": "↓", ".": NONE_KEY}
_KEY_NAMES = {"arrowleft": "←", "arrowright": "→", "arrowup": "↑", "arrowdown": "↓", "left": "←", "right": "→",
              "up": "↑", "down": "↓", "w": "W", "a": "A", "s": "S", "d": "D", "keyw": "W", "keya": "A",
              "keys": "S", "keyd": "D"}
_MOVE_CHARS = ("W", "A", "S", "D")
_ROT_CHARS = ("←", "→", "↑", "↓")
_OPPOSITE = [("W", "S"), ("A", "D"), ("←", "→"), ("↑", "↓")]
_HELP = "use W/A/S/D (pairs like W+A), the arrows ← → ↑ ↓ (or < > ^ v), '·' for none, e.g. 'W+A→'"


def _check_opposites(held: Iterable[str]) -> None:
    held = set(held)
    for a, b in _OPPOSITE:
        if a in held and b in held:
            raise ValueError(f"opposite keys {a} and {b} cannot be combined; keep one of them")


def _movement_key(keys: Iterable[str]) -> str:
    """Movement keys (each at most once, no opposites) -> canonical key, W/S first: ``W+A``."""
    keys = set(keys)
    fwd = [k for k in ("W", "S") if k in keys]
    side = [k for k in ("A", "D") if k in keys]
    return "+".join(fwd + side) or NONE_KEY


def _rotation_key(keys: Iterable[str]) -> str:
    """Rotation keys -> canonical key, tilt first: ``↑→``."""
    keys = set(keys)
    return "".join([k for k in ("↑", "↓") if k in keys] + [k for k in ("→", "←") if k in keys]) or NONE_KEY


def action_from_keys(keys: Iterable[str]) -> CameraAction:
    """Keys held together -> one action.

    Args:
        keys: key names as a browser reports them (``"w"``, ``"KeyW"``, ``"ArrowRight"``), the
            symbols themselves (``"W"``, ``"→"``) or ASCII arrows (``"<" ">" "^" "v"``).
            An empty list gives the "·" / "·" action.

    Raises:
        ValueError: an unknown key, or opposite keys pressed together (W+S, A+D, ←+→, ↑+↓).
    """
    held = set()
    for key in keys:
        k = _KEY_NAMES.get(str(key).lower(), _ASCII.get(str(key), str(key).upper() if str(key) in "wasd" else str(key)))
        if k not in _MOVE_CHARS + _ROT_CHARS:
            raise ValueError(f"unknown key {key!r}; use W/A/S/D and the arrow keys")
        held.add(k)
    _check_opposites(held)
    return CameraAction(_movement_key(held & set(_MOVE_CHARS)), _rotation_key(held & set(_ROT_CHARS)))


def _parse_body(text: str) -> CameraAction:
    """One entry without its repeat count -> action; ValueError with the bare reason."""
    chars = [_ASCII.get(c, c.upper() if c in "wasd" else c) for c in text]
    n = len(chars)
    if n == 0:
        raise ValueError("empty entry")
    i = 0
    moves: List[str] = []
    move_given = False
    if chars[0] == NONE_KEY:
        move_given, i = True, 1
    elif chars[0] in _MOVE_CHARS:
        moves, move_given, i = [chars[0]], True, 1
        if i + 1 < n and chars[i] == "+" and chars[i + 1] in _MOVE_CHARS:
            moves.append(chars[i + 1])
            i += 2
    if move_given and i < n and chars[i] in ("+", ","):
        i += 1
        if i == n:
            raise ValueError("a separator must be followed by a rotation")
    rots: List[str] = []
    if move_given and i < n and chars[i] == NONE_KEY:
        i += 1
    else:
        while i < n and chars[i] in _ROT_CHARS and len(rots) < 2:
            rots.append(chars[i])
            i += 1
    if i != n:
        bad = chars[i]
        if bad in _MOVE_CHARS:
            raise ValueError(f"movement key {bad} out of place: write pairs as 'W+A', movement before rotation")
        if bad in _ROT_CHARS:
            raise ValueError("at most two rotation keys (one of ↑/↓ with one of ←/→)")
        raise ValueError(f"unknown key {text[i]!r}; {_HELP}")
    if len(set(moves)) != len(moves) or len(set(rots)) != len(rots):
        raise ValueError("a key is repeated inside one entry")
    _check_opposites(moves + rots)
    return CameraAction(_movement_key(moves), _rotation_key(rots))


def parse_entry(entry: str) -> CameraAction:
    """One script entry without repeat count (``W+A``, ``←``, ``W↑→``, ``W,→``, ``·``) -> action.

    Raises:
        ValueError: ``bad action '<entry>': <reason>`` (opposite keys, unknown key, wrong order).
    """
    try:
        return _parse_body(entry.strip())
    except ValueError as err:
        raise ValueError(f"bad action {entry!r}: {err}") from None


def parse_script(script: Union[str, Sequence[CameraAction]]) -> List[CameraAction]:
    """An action script (grammar in the module docstring) -> one action per segment.

    A list of :class:`CameraAction` is passed through (copied), so callers may take either.

    Raises:
        ValueError: an empty script, or ``entry N: bad action '<entry>': <reason>`` naming the
            first bad entry by its 1-based position.
    """
    if not isinstance(script, str):
        actions = list(script)
        for i, a in enumerate(actions):
            if not isinstance(a, CameraAction):
                raise ValueError(f"entry {i + 1}: expected a CameraAction, got {a!r}")
        if not actions:
            raise ValueError("the action list is empty; give at least one action")
        return actions
    entries = script.split()
    if not entries:
        raise ValueError("the action script is empty; write e.g. 'W W W+A ←'")
    actions: List[CameraAction] = []
    for i, e in enumerate(entries):
        body, count = e, 1
        if "*" in e:
            body, _, times = e.rpartition("*")
            if not times.isdigit() or int(times) < 1:
                raise ValueError(f"entry {i + 1}: bad action {e!r}: the repeat count after '*' must be a whole number >= 1")
            count = int(times)
        try:
            action = parse_entry(body)
        except ValueError as err:
            raise ValueError(f"entry {i + 1}: {err}") from None
        actions.extend([action] * count)
    return actions


def format_entry(action: CameraAction) -> str:
    """Canonical spelling of one action: ``·``, ``W+A``, ``←``, ``W+A↑→``."""
    if action.movement == NONE_KEY and action.rotation == NONE_KEY:
        return NONE_KEY
    return (action.movement if action.movement != NONE_KEY else "") + (action.rotation if action.rotation != NONE_KEY else "")


def format_script(actions: Iterable[CameraAction]) -> str:
    """Inverse of :func:`parse_script`: canonical entries joined by single spaces."""
    return " ".join(format_entry(a) for a in actions)


def speed_sentence(version: str = "v1", speed: Optional[Mapping[str, float]] = None) -> str:
    """Yume's speed sentence from the table's ``speed_format``.

    Args:
        version: ``v1`` or ``v1_5``.
        speed: ``distance`` (metres moved, as Yume's data: at 100 m/s scale), ``turn`` (angular
            change rate) and ``rotation`` (view rotation speed). Missing values take the v1
            table's defaults; v1_5 has no defaults and writes integers (its released format).

    Raises:
        ValueError: unknown version, unknown or missing keys, or a negative value.
    """
    table = _table(version)
    values = {**table.get("speed_default", {}), **dict(speed or {})}
    need = {"distance", "turn", "rotation"}
    extra = set(values) - need
    if extra:
        raise ValueError(f"unknown speed values {sorted(extra)}; use distance, turn and rotation")
    missing = need - set(values)
    if missing:
        raise ValueError(f"the {version} speed sentence needs {sorted(missing)} (it has no defaults)")
    for k, v in values.items():
        if float(v) < 0:
            raise ValueError(f"speed value {k}={v} must be >= 0")
    if table.get("speed_values") == "integers":
        values = {k: int(round(float(v))) for k, v in values.items()}
    return table["speed_format"].format(**values)


def _table(version: str) -> dict:
    if version not in SENTENCE_SETS:
        raise ValueError(f"unknown sentence set {version!r}; use 'v1' or 'v1_5'")
    return YUME_QCM[version]


def prefix_sentence(version: str = "v1") -> str:
    """The fixed sentence that opens Yume's action text in sentence set ``version``.

    Raises:
        ValueError: unknown version.
    """
    return _table(version)["prefix"]


def action_prompt(action: CameraAction, version: str = "v1", speed: Optional[dict] = None, prefix: bool = True) -> str:
    """Yume's text for one segment: prefix + movement + rotation (+ speed) sentences.

    Args:
        action: the segment's camera command.
        version: ``v1`` (Yume 1.0) or ``v1_5``.
        speed: values for the speed sentence (see :func:`speed_sentence`; ``{}`` takes the v1
            defaults), or None for no speed sentence.
        prefix: start with the set's fixed prefix sentence.

    Raises:
        ValueError: unknown version or bad speed values.
    """
    table = _table(version)
    parts = [prefix_sentence(version)] if prefix else []
    parts += [table["movement"][action.movement], table["rotation"][action.rotation]]
    if speed is not None:
        parts.append(speed_sentence(version, speed))
    return " ".join(parts)


def segment_prompt(content: str, action: CameraAction, version: str = "v1", speed: Optional[dict] = None,
                   prefix: bool = True) -> str:
    """The prompt of one long-video segment: the content prompt, then the action text of
    :func:`action_prompt` (empty content gives the action text alone)."""
    text = action_prompt(action, version, speed, prefix)
    content = (content or "").strip()
    return f"{content} {text}" if content else text


__all__ = [
    "SENTENCE_SETS", "action_from_keys", "action_prompt", "format_entry", "format_script", "parse_entry",
    "parse_script", "prefix_sentence", "segment_prompt", "speed_sentence", "MOVEMENT_KEYS", "ROTATION_KEYS",
]
