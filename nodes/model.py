"""UnityVideo as a native ComfyUI model: a ``comfy.model_base.BaseModel`` around our transformer.

The loader wraps the result in ComfyUI's ``ModelPatcher`` (the ``MODEL`` socket), so ComfyUI's
memory manager loads, offloads and partially loads it, and every core sampler, scheduler, guider
and model patch reaches it. What this module adds to ComfyUI's pattern:

- **Operations.** After :func:`unity_core.model.load_transformer` has read a checkpoint (with the
  one key map of ``unity_core/model/keys.py``), :func:`adapt_transformer` swaps each
  ``nn.Linear`` / ``nn.Conv3d`` / affine ``LayerNorm`` / ``RMSNorm`` in place for the class
  ``comfy.ops.pick_operations`` gives (the same parameters, cast to the storage dtype), so fp8
  storage casts per layer, lowvram streams the weights layer by layer and LoRA patches apply as
  ComfyUI's own Wan models do. Bare parameters (modulation tables, modality embeddings) are read
  through the transformer's ``cast_parameter`` seam, which becomes ``comfy.model_management.cast_to``.
- **Sampling.** ``ModelType.FLOW`` with Wan's multiplier 1000: the transformer sees
  timestep = sigma x 1000, and ``ModelSamplingSD3`` replaces the shift (default 1, the release's
  uniform grid).
- **The packed latent.** A UnityVideo task samples two streams at once. They travel as one
  LATENT, side by side in width: ``[B, C, F, H, 2W]``, the RGB stream in ``[..., :W]`` and the
  modality stream in ``[..., W:]``. Why width: it is the release's own token layout (the two
  token grids join to (f, h, 2w)), and it keeps the latent a plain Wan latent with the codec's
  channel count, so core's latent format (process_in / out), latent previews (both streams show
  side by side) and noise (drawn over the whole packed tensor from the seed) all work unchanged.
  Channels would break previews and every node that reads the channel count; frames would
  break the causal VAE and the RoPE time axis.
- **Clean stream.** The task node's noise mask is 0 over the conditioning stream. Core's
  ``KSamplerX0Inpaint`` then feeds that half as ``scale_latent_inpaint(...)``, which here (as for
  core WAN22) is the clean latent itself, never re-noised; the model is conditioned on one
  shared timestep (the noised stream's), the release's semantics. (Core WAN22 derives
  per-frame timesteps from the mask; that is not what UnityVideo was trained with.)
- **Hooks.** The transformer's forward runs inside core's ``WrappersMP.DIFFUSION_MODEL`` wrapper
  executor with ``transformer_options`` as the last positional argument (so ``EasyCache``,
  ``TorchCompileModel`` and other wrappers hook in), and block replacement patches
  (``patches_replace["dit"][("double_block", i)]``) run through the transformer's
  ``block_runner`` seam.

The task, modality and modality prompt travel in the conditioning, written by the task node:
``unityvideo_modality`` (name), ``unityvideo_modality_context`` (``[1, L', text_dim]``) and
``unityvideo_packed`` (True: the latent is packed). Conditioning without them runs the RGB
stream alone (a plain Wan forward: the 5B's base, Yume, or control guidance's free branch).
A Yume-5B walk segment (``nodes/yume.py``) writes ``unityvideo_yume_history`` (N): the first N
latent frames are clean history and the forward is Yume-5B's packed one (:func:`transformer_call`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn as nn

import comfy.conds
import comfy.latent_formats
import comfy.lora
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.patcher_extension
import comfy.supported_models_base

from unity_core.model import UnityVideoTransformer

#: conditioning keys written by the task node and read by :class:`UnityVideoModel`
COND_MODALITY = "unityvideo_modality"
COND_MODALITY_CONTEXT = "unityvideo_modality_context"
COND_PACKED = "unityvideo_packed"
#: the task the task node built the latent for (the control guider checks it)
COND_TASK = "unityvideo_task"
#: a conditioning key the control guider sets on its free branch: run the RGB half alone
COND_RGB_ONLY = "unityvideo_rgb_only"
#: the number N of clean Yume-5B history latents at the front of the latent (the Yume segment node's LATENT)
COND_YUME_HISTORY = "unityvideo_yume_history"
#: ``transformer_options`` key of the block-cache patch (nodes/sampling.py's BlockCachePatch)
BLOCK_CACHE_KEY = "unityvideo_block_cache"

WEIGHT_DTYPES = {"default": None, "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}

_RGB_FACTORS_FILE = Path(__file__).resolve().parent / "latent_rgb_default.json"


# ----------------------------------------------------------------------------------------------
# Latent formats
# ----------------------------------------------------------------------------------------------


class UnityVideoDefaultLatent(comfy.latent_formats.LatentFormat):
    """Latent format of the embedded default's 16-channel codec (a small Wan VAE, ``[B, 16, f, h, w]``).

    Our codec already returns normalised latents (``(z - mean) / std``), so ``process_in`` /
    ``process_out`` are the identity. ``latent_rgb_factors`` ``[16, 3]`` and the bias ``[3]`` map a
    latent to a preview in [-1, 1]; they are a least-squares fit on synthworld clips, stored in
    ``nodes/latent_rgb_default.json`` (refit with ``python scripts/fit_latent_rgb.py``).
    """

    latent_channels = 16
    latent_dimensions = 3
    scale_factor = 1.0

    def __init__(self):
        if _RGB_FACTORS_FILE.is_file():
            fit = json.loads(_RGB_FACTORS_FILE.read_text())
            self.latent_rgb_factors = fit["latent_rgb_factors"]
            self.latent_rgb_factors_bias = fit["latent_rgb_factors_bias"]

    def process_in(self, latent):
        return latent

    def process_out(self, latent):
        return latent


def latent_format_for(channels: int, default_codec: bool) -> comfy.latent_formats.LatentFormat:
    """The latent format of a model: our codec's for the embedded default, core's Wan2.2 format for
    48-channel checkpoints (the Wan2.2 VAE), core's Wan2.1 format for 16-channel ones."""
    if default_codec:
        return UnityVideoDefaultLatent()
    if channels == 48:
        return comfy.latent_formats.Wan22()
    if channels == 16:
        return comfy.latent_formats.Wan21()
    raise ValueError(f"no latent format for a {channels}-channel model; UnityVideo checkpoints take the Wan2.2 "
                     "VAE's 48 channels")


