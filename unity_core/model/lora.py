"""LoRA for :class:`~unity_core.model.transformer.UnityVideoTransformer`: Wan / ComfyUI / kohya /
diffusers / release names -> our layers through the one key map (:mod:`unity_core.model.keys`),
loaded as a PEFT adapter (``PeftAdapterMixin.load_lora_adapter``).

:func:`lora_target_keys` lists every name a file may give a layer; :func:`lora_state_dict_to_peft`
converts a LoRA state dict (factors, alphas, ComfyUI's ``diff`` / ``diff_b`` deltas) to PEFT's
form; :func:`load_lora` reads a file (through :class:`~unity_core.model.reader.WeightFile`) and
loads it into the model.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn

from unity_core.model.keys import ours_to_official_key, ours_to_wan_key
from unity_core.model.reader import CheckpointError, PathLike, WeightFile, show
from unity_core.model.transformer import UnityVideoTransformer


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
        source = WeightFile(Path(lora))
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
                              f"{show(converted.unknown)}; pass strict=False to load the rest")
    model.load_lora_adapter(converted.state_dict, prefix=None, adapter_name=adapter_name,
                            metadata=dict(converted.lora_config))
    return converted


__all__ = ["LORA_ADAPTER_METADATA_KEY", "PeftLora", "load_lora", "lora_state_dict_to_peft", "lora_target_keys"]
