"""The one reader of weight files: safetensors (through ``safetensors.safe_open``), safe pickles,
sharded safetensors with an index, ComfyUI's fp8 / scaled-fp8 tensors, and the strict key check.

Used by the transformer loader (:func:`unity_core.model.checkpoint.load_transformer`), the LoRA
loader (:func:`unity_core.model.lora.load_lora`) and the single-file UMT5 text encoder
(:meth:`unity_core.text.UMT5TextEncoder.from_single_file`).

- :class:`WeightFile`: one file, ``.safetensors`` (memory-mapped, read tensor by tensor) or a
  pickle that ``torch.load(weights_only=True)`` accepts (``.pt``, ``.pth``, ``.bin``, ``.ckpt``).
- :class:`ShardedWeights`: the shards a ``*.safetensors.index.json`` names (``weight_map``),
  checked against the index before any weight is read.
- fp8: :func:`split_fp8_keys` separates weights from ComfyUI's ``<module>.scale_weight`` /
  ``scale_input`` tensors and its ``scaled_fp8`` marker; :func:`dequantize` gives
  ``weight.float() * scale_weight`` (per tensor or per output channel).
- :func:`check_keys`: one :class:`CheckpointError` listing the missing, unexpected and
  mis-shaped keys together.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

PathLike = Union[str, Path]
PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}
#: Prefixes ComfyUI's files put before the model's own key names (stripped in every naming style).
WAN_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
#: ComfyUI's marker tensor of a "scaled" fp8 file.
FP8_MARKER = "scaled_fp8"
#: ComfyUI's per-module scale tensors of scaled fp8 files (``<module>.scale_weight`` / ``.scale_input``).
SCALE_NAMES = ("scale_weight", "scale_input")
FP8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                   if hasattr(torch, n))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message lists what is wrong and the fix."""


