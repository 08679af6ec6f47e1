"""Checkpoint loading and saving for :class:`UnityVideoTransformer` (safetensors first), and LoRA.

Containers understood by :func:`load_transformer`:

- one file: ``.safetensors`` (preferred) or a pickle that ``torch.load(weights_only=True)`` accepts;
- sharded safetensors with an index (``*.safetensors.index.json`` holding a ``weight_map``), as
  Wan2.2-TI2V-5B ships its DiT (3 shards) and as diffusers' ``save_pretrained`` writes them; pass
  the index file or its folder;
- a diffusers-layout folder: ``config.json`` + ``diffusion_pytorch_model*.safetensors``. The
  config may be ours (``UnityVideoTransformer.save_pretrained``), diffusers'
  ``WanTransformer3DModel`` or Wan's own ``WanModel`` (Wan2.2 and Yume folders);
- ComfyUI's fp8 files: plain fp8 tensors, or "scaled" ones (a ``scaled_fp8`` marker tensor and a
  ``<module>.scale_weight`` per quantised weight, optionally ``<module>.scale_input``). Weights
  are dequantised tensor by tensor as ``weight.float() * scale_weight`` into the requested dtype;
  ``scale_input`` only serves ComfyUI's fp8 matmul and is not needed once dequantised.

Key naming styles (detected from the names, :func:`detect_layout`):

- ``official``: the UnityVideo release (``base.*`` = Wan2.2 DiT under Wan names, plus
  ``flow_patch_embedding``, ``flow_in``, ``modality_embeddings.<m>``, ``flow_head``);
- ``wan``: original Wan names (Wan2.2-TI2V-5B, Yume-5B, ComfyUI's ``diffusion_models`` folder,
  optionally under ``model.diffusion_model.`` / ``diffusion_model.``);
- ``diffusers``: diffusers names (``WanTransformer3DModel`` and our own state dict).

Model families (:func:`checkpoint_kind`): ``unityvideo`` (the modality stream is in the file),
``yume`` (Yume-5B: stock Wan2.2-5B + ``patch_embedding_2x/_4x/_8x/_16x/_2x_f``; preset
``yume-5b``) and ``wan`` (a plain Wan DiT: loaded as UnityVideo with the additions created as the
release initialises them, so fine-tuning can start from base Wan).

Every container and style is checked strictly: one :class:`CheckpointError` lists the missing,
unexpected and mis-shaped keys together. Weights stream tensor by tensor from memory-mapped files
into a model built on the meta device, so RAM never holds two full copies of the weights.

All renaming goes through one table (``_TOP_PAIRS`` / ``_BLOCK_PAIRS``): the loaders, the savers
and the LoRA key conversion (:func:`lora_target_keys`, :func:`load_lora`) use it in both directions.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

from unity_core.constants import MODALITIES
from unity_core.model.config import PRESETS, UnityVideoConfig, config_schema, get_config
from unity_core.model.transformer import UnityVideoTransformer

PathLike = Union[str, Path]
CONFIG_METADATA_KEY = "unityvideo_config"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DIFFUSERS_DEFAULT_SHARD_SIZE = "10GB"  # diffusers' save_pretrained default
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}
_WAN_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
_FP8_MARKER = "scaled_fp8"
_SCALE_NAMES = ("scale_weight", "scale_input")
_FP8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                    if hasattr(torch, n))
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


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
#: parameter-name prefixes of UnityVideo's additions to the Wan base (the trainer gives them 10x the lr)
ADDITION_PREFIXES = ("flow_patch_embedding.", "flow_in.", "modality_embeddings.", "flow_head.",
                     "switcher_embeddings.", "switcher_mlp.")
_ADDITION_PREFIXES = ADDITION_PREFIXES
# Yume-5B's history patch embeddings (same names in every style).
_HISTORY_PREFIXES = ("patch_embedding_2x.", "patch_embedding_4x.", "patch_embedding_8x.", "patch_embedding_16x.",
                     "patch_embedding_2x_f.")


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
    if key.startswith(_ADDITION_PREFIXES):
        return key
    return "base." + _rename(key, 1, 0)


def release_key_function(config: UnityVideoConfig):
    """The ours -> file-name function of a model family's own release layout.

    UnityVideo (``config.modality_stream``) -> :func:`ours_to_official_key` (``base.*`` + additions);
    Yume-5B / plain Wan (no modality stream) -> :func:`ours_to_wan_key` (original Wan names).
    """
    return ours_to_official_key if config.modality_stream else ours_to_wan_key


def _strip_wan_prefix(key: str) -> str:
    for prefix in _WAN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


# ----------------------------------------------------------------------------------------------
# Reading: one file, or shards with an index
# ----------------------------------------------------------------------------------------------


class _Source:
    """Uniform, lazy access to the tensors of a safetensors file or a safely unpickled dict."""

    def __init__(self, path: Path):
        self.path = path
        self.label = path.name
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
            raise CheckpointError(
                f"{self.path}: tensor {key!r} cannot be read ({err}); the file may be truncated"
            ) from None


class _ShardedSource:
    """Shards named by a ``*.safetensors.index.json`` (``{"weight_map": {key: shard file}}``).

    Every shard is opened (headers only, memory-mapped) up front, so a missing shard or a shard
    that disagrees with the index is reported before any weight is read.
    """

    def __init__(self, index_path: Path):
        self.path = index_path
        self.label = index_path.name
        if not index_path.is_file():
            raise FileNotFoundError(f"checkpoint index {index_path} does not exist")
        try:
            index = json.loads(index_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{index_path} is not a readable JSON index ({err}); re-download it") from None
        weight_map = index.get("weight_map") if isinstance(index, Mapping) else None
        if not isinstance(weight_map, Mapping) or not weight_map:
            raise CheckpointError(
                f"{index_path} has no 'weight_map' {{tensor name: shard file}}; is it a safetensors index?"
            )
        self._where: Dict[str, str] = {str(k): str(v) for k, v in weight_map.items()}
        folder = index_path.parent
        shards = sorted(set(self._where.values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            counts = Counter(v for v in self._where.values() if v in missing)
            listed = ", ".join(f"{s} ({counts[s]} tensors)" for s in missing)
            raise CheckpointError(
                f"{index_path.name} names {len(missing)} of {len(shards)} shards that are missing from {folder}: "
                f"{listed}; download the missing shard file(s) next to the index"
            )
        self._shards = {s: _Source(folder / s) for s in shards}
        problems = []
        for name, src in self._shards.items():
            held = set(src.keys())
            listed = {k for k, v in self._where.items() if v == name}
            absent, extra = sorted(listed - held), sorted(held - listed)
            if absent:
                problems.append(f"{name} lacks {len(absent)} tensors the index puts there: {_show(absent)}")
            if extra:
                problems.append(f"{name} holds {len(extra)} tensors the index does not list: {_show(extra)}")
        if problems:
            raise CheckpointError(f"{index_path.name} and its shards disagree:\n" + "\n".join(problems)
                                  + "\nre-download the shards and the index together")
        self.metadata: Dict[str, str] = {}
        for src in self._shards.values():  # our shards carry the config; any shard will do
            self.metadata.update(src.metadata)
        meta = index.get("metadata") or {}
        self.metadata.update({k: v for k, v in meta.items() if isinstance(v, str)})

    def keys(self) -> List[str]:
        return list(self._where)

    def shape(self, key: str) -> Tuple[int, ...]:
        return self._shards[self._where[key]].shape(key)

    def get(self, key: str) -> torch.Tensor:
        return self._shards[self._where[key]].get(key)


def _show(items: List[str], limit: int = 20) -> str:
    return ", ".join(items[:limit]) + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")


def _open_checkpoint(path: Path):
    """Resolve a file / index / folder into (source, folder config dict or None)."""
    if path.is_dir():
        indexes = sorted(path.glob("*.safetensors.index.json"))
        singles = sorted(path.glob("*.safetensors"))
        pickles = sorted(p for p in path.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        if len(indexes) > 1:
            raise CheckpointError(f"{path} holds several shard indexes ({', '.join(p.name for p in indexes)}); "
                                  "pass the index file to load")
        if indexes:
            source = _ShardedSource(indexes[0])
        elif len(singles) == 1 or (path / DIFFUSERS_WEIGHTS_NAME).is_file():
            source = _Source(singles[0] if len(singles) == 1 else path / DIFFUSERS_WEIGHTS_NAME)
        elif singles:
            raise CheckpointError(f"{path} holds several weight files ({', '.join(p.name for p in singles)}) and no "
                                  "index; pass the file to load")
        elif len(pickles) == 1:
            source = _Source(pickles[0])
        else:
            pipeline = (path / "transformer").is_dir()
            hint = "; it looks like a pipeline folder: pass its transformer/ subfolder" if pipeline else ""
            raise CheckpointError(f"{path} holds no weights: expected {DIFFUSERS_WEIGHTS_NAME}, sharded "
                                  f"safetensors with a *.safetensors.index.json, or one .safetensors file{hint}")
        config_path = path / "config.json"
    elif path.name.endswith(".index.json"):
        source = _ShardedSource(path)
        config_path = path.parent / "config.json"
    else:
        return _Source(path), None
    folder_config = None
    if config_path.is_file():
        try:
            folder_config = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{config_path} is not readable JSON ({err}); fix or delete it") from None
    return source, folder_config


def config_from_folder_json(data: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """Our config fields from a model folder's ``config.json``, or None for an unknown config.

    Understood: ours (``_class_name`` ``UnityVideoTransformer``, as ``save_pretrained`` writes it),
    diffusers' ``WanTransformer3DModel`` (``num_attention_heads`` x ``attention_head_dim``) and
    Wan's own ``WanModel`` (``dim``, ``in_dim``, ``out_dim``; Wan2.2 and Yume folders). Modality
    flags are not read from Wan configs: the keys decide them (see :func:`infer_config`).

    Raises:
        CheckpointError: an image-conditioned diffusers Wan (``image_dim`` / ``added_kv_proj_dim``),
            which this model does not have.
    """
    fields = set(config_schema())
    cls = data.get("_class_name")
    if cls == "UnityVideoTransformer" or (cls is None and "modalities" in data):
        return {k: v for k, v in data.items() if k in fields}
    if cls == "WanTransformer3DModel" or "attention_head_dim" in data:
        if data.get("image_dim") or data.get("added_kv_proj_dim"):
            raise CheckpointError("this diffusers Wan folder is image-conditioned (image_dim / added_kv_proj_dim set); "
                                  "UnityVideo builds on the text/image-to-video 5B DiT without an image embedder")
        heads, head_dim = int(data["num_attention_heads"]), int(data["attention_head_dim"])
        names = dict(num_layers="num_layers", ffn_dim="ffn_dim", in_channels="in_channels", out_channels="out_channels",
                     text_dim="text_dim", freq_dim="freq_dim", patch_size="patch_size", eps="eps")
        out = {ours: data[theirs] for ours, theirs in names.items() if data.get(theirs) is not None}
        return dict(out, dim=heads * head_dim, num_heads=heads)
    if cls == "WanModel" or "in_dim" in data:
        names = dict(dim="dim", num_heads="num_heads", num_layers="num_layers", ffn_dim="ffn_dim",
                     in_channels="in_dim", out_channels="out_dim", text_dim="text_dim", freq_dim="freq_dim",
                     patch_size="patch_size", eps="eps")
        return {ours: data[theirs] for ours, theirs in names.items() if data.get(theirs) is not None}
    return None


# ----------------------------------------------------------------------------------------------
# Layout, family and config from the keys
# ----------------------------------------------------------------------------------------------


def _split_fp8_keys(keys: Iterable[str]) -> Tuple[List[str], Dict[str, str], List[str], bool]:
    """Split file keys into (weight keys, {weight key: scale_weight key}, orphan scale keys, marker)."""
    keys = list(keys)
    present = set(keys)
    weights, scales, orphans, marker = [], {}, [], False
    for k in keys:
        leaf = k.rsplit(".", 1)[-1]
        if _strip_wan_prefix(k) == _FP8_MARKER:
            marker = True
        elif leaf in _SCALE_NAMES and "." in k:
            weight = k[: -len(leaf)] + "weight"
            if weight not in present:
                orphans.append(k)
            elif leaf == "scale_weight":
                scales[weight] = k
        else:
            weights.append(k)
    return weights, scales, orphans, marker


def detect_layout(keys: List[str]) -> str:
    """Return the naming style ``"official"``, ``"wan"`` or ``"diffusers"`` of checkpoint keys.

    Raises:
        CheckpointError: none of the known layouts.
    """
    stripped = [_strip_wan_prefix(k) for k in keys]
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
    weights = _split_fp8_keys(keys)[0]
    stripped = [_strip_wan_prefix(k) for k in weights]
    detect_layout(weights)
    if any(k.startswith("base.") or k.startswith(_ADDITION_PREFIXES) for k in stripped):
        return "unityvideo"
    if any(k.startswith(_HISTORY_PREFIXES) for k in stripped):
        return "yume"
    return "wan"


def _family_flags(names: Iterable[str]) -> Dict[str, bool]:
    """``modality_stream`` / ``history_embeddings`` as our-named keys imply them (see :func:`infer_config`)."""
    names = list(names)
    additions = any(k.startswith(_ADDITION_PREFIXES) for k in names)
    history = any(k.startswith(_HISTORY_PREFIXES) for k in names)
    return dict(modality_stream=additions or not history, history_embeddings=history)


def known_num_heads(dim: int) -> Optional[int]:
    """The head count of a known width: a preset's (:data:`~unity_core.model.config.PRESETS`:
    3072 -> 24 for the 5B, 256 -> 4 for the shipped default) or a released Wan DiT's (1536 -> 12
    for Wan2.1-1.3B, 5120 -> 40 for the 14B models; head dim 128). None for any other width."""
    return _KNOWN_HEADS.get(int(dim))


_KNOWN_HEADS: Dict[int, int] = {1536: 12, 5120: 40, **{c.dim: c.num_heads for c in map(get_config, PRESETS)}}


def infer_config(shapes: Mapping[str, Tuple[int, ...]]) -> UnityVideoConfig:
    """Infer a config from our-named tensor shapes.

    Heads are not visible in shapes (the q/k RMSNorm spans the whole width): they come from the
    width when it is a known one (:func:`known_num_heads`); any other width is refused rather
    than guessed (a wrong head count loads without error and changes every output).
    ``modality_stream`` is on when the additions are present, or for a
    plain Wan (they are then created as the release initialises them); off for Yume-5B files,
    whose ``patch_embedding_2x...`` keys turn ``history_embeddings`` on (5B shapes = preset
    ``yume-5b``).

    Raises:
        CheckpointError: no transformer blocks, a tensor needed for inference is missing, or a
            width that is no known one (pass ``config=`` with ``num_heads``).
    """
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
    found = {k.split(".")[1] for k in shapes if k.startswith("modality_embeddings.")}
    mods = [m for m in MODALITIES if m in found] + sorted(found - set(MODALITIES))  # the presets' order
    switcher = any(k.startswith("switcher_mlp.") for k in shapes)
    heads = known_num_heads(d)
    if heads is None:
        raise CheckpointError(
            f"cannot infer the model config: the file has no config metadata and its width {d} is no known preset "
            f"({', '.join(f'{w}: {h} heads' for w, h in sorted(_KNOWN_HEADS.items()))}), so the head count is "
            "unknown; pass config= (a preset name, or the model's config as a mapping with its num_heads), or load a "
            "file saved by save_transformer (it records its config)")
    kw = dict(dim=d, num_layers=layers, num_heads=heads, ffn_dim=ffn, in_channels=c_in,
              out_channels=out, text_dim=text, freq_dim=freq, patch_size=patch, modality_switcher=switcher,
              **_family_flags(shapes))
    if mods:
        kw["modalities"] = tuple(mods)
    return UnityVideoConfig(**kw)


def _our_names(keys: List[str], layout: str, label: str) -> Dict[str, str]:
    """Map our parameter name -> the file's key (ComfyUI prefixes stripped in every layout)."""
    to_ours = {"official": official_key_to_ours, "wan": wan_key_to_ours}.get(layout, lambda k: k)
    names: Dict[str, str] = {}
    clashes = []
    for k in keys:
        ours = to_ours(_strip_wan_prefix(k))
        if ours in names:
            clashes.append(f"{names[ours]} and {k} -> {ours}")
        names[ours] = k
    if clashes:
        raise CheckpointError(f"{label}: several file keys map to the same parameter ({_show(clashes)}); the file "
                              "mixes naming styles or prefixes; keep one copy of each tensor")
    return names


