"""Checkpoint loading and saving for :class:`UnityVideoTransformer` (safetensors first).

Layouts understood (detected from the key names):

- ``official``: the UnityVideo release (``base.*`` = Wan2.2 DiT under DiffSynth/Wan names, plus
  ``flow_patch_embedding``, ``flow_in``, ``modality_embeddings.<m>``, ``flow_head``); loaded
  strictly.
- ``wan``: a plain Wan checkpoint with original names (as Wan2.2-TI2V-5B ships and ComfyUI's
  ``diffusion_models`` folder holds, optionally under ``model.diffusion_model.``).
- ``diffusers``: a plain ``WanTransformer3DModel`` state dict (diffusers names).

Plain Wan checkpoints get the UnityVideo additions created as the release initialises them
(patch embedding and head copied, ``flow_in`` and modality embeddings zero), so fine-tuning can
start from base Wan. Weights stream tensor by tensor from a memory-mapped file into a model
built on the meta device, so RAM never holds two full copies. Pickle files are accepted only
through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch

from unity_core.model.config import UnityVideoConfig, get_config
from unity_core.model.transformer import UnityVideoTransformer

PathLike = Union[str, Path]
CONFIG_METADATA_KEY = "unityvideo_config"
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}
_WAN_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message lists what is wrong and the fix."""


# ----------------------------------------------------------------------------------------------
# Key maps: Wan original names <-> ours (diffusers names for the base)
# ----------------------------------------------------------------------------------------------

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
_ADDITION_PREFIXES = ("flow_patch_embedding.", "flow_in.", "modality_embeddings.", "flow_head.",
                      "switcher_embeddings.", "switcher_mlp.")


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


def official_key_to_ours(key: str) -> str:
    """Release name (``base.*`` or an addition) -> ours. Unknown names come back unchanged."""
    if key.startswith("base."):
        return wan_key_to_ours(key[len("base."):])
    return key


def ours_to_official_key(key: str) -> str:
    """Our parameter name -> the release's name (``base.`` + Wan name, additions unchanged)."""
    if key.startswith(_ADDITION_PREFIXES):
        return key
    return "base." + _rename(key, 1, 0)


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


