"""Key names of transformer checkpoints: the one Wan <-> ours table, the naming styles and the
model families they reveal.

Naming styles (detected from the names, :func:`detect_layout`):

- ``official``: the UnityVideo release (``base.*`` = Wan2.2 DiT under Wan names, plus
  ``flow_patch_embedding``, ``flow_in``, ``modality_embeddings.<m>``, ``flow_head``);
- ``wan``: original Wan names (Wan2.2-TI2V-5B, Yume-5B, ComfyUI's ``diffusion_models`` folder,
  optionally under ``model.diffusion_model.`` / ``diffusion_model.``);
- ``diffusers``: diffusers names (``WanTransformer3DModel`` and our own state dict).

Model families (:func:`checkpoint_kind`): ``unityvideo`` (the modality stream is in the file),
``yume`` (Yume-5B: stock Wan2.2-5B + the history patch embeddings of :data:`HISTORY_EMBEDDINGS`;
preset ``yume-5b``) and ``wan`` (a plain Wan DiT).

All renaming goes through one table (``_TOP_PAIRS`` / ``_BLOCK_PAIRS``): the loader, the saver
and the LoRA key conversion (:mod:`unity_core.model.lora`) use it in both directions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List

from unity_core.model.reader import CheckpointError, show, split_fp8_keys, strip_wan_prefix

if TYPE_CHECKING:
    from unity_core.model.config import UnityVideoConfig

# (Wan name, our name) prefixes; within each table the first match wins, so specific entries come
# first. One table serves both directions.
_TOP_PAIRS = [
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("head.modulation", "scale_shift_table"),
    ("head.head.", "proj_out."),
]
_BLOCK_PAIRS = [
    pair
    for wan, ours in (("self_attn", "attn1"), ("cross_attn", "attn2"))
    for pair in ((f"{wan}.q.", f"{ours}.to_q."), (f"{wan}.k.", f"{ours}.to_k."), (f"{wan}.v.", f"{ours}.to_v."),
                 (f"{wan}.o.", f"{ours}.to_out.0."), (f"{wan}.", f"{ours}."))
] + [
    ("norm3.", "norm2."),  # Wan's affine cross-attention norm is diffusers' norm2
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
    ("modulation", "scale_shift_table"),
]
_BLOCK_KEY = re.compile(r"^(blocks\.\d+\.)(.*)$")
#: parameter-name prefixes of UnityVideo's additions to the Wan base (the trainer gives them 10x the lr)
ADDITION_PREFIXES = ("flow_patch_embedding.", "flow_in.", "modality_embeddings.", "flow_head.",
                     "switcher_embeddings.", "switcher_mlp.")
#: Yume-5B's five history patch embeddings, the one list of their names (the same in every naming
#: style): module name -> (output channels: ``"dim"`` = the model width, ``"in"`` = the latent
#: channels; spatial kernel = stride, in latent pixels). ``patch_embedding_2x_f`` is latent to
#: latent and runs before ``patch_embedding_16x`` (the release's "64x" chain).
HISTORY_EMBEDDINGS = {
    "patch_embedding_2x": ("dim", 4),
    "patch_embedding_4x": ("dim", 8),
    "patch_embedding_8x": ("dim", 16),
    "patch_embedding_16x": ("dim", 32),
    "patch_embedding_2x_f": ("in", 4),
}
#: parameter-name prefixes of the history embeddings (``patch_embedding_2x.`` ...)
HISTORY_PREFIXES = tuple(f"{name}." for name in HISTORY_EMBEDDINGS)


def _rename(key: str, src: int, dst: int) -> str:
    """Rename by the first matching prefix in the pair tables (side ``src`` -> side ``dst``)."""
    m = _BLOCK_KEY.match(key)
    head, rest, table = (m.group(1), m.group(2), _BLOCK_PAIRS) if m else ("", key, _TOP_PAIRS)
    for pair in table:
        if rest.startswith(pair[src]):
            return head + pair[dst] + rest[len(pair[src]):]
    return key


def wan_key_to_ours(key: str) -> str:
    """Original Wan name (``blocks.0.self_attn.q.weight``) -> ours (``blocks.0.attn1.to_q.weight``)."""
    return _rename(key, 0, 1)


def ours_to_wan_key(key: str) -> str:
    """Our parameter name -> the original Wan name (as Wan2.2 and Yume-5B ship it).

    Names without a Wan counterpart (the UnityVideo additions, Yume's history embeddings) come
    back unchanged.
    """
    return _rename(key, 1, 0)


def official_key_to_ours(key: str) -> str:
    """Release name (``base.*`` or an addition) -> ours. Unknown names come back unchanged."""
    if key.startswith("base."):
        return wan_key_to_ours(key[len("base."):])
    return key


def ours_to_official_key(key: str) -> str:
    """Our parameter name -> the release's name (``base.`` + Wan name, additions unchanged)."""
    if key.startswith(ADDITION_PREFIXES):
        return key
    return "base." + _rename(key, 1, 0)


def release_key_function(config: "UnityVideoConfig") -> Callable[[str], str]:
    """The ours -> file-name function of a model family's own release layout.

    UnityVideo (``config.modality_stream``) -> :func:`ours_to_official_key` (``base.*`` + additions);
    Yume-5B / plain Wan (no modality stream) -> :func:`ours_to_wan_key` (original Wan names).
    """
    return ours_to_official_key if config.modality_stream else ours_to_wan_key


def detect_layout(keys: List[str]) -> str:
    """Return the naming style ``"official"``, ``"wan"`` or ``"diffusers"`` of checkpoint keys.

    Raises:
        CheckpointError: none of the known layouts.
    """
    stripped = [strip_wan_prefix(k) for k in keys]
    if any(k.startswith("base.") for k in stripped):
        return "official"
    if any(k.startswith("condition_embedder.") for k in stripped):
        return "diffusers"
    if any(k.startswith("time_embedding.") or ".self_attn." in k for k in stripped):
        return "wan"
    raise CheckpointError(
        "unrecognised checkpoint layout: expected UnityVideo (base.*), original Wan (blocks.N.self_attn.*) "
        f"or diffusers Wan (condition_embedder.*) names; first keys: {keys[:5]}"
    )


def checkpoint_kind(keys: Iterable[str]) -> str:
    """The model family of checkpoint keys: ``"unityvideo"``, ``"yume"`` or ``"wan"``.

    ``unityvideo``: the modality stream is present (``base.*`` or ``flow_*`` / ``modality_embeddings``);
    ``yume``: Yume-5B's history embeddings (``patch_embedding_2x`` ...) without a modality stream;
    ``wan``: a plain Wan DiT. Any naming style and ComfyUI prefix; fp8 scale keys are ignored.

    Raises:
        CheckpointError: the keys are no known transformer layout.
    """
    weights = split_fp8_keys(keys)[0]
    stripped = [strip_wan_prefix(k) for k in weights]
    detect_layout(weights)
    if any(k.startswith("base.") or k.startswith(ADDITION_PREFIXES) for k in stripped):
        return "unityvideo"
    if any(k.startswith(HISTORY_PREFIXES) for k in stripped):
        return "yume"
    return "wan"


def family_flags(names: Iterable[str]) -> Dict[str, bool]:
    """``modality_stream`` / ``history_embeddings`` as our-named keys imply them: the additions, or
    a plain Wan (neither additions nor history), turn the modality stream on; the history
    embeddings turn ``history_embeddings`` on (see :func:`unity_core.model.checkpoint.infer_config`)."""
    names = list(names)
    additions = any(k.startswith(ADDITION_PREFIXES) for k in names)
    history = any(k.startswith(HISTORY_PREFIXES) for k in names)
    return dict(modality_stream=additions or not history, history_embeddings=history)


def our_names(keys: List[str], layout: str, label: str) -> Dict[str, str]:
    """Map our parameter name -> the file's key (ComfyUI prefixes stripped in every layout).

    Raises:
        CheckpointError: several file keys map to the same parameter (mixed styles or prefixes).
    """
    to_ours = {"official": official_key_to_ours, "wan": wan_key_to_ours}.get(layout, lambda k: k)
    names: Dict[str, str] = {}
    clashes = []
    for k in keys:
        ours = to_ours(strip_wan_prefix(k))
        if ours in names:
            clashes.append(f"{names[ours]} and {k} -> {ours}")
        names[ours] = k
    if clashes:
        raise CheckpointError(f"{label}: several file keys map to the same parameter ({show(clashes)}); the file "
                              "mixes naming styles or prefixes; keep one copy of each tensor")
    return names


__all__ = ["ADDITION_PREFIXES", "HISTORY_EMBEDDINGS", "HISTORY_PREFIXES", "checkpoint_kind", "detect_layout",
           "family_flags", "official_key_to_ours", "our_names", "ours_to_official_key", "ours_to_wan_key",
           "release_key_function", "wan_key_to_ours"]