def _build_meta_model(cfg: UnityVideoConfig) -> UnityVideoTransformer:
    """The model with every parameter on the meta device (no memory); weights are assigned later."""
    with torch.device("meta"):
        return UnityVideoTransformer.from_config(cfg)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _dequantize(t: torch.Tensor, scale: Optional[torch.Tensor]) -> torch.Tensor:
    """fp8 weight (x per-tensor or per-output-channel scale) -> float32; other tensors unchanged."""
    if scale is None:
        return t.float() if t.dtype in _FP8_DTYPES else t
    s = scale.float()
    if s.numel() > 1 and s.dim() <= 1:
        s = s.reshape(-1, *([1] * (t.dim() - 1)))  # one scale per output channel
    return t.float() * s


def _dtype_of(model: UnityVideoTransformer, name: str, dtype: torch.dtype) -> torch.dtype:
    """float32 for the model's ``_keep_in_fp32_modules`` tensors (as ``from_pretrained`` keeps them), else ``dtype``."""
    return torch.float32 if model._fp32_kept(name) else dtype


def load_transformer(
    path: PathLike,
    config: Union[None, str, Mapping, UnityVideoConfig] = None,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
) -> UnityVideoTransformer:
    """Load a UnityVideo / Yume / Wan transformer from any checkpoint container users have.

    Args:
        path: a ``.safetensors`` file (or a pickle loadable with ``weights_only=True``), a
            ``*.safetensors.index.json`` shard index, or a folder holding either (diffusers layout:
            ``config.json`` + ``diffusion_pytorch_model*.safetensors``). fp8 and ComfyUI
            scaled-fp8 files are dequantised tensor by tensor.
        config: preset name (``"wan2.2-ti2v-5b"``, ``"yume-5b"``, ...), mapping or config; None
            reads the file's metadata (files we save), else the folder's ``config.json`` (ours,
            diffusers' ``WanTransformer3DModel`` or Wan's ``WanModel``), else infers it from the
            tensor shapes where the width is a known one (see :func:`infer_config`; any other
            width needs ``config=``).
        dtype: parameter dtype (float32, bfloat16 or float16); each tensor is cast as it streams,
            except those of the model's ``_keep_in_fp32_modules`` (time embedder, modulation
            tables, cross-attention norm), which load as float32 as ``from_pretrained`` keeps them.
        device: where the parameters live.

    Returns:
        The model in eval mode. A plain Wan checkpoint gets the UnityVideo additions created as the
        release initialises them (when the config has the modality stream).

    Raises:
        FileNotFoundError: no such file, folder or index.
        CheckpointError: unreadable/truncated file, missing or inconsistent shard, unsafe pickle,
            unknown layout, or missing / unexpected / mis-shaped keys, all listed in one message.
    """
    path = Path(path)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    source, folder_config = _open_checkpoint(path)
    weights, scales, orphans, _ = _split_fp8_keys(source.keys())
    layout = detect_layout(weights)
    names = _our_names(weights, layout, source.label)
    shapes = {ours: source.shape(k) for ours, k in names.items()}

    if config is None and CONFIG_METADATA_KEY in source.metadata:
        config = json.loads(source.metadata[CONFIG_METADATA_KEY])
    if config is None and folder_config is not None:
        found = config_from_folder_json(folder_config)
        if found is not None and folder_config.get("_class_name") != "UnityVideoTransformer":
            found.update(_family_flags(shapes))  # Wan configs say nothing of the modality stream / history tiers
        config = found
    cfg = get_config(config) if config is not None else infer_config(shapes)
    model = _build_meta_model(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    # A file without any of the additions is a plain Wan: they are created, not required.
    fill = cfg.modality_stream and not any(k.startswith(_ADDITION_PREFIXES) for k in shapes)
    required = {k for k in expected if not (fill and k.startswith(_ADDITION_PREFIXES))}
    missing = sorted(required - set(shapes))
    unexpected = sorted([names[k] for k in set(shapes) - set(expected)] + orphans)
    wrong = sorted(f"{k}: file {shapes[k]} vs model {expected[k]}"
                   for k in set(shapes) & set(expected) if shapes[k] != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{source.label} ({layout} layout) does not match the model config {cfg.to_json()}:"]
        if missing:
            parts.append(f"missing keys [{len(missing)}]: {_show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys [{len(unexpected)}]: {_show(unexpected)}")
        if wrong:
            parts.append(f"mis-shaped [{len(wrong)}]: {_show(wrong)}")
        parts.append("check that the file and the preset/config belong together")
        raise CheckpointError("\n".join(parts))

    state: Dict[str, torch.Tensor] = {}
    for ours in expected:
        if ours in names:
            key = names[ours]
            scale = source.get(scales[key]) if key in scales else None
            state[ours] = _dequantize(source.get(key), scale).to(device=device, dtype=_dtype_of(model, ours, dtype))
    if fill:  # the UnityVideo additions start as zeros, then as the release initialises them
        for key, shape in expected.items():
            state.setdefault(key, torch.zeros(shape, dtype=_dtype_of(model, key, dtype), device=device))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"internal: tensors left on the meta device after loading: {_show(left)}")
    if fill:
        model.reset_unity_parameters()
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------


def official_state_dict(model: UnityVideoTransformer) -> Dict[str, torch.Tensor]:
    """The model's parameters under its family's release names.

    UnityVideo: ``base.*`` + additions (the release); a model without the modality stream
    (Yume-5B, plain Wan): original Wan names, as those checkpoints ship.
    """
    to_file = release_key_function(model.unity_config)
    return {to_file(k): v for k, v in model.state_dict().items()}


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _parse_size(size: Union[int, str]) -> int:
    """Bytes from an int or a string such as ``"5GB"`` / ``"500MiB"`` (diffusers' units)."""
    if isinstance(size, int):
        value = size
    else:
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(size))
        if not m or m.group(2).upper() not in _SIZE_UNITS:
            raise ValueError(f"max_shard_size {size!r} is not a size; use bytes or e.g. '5GB', '500MB'")
        value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    if value <= 0:
        raise ValueError(f"max_shard_size must be positive, got {size!r}")
    return value