def show(items: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` items, comma-separated, with the count of the rest."""
    items = list(items)
    return ", ".join(items[:limit]) + (f" ... (+{len(items) - limit} more)" if len(items) > limit else "")


def strip_wan_prefix(key: str) -> str:
    """``model.diffusion_model.blocks.0...`` / ``diffusion_model.blocks.0...`` -> ``blocks.0...``."""
    for prefix in WAN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


# ----------------------------------------------------------------------------------------------
# One file, or shards with an index
# ----------------------------------------------------------------------------------------------


class WeightFile:
    """Uniform, lazy access to the tensors of a safetensors file or a safely unpickled dict.

    A ``.safetensors`` file is opened with ``safetensors.safe_open`` (header checked, data
    memory-mapped: :meth:`get` returns tensors backed by the file's pages, which are read on
    first touch). A pickle (suffix in :data:`PICKLE_SUFFIXES`) is loaded with
    ``torch.load(weights_only=True, mmap=True)``; a ``{"state_dict": {...}}`` wrapper is unwrapped.

    Attributes:
        path: the file.
        label: its name, for messages.
        metadata: the safetensors ``__metadata__`` (``{}`` for pickles).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a pickle that ``weights_only`` refuses or that is no flat dict of tensors,
            or a safetensors file that cannot be opened (truncated, or another format).
    """

    def __init__(self, path: PathLike):
        path = Path(path)
        self.path = path
        self.label = path.name
        self.metadata: Dict[str, str] = {}
        self._handle = None
        self._dict: Optional[Mapping[str, torch.Tensor]] = None
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        if path.suffix.lower() in PICKLE_SUFFIXES:
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
        """Tensor names, in the file's order."""
        return list(self._dict.keys()) if self._dict is not None else list(self._handle.keys())

    def shape(self, key: str) -> Tuple[int, ...]:
        """A tensor's shape, read from the header (no data is read)."""
        if self._dict is not None:
            return tuple(self._dict[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        """One tensor (CPU, the file's dtype; memory-mapped for safetensors).

        Raises:
            CheckpointError: the tensor's bytes cannot be read (truncated file).
        """
        if self._dict is not None:
            return self._dict[key]
        try:
            return self._handle.get_tensor(key)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(
                f"{self.path}: tensor {key!r} cannot be read ({err}); the file may be truncated"
            ) from None


class ShardedWeights:
    """Shards named by a ``*.safetensors.index.json`` (``{"weight_map": {key: shard file}}``).

    Every shard is opened (headers only, memory-mapped) up front, so a missing shard or a shard
    that disagrees with the index is reported before any weight is read. ``metadata`` merges the
    shards' ``__metadata__`` with the index's string ``metadata`` entries.

    Raises:
        FileNotFoundError: no such index.
        CheckpointError: unreadable index, no ``weight_map``, missing shard files (listed with
            their tensor counts), or shards that hold other tensors than the index says.
    """

    def __init__(self, index_path: PathLike):
        index_path = Path(index_path)
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
        self._shards = {s: WeightFile(folder / s) for s in shards}
        problems = []
        for name, src in self._shards.items():
            held = set(src.keys())
            listed = {k for k, v in self._where.items() if v == name}
            absent, extra = sorted(listed - held), sorted(held - listed)
            if absent:
                problems.append(f"{name} lacks {len(absent)} tensors the index puts there: {show(absent)}")
            if extra:
                problems.append(f"{name} holds {len(extra)} tensors the index does not list: {show(extra)}")
        if problems:
            raise CheckpointError(f"{index_path.name} and its shards disagree:\n" + "\n".join(problems)
                                  + "\nre-download the shards and the index together")
        self.metadata: Dict[str, str] = {}
        for src in self._shards.values():  # our shards carry the config; any shard will do
            self.metadata.update(src.metadata)
        meta = index.get("metadata") or {}
        self.metadata.update({k: v for k, v in meta.items() if isinstance(v, str)})

    def keys(self) -> List[str]:
        """Tensor names, in the index's order."""
        return list(self._where)

    def shape(self, key: str) -> Tuple[int, ...]:
        """A tensor's shape, from its shard's header."""
        return self._shards[self._where[key]].shape(key)

    def get(self, key: str) -> torch.Tensor:
        """One tensor, from its shard (see :meth:`WeightFile.get`)."""
        return self._shards[self._where[key]].get(key)


# ----------------------------------------------------------------------------------------------
# fp8
# ----------------------------------------------------------------------------------------------


def split_fp8_keys(keys: Iterable[str]) -> Tuple[List[str], Dict[str, str], List[str], bool]:
    """Split file keys into ``(weight keys, {weight key: its scale_weight key}, orphan scale keys,
    marker present)``.

    ``<module>.scale_weight`` / ``<module>.scale_input`` belong to ``<module>.weight`` (orphans:
    no such weight); the ``scaled_fp8`` marker (after any ComfyUI prefix) is no weight. Every
    other key, in the given order, is a weight key.
    """
    keys = list(keys)
    present = set(keys)
    weights, scales, orphans, marker = [], {}, [], False
    for k in keys:
        leaf = k.rsplit(".", 1)[-1]
        if strip_wan_prefix(k) == FP8_MARKER:
            marker = True
        elif leaf in SCALE_NAMES and "." in k:
            weight = k[: -len(leaf)] + "weight"
            if weight not in present:
                orphans.append(k)
            elif leaf == "scale_weight":
                scales[weight] = k
        else:
            weights.append(k)
    return weights, scales, orphans, marker


def dequantize(t: torch.Tensor, scale: Optional[torch.Tensor]) -> torch.Tensor:
    """fp8 weight (x per-tensor or per-output-channel ``scale``) -> float32; other tensors unchanged.

    Args:
        t: a tensor as stored (any dtype).
        scale: its ``scale_weight`` (``[]``, ``[1]`` or ``[out]``), or None.

    Returns:
        ``t.float() * scale`` when a scale is given; ``t.float()`` for an unscaled fp8 tensor;
        ``t`` itself (the same object) otherwise.
    """
    if scale is None:
        return t.float() if t.dtype in FP8_DTYPES else t
    s = scale.float()
    if s.numel() > 1 and s.dim() <= 1:
        s = s.reshape(-1, *([1] * (t.dim() - 1)))  # one scale per output channel
    return t.float() * s


# ----------------------------------------------------------------------------------------------
# The strict check
# ----------------------------------------------------------------------------------------------


def check_keys(
    what: str,
    expected: Mapping[str, Tuple[int, ...]],
    found: Mapping[str, Tuple[int, ...]],
    fix: str,
    required: Optional[Iterable[str]] = None,
    file_name: Optional[Callable[[str], str]] = None,
    also_unexpected: Iterable[str] = (),
) -> None:
    """Compare a file's tensors with a model's; raise one error listing every difference.

    Args:
        what: the message's first line, e.g. ``"m.safetensors (wan layout) does not match ..."``.
        expected: the model's tensor name -> shape.
        found: the file's tensors under the model's names -> shape.
        fix: the message's last line (what to do).
        required: the expected names that must be present (default: all of ``expected``).
        file_name: how an unexpected name is shown (its key in the file); default: as is.
        also_unexpected: further file keys to report as unexpected (e.g. orphan fp8 scales).

    Raises:
        CheckpointError: ``missing keys [n]``, ``unexpected keys [n]`` and ``mis-shaped [n]``
            (``name: file (shape) vs model (shape)``) lines, each list sorted.
    """
    required = set(expected) if required is None else set(required)
    name = file_name or (lambda k: k)
    missing = sorted(required - set(found))
    unexpected = sorted([name(k) for k in set(found) - set(expected)] + list(also_unexpected))
    wrong = sorted(f"{k}: file {tuple(found[k])} vs model {tuple(expected[k])}"
                   for k in set(found) & set(expected) if tuple(found[k]) != tuple(expected[k]))
    if not (missing or unexpected or wrong):
        return
    parts = [f"{what}:"]
    if missing:
        parts.append(f"missing keys [{len(missing)}]: {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys [{len(unexpected)}]: {show(unexpected)}")
    if wrong:
        parts.append(f"mis-shaped [{len(wrong)}]: {show(wrong)}")
    parts.append(fix)
    raise CheckpointError("\n".join(parts))


__all__ = ["CheckpointError", "FP8_DTYPES", "FP8_MARKER", "PICKLE_SUFFIXES", "SCALE_NAMES", "ShardedWeights",
           "WAN_PREFIXES", "WeightFile", "check_keys", "dequantize", "show", "split_fp8_keys", "strip_wan_prefix"]