# ----------------------------------------------------------------------------------------------
# Operations: swap the transformer's layers for ComfyUI's casting classes
# ----------------------------------------------------------------------------------------------


def _swap(parent: nn.Module, name: str, old: nn.Module, ops, weight_dtype: torch.dtype, small_dtype: torch.dtype):
    def param(t, dtype):
        return None if t is None else nn.Parameter(t.detach().to(dtype), requires_grad=False)

    if type(old) is nn.Linear:
        new = ops.Linear(old.in_features, old.out_features, bias=old.bias is not None, device="meta")
        new.weight, new.bias = param(old.weight, weight_dtype), param(old.bias, weight_dtype)
    elif type(old) is nn.Conv3d:
        new = ops.Conv3d(old.in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                         bias=old.bias is not None, device="meta")
        # patch embeddings stay out of fp8 (as diffusers' layerwise casting skips them)
        new.weight, new.bias = param(old.weight, small_dtype), param(old.bias, small_dtype)
    elif isinstance(old, nn.LayerNorm) and old.elementwise_affine:
        # our blocks feed their affine LayerNorm float32 input (FP32LayerNorm), so it keeps float32 weights
        new = ops.LayerNorm(old.normalized_shape, eps=old.eps, elementwise_affine=True, device="meta")
        new.weight, new.bias = param(old.weight, torch.float32), param(old.bias, torch.float32)
    elif isinstance(old, nn.RMSNorm) and old.weight is not None:
        new = ops.RMSNorm(old.normalized_shape, eps=old.eps, elementwise_affine=True, device="meta")
        new.weight = param(old.weight, small_dtype)
    else:
        return False
    setattr(parent, name, new)
    return True