class _Source:
    """Uniform, lazy access to the tensors of a safetensors file or a safely unpickled dict."""

    def __init__(self, path: Path):
        self.path = path
        self.metadata: Dict[str, str] = {}
        self._handle = None
        self._dict: Optional[Mapping[str, torch.Tensor]] = None
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except Exception as err:  # noqa: BLE001 - any failure means "not safely loadable"
                raise CheckpointError(
                    f"{path} is a pickle file that cannot be loaded with torch.load(weights_only=True) "
                    f"({type(err).__name__}: {str(err).splitlines()[0][:200]}); convert it to .safetensors"
                ) from None
            if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
                obj = obj["state_dict"]
            if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
                raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
            self._dict = obj
        else:
            from safetensors import safe_open

            try:
                self._handle = safe_open(str(path), framework="pt", device="cpu")
            except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
                raise CheckpointError(
                    f"{path} is not a readable safetensors file ({str(err)[:200]}); "
                    "it may be truncated (re-download it) or in another format"
                ) from None
            self.metadata = dict(self._handle.metadata() or {})

    def keys(self) -> List[str]:
        return list(self._dict.keys()) if self._dict is not None else list(self._handle.keys())

    def shape(self, key: str) -> Tuple[int, ...]:
        if self._dict is not None:
            return tuple(self._dict[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        if self._dict is not None:
            return self._dict[key]
        try:
            return self._handle.get_tensor(key)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{self.path}: tensor {key!r} cannot be read ({err}); the file may be truncated") from None


def detect_layout(keys: List[str]) -> str:
    """Return ``"official"``, ``"wan"`` or ``"diffusers"`` for a list of checkpoint keys.

    Raises:
        CheckpointError: none of the known layouts.
    """
    stripped = [_strip_wan_prefix(k) for k in keys]
    if any(k.startswith("base.") for k in keys):
        return "official"
    if any(k.startswith("condition_embedder.") for k in stripped):
        return "diffusers"
    if any(k.startswith("time_embedding.") or ".self_attn." in k for k in stripped):
        return "wan"
    raise CheckpointError(
        "unrecognised checkpoint layout: expected UnityVideo (base.*), original Wan (blocks.N.self_attn.*) "
        f"or diffusers Wan (condition_embedder.*) names; first keys: {keys[:5]}"
    )


def _strip_wan_prefix(key: str) -> str:
    for prefix in _WAN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def infer_config(shapes: Mapping[str, Tuple[int, ...]], head_dim: int = 128) -> UnityVideoConfig:
    """Infer a config from our-named tensor shapes. Heads are not visible in shapes: Wan uses a
    head dim of 128, which is assumed unless the file's metadata says otherwise."""
    if not any(k.startswith("blocks.") for k in shapes):
        raise CheckpointError("cannot infer the model config: the file holds no transformer blocks ('blocks.N.*'); "
                              "is it a UnityVideo / Wan transformer? (or pass config=)")
    try:
        d, c_in = shapes["patch_embedding.weight"][:2]
        patch = tuple(shapes["patch_embedding.weight"][2:])
        layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
        ffn = shapes["blocks.0.ffn.net.0.proj.weight"][0]
        text = shapes["condition_embedder.text_embedder.linear_1.weight"][1]
        freq = shapes["condition_embedder.time_embedder.linear_1.weight"][1]
        out = shapes["proj_out.weight"][0] // math.prod(patch)
    except KeyError as err:
        raise CheckpointError(f"cannot infer the model config: tensor {err} is missing; pass config=") from None
    mods = sorted(k.split(".")[1] for k in shapes if k.startswith("modality_embeddings."))
    switcher = any(k.startswith("switcher_mlp.") for k in shapes)
    kw = dict(dim=d, num_layers=layers, num_heads=max(1, d // head_dim), ffn_dim=ffn, in_channels=c_in,
              out_channels=out, text_dim=text, freq_dim=freq, patch_size=patch, modality_switcher=switcher)
    if mods:
        kw["modalities"] = tuple(mods)
    return UnityVideoConfig(**kw)


def _our_names(source: _Source, layout: str) -> Dict[str, str]:
    """Map our parameter name -> the file's key."""
    if layout == "official":
        return {official_key_to_ours(k): k for k in source.keys()}
    if layout == "wan":
        return {wan_key_to_ours(_strip_wan_prefix(k)): k for k in source.keys()}
    return {_strip_wan_prefix(k): k for k in source.keys()}


def load_transformer(
    path: PathLike,
    config: Union[None, str, Mapping, UnityVideoConfig] = None,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
) -> UnityVideoTransformer:
    """Load a UnityVideo transformer from a checkpoint file.

    Args:
        path: ``.safetensors`` (preferred) or a pickle file loadable with ``weights_only=True``.
        config: preset name, mapping or config; None reads the file's metadata (files we save)
            or infers it from the tensor shapes (head dim 128, as in Wan).
        dtype: parameter dtype (float32, bfloat16 or float16); each tensor is cast as it streams.
        device: where the parameters live.

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable/truncated file, unsafe pickle, unknown layout, or (for the
            official layout) missing / unexpected / mis-shaped keys, all listed in one message.
    """
    path = Path(path)
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    source = _Source(path)
    keys = source.keys()
    layout = detect_layout(keys)
    names = _our_names(source, layout)
    shapes = {ours: source.shape(k) for ours, k in names.items()}

    if config is None and CONFIG_METADATA_KEY in source.metadata:
        config = json.loads(source.metadata[CONFIG_METADATA_KEY])
    cfg = get_config(config) if config is not None else infer_config(shapes)
    with torch.device("meta"):
        model = UnityVideoTransformer(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    plain_wan = layout in ("wan", "diffusers")
    required = {k for k in expected if not (plain_wan and k.startswith(_ADDITION_PREFIXES))}
    missing = sorted(required - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(f"{k}: file {shapes[k]} vs model {expected[k]}" for k in set(shapes) & set(expected) if shapes[k] != expected[k])
    if missing or unexpected or wrong:
        def show(items):
            return ", ".join(items[:20]) + (f" ... (+{len(items) - 20} more)" if len(items) > 20 else "")

        parts = [f"{path.name} ({layout} layout) does not match the model config {cfg.to_json()}:"]
        if missing:
            parts.append(f"missing keys [{len(missing)}]: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys [{len(unexpected)}]: {show([names[k] for k in unexpected])}")
        if wrong:
            parts.append(f"mis-shaped [{len(wrong)}]: {show(wrong)}")
        parts.append("check that the file and the preset/config belong together")
        raise CheckpointError("\n".join(parts))

    state: Dict[str, torch.Tensor] = {}
    for ours in expected:
        if ours in names:
            state[ours] = source.get(names[ours]).to(device=device, dtype=dtype)
    if plain_wan:  # the UnityVideo additions start as zeros, then as the release initialises them
        for key, shape in expected.items():
            state.setdefault(key, torch.zeros(shape, dtype=dtype, device=device))
    model.load_state_dict(state, strict=True, assign=True)
    if plain_wan:
        model.reset_unity_parameters()
    return model.eval()


def official_state_dict(model: UnityVideoTransformer) -> Dict[str, torch.Tensor]:
    """The model's parameters under the release's key names (``base.*`` + additions)."""
    return {ours_to_official_key(k): v for k, v in model.state_dict().items()}


def save_transformer(model: UnityVideoTransformer, path: PathLike, dtype: Optional[torch.dtype] = None,
                     overwrite: bool = False) -> Path:
    """Save in the release's layout as safetensors, with the config in the file's metadata.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (nothing is replaced silently).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another name or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in official_state_dict(model).items():
        v = v.detach()
        tensors[k] = (v.to(dtype) if dtype is not None else v).contiguous().cpu()
    save_file(tensors, str(path), metadata={CONFIG_METADATA_KEY: model.config.to_json()})
    return path