def _plan_shards(sizes: List[Tuple[str, int]], max_bytes: int) -> List[List[str]]:
    """Greedy shards in key order, each at most ``max_bytes`` unless one tensor alone is larger."""
    shards: List[List[str]] = []
    current: List[str] = []
    used = 0
    for key, n in sizes:
        if current and used + n > max_bytes:
            shards.append(current)
            current, used = [], 0
        current.append(key)
        used += n
    if current:
        shards.append(current)
    return shards


def save_transformer(
    model: UnityVideoTransformer,
    path: PathLike,
    dtype: Optional[torch.dtype] = None,
    overwrite: bool = False,
    layout: str = "official",
    max_shard_size: Union[None, int, str] = None,
) -> Path:
    """Save the transformer as safetensors in the release's or diffusers' layout.

    Args:
        model: the transformer.
        path: ``layout="official"``: the ``.safetensors`` file name; with ``max_shard_size`` the
            shards ``<stem>-00001-of-0000N.safetensors`` and ``<name>.index.json`` go beside it.
            ``layout="diffusers"``: a folder that receives ``config.json`` and
            ``diffusion_pytorch_model.safetensors`` (or shards + index), as ``save_pretrained``
            writes them, so ``UnityVideoTransformer.from_pretrained`` and :func:`load_transformer`
            both read it.
        dtype: cast each tensor as it is written (None keeps the model's dtypes).
        overwrite: replace existing files (the old files of that checkpoint, stale shards
            included, are removed first). False refuses.
        layout: ``"official"`` (release names: :func:`official_state_dict`) or ``"diffusers"``
            (our parameter names = diffusers' for the Wan base).
        max_shard_size: bytes or a string like ``"5GB"``; None = one file for ``official`` and
            diffusers' 10 GB default for ``diffusers``.

    Returns:
        The written file, index file (official, sharded) or folder (diffusers).

    Raises:
        ValueError: unknown layout, bad size or dtype, an official path not ending in
            ``.safetensors``, or a model that still holds LoRA adapters (merge or save them apart).
        FileExistsError: a target exists and ``overwrite`` is False (nothing is replaced silently).
    """
    from safetensors.torch import save_file

    if layout not in ("official", "diffusers"):
        raise ValueError(f"layout must be 'official' or 'diffusers', got {layout!r}")
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype must be None, float32, bfloat16 or float16, got {dtype}")
    path = Path(path)
    adapted = [k for k in model.state_dict() if ".base_layer." in k or ".lora_" in k]
    if adapted:
        raise ValueError(f"the model holds LoRA adapters ({adapted[0]}, ...); merge them first "
                         "(model.fuse_lora(); model.unload_lora()) or save them with model.save_lora_adapter()")
    cfg_json = model.unity_config.to_json()
    if layout == "official":
        if path.suffix != ".safetensors":
            raise ValueError(f"official checkpoints are .safetensors files; got {path.name!r}")
        folder, stem = path.parent, path.stem
        state = official_state_dict(model)
        metadata = {"format": "pt", CONFIG_METADATA_KEY: cfg_json}
    else:
        if path.suffix in (".safetensors", ".json"):
            raise ValueError(f"the diffusers layout is a folder; got the file name {path.name!r}")
        folder, stem = path, DIFFUSERS_WEIGHTS_NAME[: -len(".safetensors")]
        state = dict(model.state_dict())
        metadata = {"format": "pt", CONFIG_METADATA_KEY: cfg_json}
        if max_shard_size is None:
            max_shard_size = DIFFUSERS_DEFAULT_SHARD_SIZE

    def nbytes(t: torch.Tensor) -> int:
        return t.numel() * (torch.empty((), dtype=dtype or t.dtype).element_size())

    if max_shard_size is None:
        shards = [list(state)]
    else:
        shards = _plan_shards([(k, nbytes(v)) for k, v in state.items()], _parse_size(max_shard_size))
    n = len(shards)
    files = [f"{stem}.safetensors"] if n == 1 else [f"{stem}-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    index_name = f"{stem}.safetensors.index.json"
    targets = [folder / f for f in files] + ([folder / index_name] if n > 1 else [])
    if layout == "diffusers":
        targets.append(folder / "config.json")
    previous: List[Path] = []
    if folder.is_dir():
        for pattern in (f"{stem}.safetensors", f"{stem}-*-of-*.safetensors", index_name):
            previous += sorted(folder.glob(pattern))
    clash = sorted({str(p) for p in targets if p.exists()} | {str(p) for p in previous})
    if clash and not overwrite:
        raise FileExistsError(f"{clash[0]} exists ({len(clash)} file(s) of this checkpoint); choose another "
                              "name or pass overwrite=True")
    for p in previous:  # overwrite: stale shards / indexes would otherwise shadow the new files
        if p not in targets:
            p.unlink()
    folder.mkdir(parents=True, exist_ok=True)

    weight_map: Dict[str, str] = {}
    total = 0
    for name, keys in zip(files, shards):
        tensors = {}
        for k in keys:
            v = state[k].detach()
            tensors[k] = (v.to(dtype) if dtype is not None else v).contiguous().cpu()
            total += tensors[k].numel() * tensors[k].element_size()
            weight_map[k] = name
        # Write beside, then rename: a model loaded from this very file keeps its memory-mapped
        # weights (rewriting the file in place would change them under it, or fault them).
        tmp = folder / f".{name}.partial"
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, folder / name)
        del tensors
    if n > 1:
        index = {"metadata": {"total_size": total, CONFIG_METADATA_KEY: cfg_json}, "weight_map": weight_map}
        (folder / index_name).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if layout == "diffusers":
        model.save_config(str(folder))
        return folder
    return folder / index_name if n > 1 else folder / files[0]