def adapt_transformer(model: UnityVideoTransformer, operations, weight_dtype: torch.dtype,
                      compute_dtype: Optional[torch.dtype]) -> UnityVideoTransformer:
    """Make a loaded transformer ComfyUI-native, in place, one layer at a time (no second copy).

    Args:
        model: from :func:`unity_core.model.load_transformer` (plain torch layers).
        operations: a ``comfy.ops`` class namespace (from ``pick_operations``).
        weight_dtype: storage dtype of the Linear weights (fp8 allowed).
        compute_dtype: ComfyUI's manual-cast dtype (None: compute in ``weight_dtype``).

    Returns:
        ``model``, with Linear / Conv3d / affine LayerNorm / RMSNorm replaced by ``operations``'
        classes (same parameter names, so state-dict keys and LoRA keys are unchanged), bare
        parameters read through ``comfy.model_management.cast_to``, and ``compute_dtype`` set.
    """
    small = compute_dtype or weight_dtype
    if small in (torch.float8_e4m3fn, torch.float8_e5m2):
        small = torch.bfloat16
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            _swap(parent, name, child, operations, weight_dtype, small)
    for module in model.modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            if not hasattr(module, "comfy_cast_weights") and p.dtype != small:
                setattr(module, pname, nn.Parameter(p.detach().to(small), requires_grad=False))
        if hasattr(module, "cast_parameter"):
            module.cast_parameter = _comfy_cast_parameter
    model.compute_dtype = compute_dtype or small
    model.requires_grad_(False)
    return model.eval()


def _comfy_cast_parameter(param: torch.Tensor, dtype=None, device=None) -> torch.Tensor:
    return comfy.model_management.cast_to(param, dtype=dtype, device=device)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


class UnityVideoModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI's description of a UnityVideo model (the role of a ``supported_models`` entry).

    ``sampling_settings``: flow matching with Wan's multiplier 1000 and the release's shift 1
    (Yume-5B, a model with history embeddings: its release's shift 7).
    """

    unet_config = {"image_model": "unityvideo"}
    unet_extra_config = {}
    sampling_settings = {"shift": 1.0, "multiplier": 1000}
    latent_format = comfy.latent_formats.Wan22
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.bfloat16, torch.float16, torch.float32]

    def __init__(self, transformer_config: dict, latent_format: comfy.latent_formats.LatentFormat):
        super().__init__({"image_model": "unityvideo", "disable_unet_model_creation": True,
                          "unityvideo": dict(transformer_config)})
        self.latent_format = latent_format
        if transformer_config.get("history_embeddings"):  # Yume-5B samples at shift 7 (sample_5b.py)
            self.sampling_settings = {**self.sampling_settings, "shift": 7.0}
        # activation memory grows with width as for core's Wan (its factor: dim / 2222); the packed
        # latent's doubled width is in the input shape ComfyUI's estimate multiplies by
        self.memory_usage_factor = max(0.05, transformer_config.get("dim", 2222) / 2222)


class UnityVideoModel(comfy.model_base.BaseModel):
    """A ComfyUI ``BaseModel`` whose ``diffusion_model`` is a :class:`UnityVideoTransformer`
    (adapted by :func:`adapt_transformer`), so state-dict keys read ``diffusion_model.<our name>``.

    ``apply_model(x [B, C, F, H, W'], sigma [B], c_crossattn=[B, L, text_dim], ...)`` returns the
    denoised latent (x0 = x - sigma * v). With ``unityvideo_packed`` in the conditioning, W' = 2W
    holds the RGB and modality streams side by side (module docstring).
    """

    def __init__(self, model_config: UnityVideoModelConfig, transformer: UnityVideoTransformer,
                 storage_dtype: torch.dtype, device=None):
        super().__init__(model_config, comfy.model_base.ModelType.FLOW, device=device)
        self.diffusion_model = transformer
        self.storage_dtype = storage_dtype

    def get_dtype(self):
        return self.storage_dtype

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        cross_attn = kwargs.get("cross_attn", None)
        if cross_attn is not None:  # as core Wan: no padding to a common length
            out["c_crossattn"] = comfy.conds.CONDRegular(cross_attn)
        if kwargs.get(COND_PACKED, False):
            out[COND_PACKED] = comfy.conds.CONDConstant(True)
            name = kwargs.get(COND_MODALITY, None)
            out[COND_MODALITY] = comfy.conds.CONDConstant(name)
            mctx = kwargs.get(COND_MODALITY_CONTEXT, None)
            if mctx is not None:
                out[COND_MODALITY_CONTEXT] = comfy.conds.CONDRegular(mctx)
        if kwargs.get(COND_RGB_ONLY, False):
            out[COND_RGB_ONLY] = comfy.conds.CONDConstant(True)
        if kwargs.get(COND_YUME_HISTORY, None) is not None:
            out[COND_YUME_HISTORY] = comfy.conds.CONDConstant(int(kwargs[COND_YUME_HISTORY]))
        return out

    def scale_latent_inpaint(self, sigma, noise, latent_image, **kwargs):
        """The masked (conditioning) stream is the clean latent itself, at every step."""
        return latent_image

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        dtype = self.manual_cast_dtype or self.diffusion_model.compute_dtype
        xc = self.model_sampling.calculate_input(sigma, x).to(dtype)
        timestep = self.model_sampling.timestep(sigma).float()
        if c_crossattn is None:
            raise ValueError("UnityVideo needs a text conditioning (positive / negative CONDITIONING)")
        context = comfy.model_management.cast_to_device(c_crossattn, xc.device, dtype)
        mctx = kwargs.get(COND_MODALITY_CONTEXT, None)
        if mctx is not None:
            mctx = comfy.model_management.cast_to_device(mctx, xc.device, dtype)
        unity = {"packed": bool(kwargs.get(COND_PACKED, False)), "modality": kwargs.get(COND_MODALITY, None),
                 "modality_context": mctx, "rgb_only": bool(kwargs.get(COND_RGB_ONLY, False)),
                 "yume_history": kwargs.get(COND_YUME_HISTORY, None)}
        v = comfy.patcher_extension.WrapperExecutor.new_class_executor(
            self._diffusion_forward, self,
            comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL,
                                                     transformer_options),
        ).execute(xc, timestep, context, unity, transformer_options)
        return self.model_sampling.calculate_denoised(sigma, v.float(), x)

    def _diffusion_forward(self, x, timestep, context, unity: Dict, transformer_options):
        """Velocity ``[B, C, F, H, W']`` of the (packed) latent ``x`` at ``timestep`` = sigma x 1000.

        ``unity``: ``packed`` / ``modality`` / ``modality_context`` / ``rgb_only`` from the
        conditioning (see :meth:`_apply_model`)."""
        runner = _block_runner(transformer_options)
        cache = transformer_options.get(BLOCK_CACHE_KEY)
        if cache is not None:  # the block-cache patch (UnityVideo Block Cache) wraps core's block patches
            runner = cache.runner(self, x, timestep, context, unity, transformer_options, runner)
        if unity["packed"] and x.shape[-1] % 2:
            raise ValueError(f"a packed UnityVideo latent has an even width (RGB | modality), got {x.shape[-1]}")
        if unity["packed"] and unity["rgb_only"]:  # control guidance's free branch: the RGB stream alone
            w = x.shape[-1] // 2
            v_rgb = self.diffusion_model(x[..., :w], timestep, context, block_runner=runner, return_dict=False)[0]
            return torch.cat([v_rgb, torch.zeros_like(x[..., w:])], dim=-1)
        v_rgb, v_mod = transformer_call(self, x, timestep, context, unity, runner)
        return v_rgb if v_mod is None else torch.cat([v_rgb, v_mod], dim=-1)


def transformer_call(model: "UnityVideoModel", x, timestep, context, unity: Dict, block_runner=None):
    """The transformer forward of one (packed) latent: ``(v_rgb, v_mod or None)`` (for patches that
    need extra forwards, e.g. ranking blocks).

    With ``unity["yume_history"]`` = N (a Yume segment's conditioning), ``x`` ``[B, C, N + F, H, W]``
    holds the clean history then the new frames: Yume-5B's packed forward
    (:func:`unity_core.model.yume.yume_velocity`: history tokens at t = 0, new tokens at t); the
    history's velocity is 0 (the noise mask keeps it clean anyway)."""
    tf = model.diffusion_model
    n = unity.get("yume_history")
    if n is not None:
        from unity_core.model.yume import yume_velocity

        n = int(n)
        v = yume_velocity(tf, x[:, :, :n] if n else None, x[:, :, n:], timestep.double(), context,
                          block_runner=block_runner)
        return torch.cat([torch.zeros_like(x[:, :, :n], dtype=v.dtype), v], dim=2), None
    if not unity["packed"]:
        return tf(x, timestep, context, block_runner=block_runner, return_dict=False)
    w = x.shape[-1] // 2
    name = unity["modality"]  # the release's name: UnityVideo Task resolved it
    return tf(x[..., :w], timestep, context, x[..., w:], name or None,
              unity["modality_context"], block_runner=block_runner, return_dict=False)


def _block_runner(transformer_options):
    """Core's block replacement patches (``patches_replace["dit"][("double_block", i)]``) as the
    transformer's ``block_runner(i, fn, x)``; None when there are none."""
    replace = transformer_options.get("patches_replace", {}).get("dit", {})
    if not replace:
        return None

    def run(i, fn, x):
        patch = replace.get(("double_block", i))
        if patch is None:
            return fn(x)
        out = patch({"img": x, "transformer_options": transformer_options},
                    {"original_block": lambda args: {"img": fn(args["img"])}})
        return out["img"]

    return run


# ----------------------------------------------------------------------------------------------
# Building a MODEL
# ----------------------------------------------------------------------------------------------


def make_model_patcher(transformer: UnityVideoTransformer, weight_dtype: str = "default",
                       default_codec: bool = False) -> comfy.model_patcher.ModelPatcher:
    """Wrap a loaded transformer as ComfyUI's ``MODEL``.

    Args:
        transformer: from :func:`unity_core.model.load_transformer` (float32 / bf16 / fp16).
        weight_dtype: ``default`` (ComfyUI picks the storage dtype for the device, as its
            ``UNETLoader``), ``fp8_e4m3fn`` or ``fp8_e5m2`` (Linear weights stored in fp8, computed in
            ComfyUI's manual-cast dtype).
        default_codec: True for the embedded default (our codec's latent format).

    Returns:
        a ``ModelPatcher`` over :class:`UnityVideoModel`, weights on ComfyUI's offload device.

    Raises:
        ValueError: an unknown ``weight_dtype``.
    """
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    mm = comfy.model_management
    load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    cfg = dict(transformer.config)
    model_config = UnityVideoModelConfig(cfg, latent_format_for(cfg["in_channels"], default_codec))
    stored = WEIGHT_DTYPES[weight_dtype]
    if stored is None:
        params = sum(p.numel() for p in transformer.parameters())
        stored = mm.unet_dtype(model_params=params, supported_dtypes=model_config.supported_inference_dtypes,
                               weight_dtype=transformer.dtype)
    manual_cast = mm.unet_manual_cast(stored, load_device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(stored, manual_cast)
    ops = comfy.ops.pick_operations(stored, manual_cast, load_device=load_device)
    adapt_transformer(transformer, ops, stored, manual_cast)
    model = UnityVideoModel(model_config, transformer, stored, device=offload_device)
    model = model.to(offload_device)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


# ----------------------------------------------------------------------------------------------
# LoRA: one extension of core's key map, for this model class only
# ----------------------------------------------------------------------------------------------


def unityvideo_lora_keys(model, key_map: dict) -> dict:
    """Add the LoRA names of our base blocks to core's ``key_map`` (LoRA prefix -> state-dict key).

    For every ``diffusion_model.<ours>.weight`` of a :class:`UnityVideoModel`: the original Wan name
    (``blocks.0.self_attn.q``, bare, with ``diffusion_model.`` / ``model.diffusion_model.``, and as
    ``lora_unet_blocks_0_self_attn_q``), the release's name (``base.blocks.0.self_attn.q``), and the
    diffusers names (``transformer.blocks.0.attn1.to_q`` and bare ``blocks.0.attn1.to_q``). The
    names come from ``unity_core.model.keys``'s one key map.
    """
    from unity_core.model.keys import ours_to_official_key

    for k in model.state_dict():
        if not (k.startswith("diffusion_model.") and k.endswith(".weight")):
            continue
        ours = k[len("diffusion_model."):-len(".weight")]
        official = ours_to_official_key(ours + ".weight")[: -len(".weight")]
        wan = official[len("base."):] if official.startswith("base.") else official
        for name in (wan, f"diffusion_model.{wan}", f"model.diffusion_model.{wan}", official,
                     f"transformer.{ours}", ours):
            key_map.setdefault(name, k)
        key_map.setdefault("lora_unet_" + wan.replace(".", "_"), k)
    return key_map


def install_lora_key_map() -> None:
    """Extend ``comfy.lora.model_lora_keys_unet`` once: core's map, plus :func:`unityvideo_lora_keys`
    when the model is a :class:`UnityVideoModel` (other models are untouched)."""
    core = comfy.lora.model_lora_keys_unet
    if getattr(core, "_unityvideo", False):
        return

    def model_lora_keys_unet(model, key_map={}):
        key_map = core(model, key_map)
        if isinstance(model, UnityVideoModel):
            unityvideo_lora_keys(model, key_map)
        return key_map

    model_lora_keys_unet._unityvideo = True
    model_lora_keys_unet.__wrapped__ = core
    comfy.lora.model_lora_keys_unet = model_lora_keys_unet


install_lora_key_map()
