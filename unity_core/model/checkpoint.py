"""Checkpoint loading and saving for :class:`UnityVideoTransformer` (safetensors first).

Containers understood by :func:`load_transformer` (read by :mod:`unity_core.model.reader`):

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

Key naming styles (``official``, ``wan``, ``diffusers``) and model families (``unityvideo``,
``yume``, ``wan``) are detected from the names (:mod:`unity_core.model.keys`); a plain Wan DiT is
loaded as UnityVideo with the additions created as the release initialises them, so fine-tuning
can start from base Wan.

Every container and style is checked strictly: one :class:`CheckpointError` lists the missing,
unexpected and mis-shaped keys together. Weights stream tensor by tensor from memory-mapped files
into a model built on the meta device, so RAM never holds two full copies of the weights.

:func:`save_transformer` writes the release's layout or diffusers' (one file, or shards planned
by ``huggingface_hub``'s splitter, as diffusers' ``save_pretrained`` plans them). LoRA lives in
:mod:`unity_core.model.lora`.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch

from unity_core.constants import MODALITIES
from unity_core.model.config import PRESETS, UnityVideoConfig, config_schema, get_config
from unity_core.model.keys import ADDITION_PREFIXES, detect_layout, family_flags, our_names, release_key_function
from unity_core.model.reader import (PICKLE_SUFFIXES, CheckpointError, PathLike, ShardedWeights, WeightFile,
                                     check_keys, dequantize, show, split_fp8_keys)
from unity_core.model.transformer import UnityVideoTransformer

CONFIG_METADATA_KEY = "unityvideo_config"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DIFFUSERS_DEFAULT_SHARD_SIZE = "10GB"  # diffusers' save_pretrained default
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# ----------------------------------------------------------------------------------------------
# Containers and configs
# ----------------------------------------------------------------------------------------------


def _open_checkpoint(path: Path):
    """Resolve a file / index / folder into (source, folder config dict or None)."""
    if path.is_dir():
        indexes = sorted(path.glob("*.safetensors.index.json"))
        singles = sorted(path.glob("*.safetensors"))
        pickles = sorted(p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if len(indexes) > 1:
            raise CheckpointError(f"{path} holds several shard indexes ({', '.join(p.name for p in indexes)}); "
                                  "pass the index file to load")
        if indexes:
            source = ShardedWeights(indexes[0])
        elif len(singles) == 1 or (path / DIFFUSERS_WEIGHTS_NAME).is_file():
            source = WeightFile(singles[0] if len(singles) == 1 else path / DIFFUSERS_WEIGHTS_NAME)
        elif singles:
            raise CheckpointError(f"{path} holds several weight files ({', '.join(p.name for p in singles)}) and no "
                                  "index; pass the file to load")
        elif len(pickles) == 1:
            source = WeightFile(pickles[0])
        else:
            pipeline = (path / "transformer").is_dir()
            hint = "; it looks like a pipeline folder: pass its transformer/ subfolder" if pipeline else ""
            raise CheckpointError(f"{path} holds no weights: expected {DIFFUSERS_WEIGHTS_NAME}, sharded "
                                  f"safetensors with a *.safetensors.index.json, or one .safetensors file{hint}")
        config_path = path / "config.json"
    elif path.name.endswith(".index.json"):
        source = ShardedWeights(path)
        config_path = path.parent / "config.json"
    else:
        return WeightFile(path), None
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
# Config from the tensor shapes
# ----------------------------------------------------------------------------------------------


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
              **family_flags(shapes))
    if mods:
        kw["modalities"] = tuple(mods)
    return UnityVideoConfig(**kw)


def _build_meta_model(cfg: UnityVideoConfig) -> UnityVideoTransformer:
    """The model with every parameter on the meta device (no memory); weights are assigned later."""
    with torch.device("meta"):
        return UnityVideoTransformer.from_config(cfg)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


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
    weights, scales, orphans, _ = split_fp8_keys(source.keys())
    layout = detect_layout(weights)
    names = our_names(weights, layout, source.label)
    shapes = {ours: source.shape(k) for ours, k in names.items()}

    if config is None and CONFIG_METADATA_KEY in source.metadata:
        config = json.loads(source.metadata[CONFIG_METADATA_KEY])
    if config is None and folder_config is not None:
        found = config_from_folder_json(folder_config)
        if found is not None and folder_config.get("_class_name") != "UnityVideoTransformer":
            found.update(family_flags(shapes))  # Wan configs say nothing of the modality stream / history tiers
        config = found
    cfg = get_config(config) if config is not None else infer_config(shapes)
    model = _build_meta_model(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}

    # A file without any of the additions is a plain Wan: they are created, not required.
    fill = cfg.modality_stream and not any(k.startswith(ADDITION_PREFIXES) for k in shapes)
    required = {k for k in expected if not (fill and k.startswith(ADDITION_PREFIXES))}
    check_keys(f"{source.label} ({layout} layout) does not match the model config {cfg.to_json()}", expected, shapes,
               "check that the file and the preset/config belong together", required=required,
               file_name=names.__getitem__, also_unexpected=orphans)

    state: Dict[str, torch.Tensor] = {}
    for ours in expected:
        if ours in names:
            key = names[ours]
            scale = source.get(scales[key]) if key in scales else None
            state[ours] = dequantize(source.get(key), scale).to(device=device, dtype=_dtype_of(model, ours, dtype))
    if fill:  # the UnityVideo additions start as zeros, then as the release initialises them
        for key, shape in expected.items():
            state.setdefault(key, torch.zeros(shape, dtype=_dtype_of(model, key, dtype), device=device))
    model.load_state_dict(state, strict=True, assign=True)
    del state
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"internal: tensors left on the meta device after loading: {show(left)}")
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


def _plan_shards(state: Mapping[str, torch.Tensor], stem: str, dtype: Optional[torch.dtype],
                 max_bytes: Optional[int]) -> Dict[str, List[str]]:
    """Shard file name -> its keys, as diffusers' ``save_pretrained`` plans them.

    ``max_bytes`` None: one file ``<stem>.safetensors``. Else ``huggingface_hub``'s
    ``split_torch_state_dict_into_shards`` (diffusers' planner): keys in order, a new shard when
    the next tensor would pass ``max_bytes``, a tensor larger than ``max_bytes`` alone in its own
    shard; files ``<stem>.safetensors`` (one shard) or ``<stem>-0000i-of-0000N.safetensors``.
    Sizes are those written (in ``dtype`` when given): the planner sees meta tensors of that
    dtype, so nothing is cast or copied, and tensors that share memory are not grouped (our
    state dicts hold none; ``save_file`` refuses them).
    """
    if max_bytes is None:
        return {f"{stem}.safetensors": list(state)}
    from huggingface_hub import split_torch_state_dict_into_shards

    sized = {k: torch.empty(v.shape, dtype=dtype or v.dtype, device="meta") for k, v in state.items()}
    pattern = stem.replace("{", "{{").replace("}", "}}") + "{suffix}.safetensors"
    split = split_torch_state_dict_into_shards(sized, filename_pattern=pattern, max_shard_size=max_bytes)
    return {name: list(keys) for name, keys in split.filename_to_tensors.items()}


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
            diffusers' 10 GB default for ``diffusers``. Shards are planned as diffusers plans them
            (``huggingface_hub.split_torch_state_dict_into_shards``, on the sizes as written).

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
    metadata = {"format": "pt", CONFIG_METADATA_KEY: cfg_json}
    if layout == "official":
        if path.suffix != ".safetensors":
            raise ValueError(f"official checkpoints are .safetensors files; got {path.name!r}")
        folder, stem = path.parent, path.stem
        state = official_state_dict(model)
    else:
        if path.suffix in (".safetensors", ".json"):
            raise ValueError(f"the diffusers layout is a folder; got the file name {path.name!r}")
        folder, stem = path, DIFFUSERS_WEIGHTS_NAME[: -len(".safetensors")]
        state = dict(model.state_dict())
        if max_shard_size is None:
            max_shard_size = DIFFUSERS_DEFAULT_SHARD_SIZE

    plan = _plan_shards(state, stem, dtype, None if max_shard_size is None else _parse_size(max_shard_size))
    files, n = list(plan), len(plan)
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
    for name, keys in plan.items():
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