# ----------------------------------------------------------------------------------------------
# LoRA: Wan / ComfyUI / diffusers names -> our modules, loaded through PEFT
# ----------------------------------------------------------------------------------------------

_LORA_DOWN = (".lora_A.weight", ".lora_down.weight")
_LORA_UP = (".lora_B.weight", ".lora_up.weight")
_LORA_ALPHA = ".alpha"
_LORA_DIFF, _LORA_DIFF_B = ".diff", ".diff_b"  # full-weight and bias deltas (ComfyUI's "diff" patches)
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers' save_lora_adapter: the LoraConfig as JSON


def _pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    """PEFT's pattern rule: a key matches a module name it ends (regex, after a dot or at the start)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def lora_target_keys(model: UnityVideoTransformer) -> Dict[str, str]:
    """Every name a LoRA file may give a layer of ``model`` -> our weight key.

    Covers each ``nn.Linear`` / ``nn.Conv3d`` of the model under the naming styles in use, all
    derived from the one key map: original Wan (``blocks.0.self_attn.q``), ComfyUI
    (``diffusion_model.blocks.0.self_attn.q``), kohya / musubi-tuner
    (``lora_unet_blocks_0_self_attn_q``), diffusers (``blocks.0.attn1.to_q`` and
    ``transformer.blocks.0.attn1.to_q``) and, for UnityVideo models, the release
    (``base.blocks.0.self_attn.q``). Values are our parameter names (``blocks.0.attn1.to_q.weight``),
    the shape of ComfyUI's LoRA key map (LoRA module name -> model weight key).
    """
    targets: Dict[str, str] = {}
    for name, module in model.named_modules():
        if ".base_layer" in name or ".lora_" in name:  # PEFT's own sub-layers of an adapted layer
            continue
        if not isinstance(_base_layer(module), (nn.Linear, nn.Conv3d)) or not name:
            continue
        ours = f"{name}.weight"
        wan = ours_to_wan_key(ours)[: -len(".weight")]
        variants = [name, f"transformer.{name}", wan, f"diffusion_model.{wan}", "lora_unet_" + wan.replace(".", "_")]
        if model.unity_config.modality_stream:
            variants.append(ours_to_official_key(ours)[: -len(".weight")])
        for v in variants:
            targets.setdefault(v, ours)
    return targets


def _base_layer(module: nn.Module) -> nn.Module:
    """The plain layer under a PEFT-adapted one (itself when not adapted)."""
    get = getattr(module, "get_base_layer", None)
    return get() if callable(get) else module


def _diff_as_factors(diff: Optional[torch.Tensor], weight: torch.Tensor,
                     dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    """A full-weight delta ``[out, in]`` as exact LoRA factors of rank ``min(out, in)`` (one of
    them the identity, so ``B @ A == diff`` with no rounding); None (a bias delta alone): rank-1
    zero factors, the bias riding on ``lora_B``."""
    out, fan_in = weight.shape[0], math.prod(weight.shape[1:])
    if diff is None:
        return {"A": torch.zeros(1, fan_in, dtype=dtype), "B": torch.zeros(out, 1, dtype=dtype)}
    if fan_in <= out:
        return {"A": torch.eye(fan_in, dtype=diff.dtype), "B": diff}
    return {"A": diff, "B": torch.eye(out, dtype=diff.dtype)}


@dataclass
class PeftLora:
    """A LoRA converted to PEFT's form for our model.

    Attributes:
        state_dict: ``{<our module>.lora_A.weight: [r, in], <our module>.lora_B.weight: [out, r]}``.
        lora_config: ``peft.LoraConfig`` keyword arguments (``r``, ``lora_alpha``,
            ``target_modules``, ``rank_pattern``, ``alpha_pattern``); scale = alpha / r per module.
        unknown: file keys that name no layer of the model (or are no LoRA factor / alpha).
    """

    state_dict: Dict[str, torch.Tensor]
    lora_config: Dict[str, Any]
    unknown: List[str] = field(default_factory=list)

    @property
    def modules(self) -> List[str]:
        return list(self.lora_config["target_modules"])


def lora_state_dict_to_peft(
    state_dict: Mapping[str, torch.Tensor],
    model: UnityVideoTransformer,
    adapter_metadata: Optional[Mapping[str, Any]] = None,
) -> PeftLora:
    """Convert a Wan-format or diffusers-format LoRA state dict to PEFT's form for ``model``.

    Accepted per layer: ``<name>.lora_A.weight`` / ``.lora_down.weight`` (A, ``[r, in]``),
    ``<name>.lora_B.weight`` / ``.lora_up.weight`` (B, ``[out, r]``) and an optional ``<name>.alpha``
    (scale = alpha / r), where ``<name>`` is any variant of :func:`lora_target_keys`; and, as
    ComfyUI applies them, ``<name>.diff`` (a full-weight delta ``[out, in]``, added at scale 1:
    carried as exact factors of rank ``min(out, in)``) and ``<name>.diff_b`` (a bias delta
    ``[out]``, carried as ``lora_B``'s bias with PEFT's ``lora_bias``), on linear layers. Without an
    alpha key the alpha comes from ``adapter_metadata`` (the LoraConfig that diffusers'
    ``save_lora_adapter`` stores in the file: ``lora_alpha`` / ``alpha_pattern``), else alpha = r
    (scale 1).

    Raises:
        CheckpointError: a layer with only one of A / B, factors or deltas whose shapes do not fit
            the layer, both factors and a diff for one layer, or two names for the same layer (all
            listed in one message), or no recognised layer.
    """
    targets = lora_target_keys(model)
    meta = {k.removeprefix("transformer."): v for k, v in (adapter_metadata or {}).items()}
    parts: Dict[str, Dict[str, Any]] = {}
    seen_as: Dict[str, str] = {}
    unknown, problems = [], []
    for key, value in state_dict.items():
        for suffix, slot in ([(s, "A") for s in _LORA_DOWN] + [(s, "B") for s in _LORA_UP] + [(_LORA_ALPHA, "alpha")]
                             + [(_LORA_DIFF, "diff"), (_LORA_DIFF_B, "diff_b")]):
            if key.endswith(suffix) and key[: -len(suffix)] in targets:
                file_name = key[: -len(suffix)]
                module = targets[file_name][: -len(".weight")]
                if seen_as.setdefault(module, file_name) != file_name:
                    problems.append(f"{module} is named both {seen_as[module]} and {file_name}")
                parts.setdefault(module, {})[slot] = value
                break
        else:
            unknown.append(key)
    sd: Dict[str, torch.Tensor] = {}
    ranks: Dict[str, int] = {}
    alphas: Dict[str, float] = {}
    biases: Dict[str, torch.Tensor] = {}
    for module, got in sorted(parts.items()):
        layer = _base_layer(model.get_submodule(module))
        w = layer.weight
        factors = "A" in got or "B" in got
        if "diff" in got or ("diff_b" in got and not factors):
            if "diff" in got and factors:
                problems.append(f"{seen_as[module]}: has both LoRA factors and a full-weight diff; keep one")
                continue
            diff = got.get("diff")
            if diff is not None and (w.dim() != 2 or tuple(diff.shape) != tuple(w.shape)):
                problems.append(f"{seen_as[module]}.diff: shape {tuple(diff.shape)} does not fit the layer weight "
                                f"{tuple(w.shape)} (only linear layers take a diff here)")
                continue
            dtype = (diff if diff is not None else got["diff_b"]).dtype
            got = {**got, **_diff_as_factors(diff, w, dtype), "alpha": None}
        if "A" not in got or "B" not in got:
            problems.append(f"{seen_as[module]}: has {sorted(got)} but needs both lora_A/lora_down and lora_B/lora_up")
            continue
        a, b = got["A"], got["B"]
        r = a.shape[0]
        fits = (a.dim() == 2 and b.dim() == 2 and b.shape[1] == r and b.shape[0] == w.shape[0]
                and a.shape[1] == math.prod(w.shape[1:]) and w.dim() == 2)
        if not fits:
            fan_in = w.shape[1] if w.dim() == 2 else "?"
            problems.append(f"{seen_as[module]}: A {tuple(a.shape)} / B {tuple(b.shape)} do not fit the layer weight "
                            f"{tuple(w.shape)} (expected A [r, {fan_in}], B [{w.shape[0]}, r]; "
                            "only linear layers take LoRA here)")
            continue
        sd[f"{module}.lora_A.weight"] = a
        sd[f"{module}.lora_B.weight"] = b
        ranks[module] = r
        if got.get("alpha", 0) is None:  # a diff: scale 1, as ComfyUI adds it (times the strength)
            alphas[module] = float(r)
        elif "alpha" in got:
            alphas[module] = float(got["alpha"])
        else:
            alphas[module] = float(_pattern_value(meta.get("alpha_pattern") or {}, module, meta.get("lora_alpha", r)))
        if "diff_b" in got:
            bias = getattr(layer, "bias", None)
            if bias is None or tuple(got["diff_b"].shape) != tuple(bias.shape):
                problems.append(f"{seen_as[module]}.diff_b: shape {tuple(got['diff_b'].shape)} does not fit the layer "
                                f"bias {None if bias is None else tuple(bias.shape)}")
                continue
            # PEFT's lora_bias: lora_B's bias, scaled with the rest of the adapter's output
            biases[module] = got["diff_b"] / (alphas[module] / r)
    if biases:  # lora_bias gives every adapted layer a lora_B bias: zero where the file has none
        for module in ranks:
            b = sd[f"{module}.lora_B.weight"]
            sd[f"{module}.lora_B.bias"] = biases.get(module, torch.zeros(b.shape[0], dtype=b.dtype))
    if problems:
        raise CheckpointError(f"LoRA does not fit the model ({len(problems)} problem(s)):\n" + "\n".join(problems))
    if not ranks:
        raise CheckpointError(f"no LoRA layer of this file names a layer of the model; first keys: "
                              f"{list(state_dict)[:5]} (expected e.g. blocks.0.self_attn.q.lora_A.weight or "
                              "transformer.blocks.0.attn1.to_q.lora_A.weight)")
    r = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    config = dict(
        r=r,
        lora_alpha=alpha,
        target_modules=sorted(ranks),
        # peft matches pattern keys as regexes against the end of the module name
        rank_pattern={re.escape(m): v for m, v in ranks.items() if v != r},
        alpha_pattern={re.escape(m): v for m, v in alphas.items() if v != alpha},
        lora_bias=bool(biases),
    )
    return PeftLora(state_dict=sd, lora_config=config, unknown=sorted(unknown))


def load_lora(
    model: UnityVideoTransformer,
    lora: Union[PathLike, Mapping[str, torch.Tensor]],
    adapter_name: str = "default",
    strict: bool = True,
) -> PeftLora:
    """Load a Wan / ComfyUI / diffusers LoRA into ``model`` as a PEFT adapter.

    Keys are converted by :func:`lora_state_dict_to_peft` (the one key map), then handed to the
    model's ``PeftAdapterMixin.load_lora_adapter``; ``model.set_adapters`` / ``disable_lora`` /
    ``fuse_lora`` etc. then work as in diffusers. The effect on a layer is
    ``W x + (alpha / r) * B (A x)`` (plus ``diff_b`` where the file has bias deltas).

    Args:
        model: the transformer (any preset).
        lora: a ``.safetensors`` file (or a ``weights_only`` pickle) or a state dict. A file's
            diffusers adapter metadata (``save_lora_adapter``) supplies alphas missing as keys.
        adapter_name: PEFT adapter name (must be new for the model).
        strict: True refuses a file with keys that name no layer (listed); False loads the rest
            and reports them in the result's ``unknown``.

    Returns:
        The converted :class:`PeftLora` (``modules`` loaded, ``unknown`` keys).

    Raises:
        CheckpointError: unknown keys with ``strict``, or see :func:`lora_state_dict_to_peft`.
        FileNotFoundError: no such file.
        unity_core.extras.MissingExtraError: peft (the ``lora`` extra) is not installed.
    """
    from unity_core.extras import require

    require("peft", "lora", "loading a LoRA into the library's transformer (load_lora, --lora)")
    adapter_metadata = None
    if not isinstance(lora, Mapping):
        source = _Source(Path(lora))
        lora = {k: source.get(k) for k in source.keys()}
        if LORA_ADAPTER_METADATA_KEY in source.metadata:
            try:
                adapter_metadata = json.loads(source.metadata[LORA_ADAPTER_METADATA_KEY])
            except json.JSONDecodeError as err:
                raise CheckpointError(
                    f"{source.path}: its {LORA_ADAPTER_METADATA_KEY!r} header is not JSON ({err})"
                ) from None
    converted = lora_state_dict_to_peft(lora, model, adapter_metadata)
    if converted.unknown and strict:
        raise CheckpointError(f"LoRA keys that name no layer of the model [{len(converted.unknown)}]: "
                              f"{_show(converted.unknown)}; pass strict=False to load the rest")
    model.load_lora_adapter(converted.state_dict, prefix=None, adapter_name=adapter_name,
                            metadata=dict(converted.lora_config))
    return converted
