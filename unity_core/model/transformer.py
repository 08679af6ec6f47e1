"""The UnityVideo transformer: a Wan2.2 video DiT that carries RGB and one auxiliary modality.

Follows UnityVideo (arXiv 2512.07831) as released in KlingTeam/UnityVideo (public code at
commit e79e9b6): the Wan2.2-TI2V-5B DiT plus

- ``flow_patch_embedding``: a second patch embedding for the modality latent (initialised as a
  copy of the RGB one), then ``flow_in``, a zero-initialised D x D projection, and one learned
  vector per modality (``modality_embeddings.<name>``, zero-initialised) added to every
  modality token (the modality switcher of the release);
- the two token grids joined along width, (f, h, w) + (f, h, w) -> (f, h, 2w), flattened
  row-major so each row holds w RGB tokens then w modality tokens; the 3D RoPE runs over the
  2w-wide grid, so modality tokens take width positions w..2w-1;
- per block: self-attention and FFN over the joint sequence with one shared timestep
  modulation, and cross-attention (same weights) run twice: RGB tokens against the content
  prompt, modality tokens against the modality prompt (the in-context learner);
- ``flow_head``: a second output head (a copy of the RGB head) for the modality velocity.

The Wan parts are diffusers' modules (``WanTransformerBlock``, ``WanAttention``,
``WanTimeTextImageEmbedding``, ``FeedForward``), so parameter names inside this module follow
diffusers for the base and the release for the additions; ``keys.py`` maps the official,
original-Wan and diffusers layouts onto them. Two precision choices follow the release (not
diffusers), which is what makes the official outputs reproducible to ~1e-6 in float32: the
timestep sinusoid is computed in float64, and RoPE rotates interleaved (2i, 2i+1) pairs as
complex128.

Where the release is wrong, this module is right (both documented in the facts of the release):
- its output head adds a ``(1, 2, D)`` modulation to a ``(B, D)`` embedding, which mixes the
  timesteps of a batch of 2 and fails for larger batches; here every sample is modulated by
  its own timestep, so a batch gives exactly the per-sample results;
- its joint-generation path sizes the latent with a factor 8 although the Wan2.2 VAE
  compresses space by 16; here latent sizes are never guessed: they come from the codec.

Low-level pieces (``embed_time``, ``embed_text``, ``patchify``, ``forward_tokens``,
``rgb_head`` / ``modality_head``, ``unpatchify``, :func:`rope_table`) serve Yume's compressed
history, which builds its own token sequences with explicit RoPE positions.

It is a diffusers model (``ModelMixin`` + ``ConfigMixin`` + ``PeftAdapterMixin`` + ``CacheMixin``
+ ``AttentionMixin``), so diffusers' tools reach it from outside: ``save_pretrained`` /
``from_pretrained``, ``enable_group_offload``, ``enable_layerwise_casting`` (fp8 storage),
``set_attention_backend`` (attention runs through ``dispatch_attention_fn``), PEFT LoRA adapters,
``compile_repeated_blocks``, gradient checkpointing, ``fuse_qkv_projections`` (the attention
processor then runs the fused ``to_qkv`` / ``to_kv`` projections) and the step caches of
``enable_cache`` (:mod:`unity_core.sampling.caches`). Its forward follows diffusers'
contract: ``return_dict=True`` gives a :class:`UnityVideoTransformerOutput` (``sample``: the RGB
velocity, ``modality_sample``: the modality velocity or None), ``return_dict=False`` the tuple
``(sample, modality_sample)``. ``_keep_in_fp32_modules`` (the time embedder, the modulation
tables and the affine cross-attention norm, as diffusers' Wan and Wan's own code keep them) stay
float32 under ``from_pretrained(torch_dtype=...)``, :func:`~unity_core.model.load_transformer`
and ``.to(dtype)``.

Seams for hosts that adapt the model (ComfyUI's adapter in ``nodes/`` uses them):

- every ``nn.Linear`` / ``nn.Conv3d`` is a plain torch layer and may be swapped for another class
  with the same call signature (e.g. ComfyUI's casting ops);
- every bare ``nn.Parameter`` read in the forward (block and head ``scale_shift_table``,
  ``flow_head.modulation``, ``modality_embeddings``, ``switcher_embeddings``) is read through
  ``module.cast_parameter(param, dtype=None, device=None)`` of the module that owns it, a plain
  callable attribute (default :func:`cast_parameter`) that a host may replace on every module
  that has it; and it is read inside the ``forward`` of the module that owns it (the modality
  vectors live in :class:`EmbeddingTable`, a ``ParameterDict`` with a forward), so per-module hooks
  (diffusers' leaf-level group offloading, to disk too) onload every parameter before it is read;
- inputs are cast to :attr:`UnityVideoTransformer.compute_dtype`, settable when the stored weights
  are not the compute dtype (fp8 storage);
- the low-level pieces run inside the root ``forward`` when called through
  :meth:`UnityVideoTransformer.forward_tokens` or ``model(low_level=fn)``, so hooks attached to the
  root forward (group offloading's top-level group) see them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.cache_utils import CacheMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanTimeTextImageEmbedding, WanTransformerBlock

from unity_core.constants import MODALITIES, check_release_modality
from unity_core.model.config import UnityVideoConfig, get_config
from unity_core.model.keys import HISTORY_EMBEDDINGS
from unity_core.model.parallel import check_divisible, context_parallel_plan

BlockRunner = Callable[[int, Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Position and time encodings (computed the release's way: float64 / complex128)
# ----------------------------------------------------------------------------------------------


def timestep_sinusoid(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal timestep embedding ``[B, dim]`` = cat(cos(t w), sin(t w)), w_k = 10000^(-k/(dim/2)).

    Computed in float64 and cast back to the timestep's dtype, as Wan's original code does
    (t reaches 1000, where float32 angles lose about 1e-4; the cost is B x dim/2 float64
    products per forward, nothing next to one linear layer).

    Args:
        timestep: ``[B]`` on the release scale (flow time x 1000), any float dtype.
    """
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=timestep.device).div(half))
    angles = torch.outer(timestep.to(torch.float64), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).to(timestep.dtype)


def grid_positions(frames: int, height: int, width: int, device=None) -> torch.Tensor:
    """RoPE positions ``[frames * height * width, 3]`` (frame, row, column), row-major."""
    f = torch.arange(frames, device=device)
    h = torch.arange(height, device=device)
    w = torch.arange(width, device=device)
    grid = torch.stack(torch.meshgrid(f, h, w, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3)


def rope_table(positions: torch.Tensor, config: UnityVideoConfig) -> torch.Tensor:
    """3D RoPE rotations ``[N, head_dim / 2]`` complex128 for token positions ``[N, 3]``.

    Each axis a with d_a real dims (``config.rope_dims``) uses inverse frequencies
    ``theta^(-2j / d_a)``, j < d_a / 2; the complex factors are laid out frame, height, width.
    Positions may be any integers (Yume's compressed history uses consecutive frame indices).
    The table is computed in float64 (angles reach 10^3 rad, where float32 loses ~1e-4) and is
    small: N x head_dim/2 entries, computed once per forward and shared by every block.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must be [N, 3] (frame, row, column), got {tuple(positions.shape)}")
    angles = []
    for axis, d in enumerate(config.rope_dims):
        inv = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=positions.device)[: d // 2] / d))
        angles.append(torch.outer(positions[:, axis].to(torch.float64), inv))
    angles_t = torch.cat(angles, dim=1)
    return torch.polar(torch.ones_like(angles_t), angles_t)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, N, heads, head_dim]`` by ``table`` ``[N, head_dim/2]`` (interleaved pairs).

    For float32 / float64 inputs the rotation runs in complex128, as the release does: q and k are
    copied to float64 for one elementwise product per block, which keeps the fp32 oracle
    bit-exact (complex64 would leave ~1e-6). For bf16 / fp16 inputs (the GPU path) it runs in
    complex64 at half that cost, since rounding the result to 16 bits (~4e-3 relative) dwarfs
    the difference; the table itself is always computed in float64 (see :func:`rope_table`).
    """
    b, n, h, d = x.shape
    wide = x.dtype in (torch.float32, torch.float64)
    real, cplx = (torch.float64, torch.complex128) if wide else (torch.float32, torch.complex64)
    xc = torch.view_as_complex(x.to(real).reshape(b, n, h, d // 2, 2))
    out = torch.view_as_real(xc * table.to(cplx)[None, :, None, :]).reshape(b, n, h, d)
    return out.to(x.dtype)


def cast_parameter(param: torch.Tensor, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """The default ``cast_parameter`` seam: ``param`` itself, or a copy on ``device`` / in ``dtype``
    when it is not there already (see the module docstring)."""
    if (dtype is None or param.dtype == dtype) and (device is None or param.device == torch.device(device)):
        return param
    return param.to(device=device, dtype=dtype)


def qkv_projections(attn, hidden_states: torch.Tensor, encoder_hidden_states: Optional[torch.Tensor] = None):
    """Query, key and value ``[B, N, D]`` of a ``WanAttention``, through the fused projections
    when ``attn.fuse_projections()`` made them (``to_qkv`` for self-attention, ``to_q`` + ``to_kv``
    for cross-attention, as diffusers fuses Wan), else through ``to_q`` / ``to_k`` / ``to_v``.
    ``encoder_hidden_states``: the cross-attention context ``[B, L, D]``, None for self-attention."""
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    if getattr(attn, "fused_projections", False):
        if not attn.is_cross_attention:
            return attn.to_qkv(context).chunk(3, dim=-1)
        return (attn.to_q(hidden_states), *attn.to_kv(context).chunk(2, dim=-1))
    return attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)


class UnityVideoAttnProcessor:
    """Attention for ``WanAttention`` with float64 RoPE (``rotary_emb``: a :func:`rope_table` or None),
    computed by diffusers' attention dispatcher, so ``set_attention_backend`` picks the kernel.

    Dual-branch cross-attention in one call: with ``stream`` (``[N]`` bool, True for modality
    tokens) and ``modality_context`` (``[B, L', D]``), every query attends to both prompts and
    ``torch.where`` keeps, per token, the result against its own stream's prompt (RGB tokens:
    ``encoder_hidden_states``; modality tokens: ``modality_context``). Each query row's softmax
    runs over its own prompt's keys only, so this equals attending each stream's tokens apart; it
    has static shapes (no data-dependent indexing, so the forward compiles whole) and the
    cross-attention module runs once per block, which step caches that hook attention modules
    (Pyramid Attention Broadcast, TaylorSeer, FasterCache) need.

    ``_attention_backend`` / ``_parallel_config`` are the attributes diffusers sets on processors;
    cross-attention is never split for context parallelism (the text is not sharded).
    """

    _attention_backend = None
    _parallel_config = None

    @staticmethod
    def _key_value(attn, context):
        """Cross-attention keys and values of ``context`` (through ``to_kv`` when fused)."""
        if getattr(attn, "fused_projections", False):
            return attn.to_kv(context).chunk(2, dim=-1)
        return attn.to_k(context), attn.to_v(context)

    def _attend(self, attn, q, k, v, rotary_emb, parallel_config):
        k = attn.norm_k(k).unflatten(2, (attn.heads, -1))
        v = v.unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            k = apply_rope(k, rotary_emb)
        # [B, N, heads, head_dim] in and out
        return dispatch_attention_fn(q, k, v, backend=self._attention_backend, parallel_config=parallel_config)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None,
                 stream=None, modality_context=None, **kwargs):
        q, k, v = qkv_projections(attn, hidden_states, encoder_hidden_states)
        q = attn.norm_q(q).unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            q = apply_rope(q, rotary_emb)
        parallel = self._parallel_config if encoder_hidden_states is None else None
        out = self._attend(attn, q, k, v, rotary_emb, parallel)
        if stream is not None:
            k_m, v_m = self._key_value(attn, modality_context)
            out_modality = self._attend(attn, q, k_m, v_m, None, None)
            out = torch.where(stream[None, :, None, None], out_modality, out)
        return attn.to_out[0](out.flatten(2).type_as(hidden_states))


# ----------------------------------------------------------------------------------------------
# Blocks and heads
# ----------------------------------------------------------------------------------------------


def join_width(rgb: torch.Tensor, other: torch.Tensor, grid: Tuple[int, int, int]) -> torch.Tensor:
    """Join two token sequences ``[B, f*h*w, ...]`` into the (f, h, 2w) grid, flattened row-major."""
    f, h, w = grid
    b = rgb.shape[0]
    tail = rgb.shape[2:]
    joint = torch.cat([rgb.reshape(b, f, h, w, *tail), other.reshape(b, f, h, w, *tail)], dim=3)
    return joint.reshape(b, f * h * 2 * w, *tail)


def stream_index(grid: Tuple[int, int, int], device=None) -> torch.Tensor:
    """``[f*h*2w]`` bool: True where the joint (f, h, 2w) sequence holds a modality token."""
    f, h, w = grid
    return torch.arange(2 * w, device=device).ge(w).expand(f, h, 2 * w).reshape(-1)


class RotaryTable(nn.Module):
    """:func:`rope_table` as a module (no parameters): ``positions [N, 3] -> [N, head_dim / 2]``.

    A module so that hooks can split its output along the sequence (context parallelism)."""

    def __init__(self, config: UnityVideoConfig):
        super().__init__()
        self.rope_config = config

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return rope_table(positions, self.rope_config)


class StreamIndex(nn.Module):
    """:func:`stream_index` as a module (no parameters), for the same reason as :class:`RotaryTable`."""

    def forward(self, frames: int, height: int, width: int, device=None) -> torch.Tensor:
        return stream_index((frames, height, width), device)


def split_width(x: torch.Tensor, grid: Tuple[int, int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`join_width`: ``[B, f*h*2w, ...]`` -> (rgb, modality), each ``[B, f*h*w, ...]``."""
    f, h, w = grid
    b = x.shape[0]
    tail = x.shape[2:]
    g = x.reshape(b, f, h, 2 * w, *tail)
    return g[:, :, :, :w].reshape(b, f * h * w, *tail), g[:, :, :, w:].reshape(b, f * h * w, *tail)


class UnityVideoBlock(WanTransformerBlock):
    """A Wan DiT block whose cross-attention runs once per stream (dual-branch cross-attention).

    Diffusers' names: ``attn1`` self-attention, ``attn2`` cross-attention, ``norm2`` the affine
    cross-attention LayerNorm (Wan's ``norm3``), ``ffn``, ``scale_shift_table`` (Wan's
    ``modulation``, read through ``cast_parameter``).
    """

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float):
        super().__init__(dim, ffn_dim, num_heads, "rms_norm_across_heads", True, eps)
        self.attn1.set_processor(UnityVideoAttnProcessor())
        self.attn2.set_processor(UnityVideoAttnProcessor())
        self.cast_parameter = cast_parameter

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        tmod: torch.Tensor,
        rope: torch.Tensor,
        context: torch.Tensor,
        stream: Optional[torch.Tensor] = None,
        modality_context: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """One block.

        Args:
            hidden_states: tokens ``[B, N, D]`` (diffusers' name, which its block hooks and step
                caches look the tokens up by).
            tmod: timestep modulation ``[B, 6, D]`` (shared by all tokens) or ``[B, N, 6, D]``
                (per token).
            rope: :func:`rope_table` for the N tokens.
            context: embedded content prompt ``[B, L, D]``.
            stream: ``[N]`` bool, True for modality tokens, when the tokens are a joint sequence;
                None for a single stream. It travels with the tokens, so any subset of the
                sequence (a context-parallel shard) is handled.
            modality_context: embedded modality prompt ``[B, L', D]`` for the modality tokens.

        Returns:
            tokens ``[B, N, D]``.
        """
        x = hidden_states
        if tmod.ndim == 3:
            tmod = tmod[:, None]
        table = self.cast_parameter(self.scale_shift_table, dtype=torch.float32, device=tmod.device)
        e = (table[None] + tmod.float()).unbind(2)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = e
        y = (self.norm1(x.float()) * (1 + scale_msa) + shift_msa).type_as(x)
        x = (x.float() + self.attn1(y, None, None, rope) * gate_msa).type_as(x)
        y = self.norm2(x.float()).type_as(x)
        if stream is None:
            x = x + self.attn2(y, context)
        else:  # dual-branch cross-attention: each token against its own stream's prompt, one call
            x = x + self.attn2(y, context, stream=stream, modality_context=modality_context)
        y = (self.norm3(x.float()) * (1 + scale_mlp) + shift_mlp).type_as(x)
        return (x.float() + self.ffn(y).float() * gate_mlp).type_as(x)


def register_block_metadata() -> None:
    """Tell diffusers' ``TransformerBlockRegistry`` what :class:`UnityVideoBlock` takes and returns
    (the tokens ``hidden_states`` in, the tokens out, no separate text stream), as diffusers does
    for ``WanTransformerBlock``; the block caches (first block, MagCache) read it. Idempotent;
    called by :meth:`UnityVideoTransformer.enable_cache`."""
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    if UnityVideoBlock not in TransformerBlockRegistry._registry:
        TransformerBlockRegistry.register(
            UnityVideoBlock, TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None)
        )


class OutputHead(nn.Module):
    """Wan's output head under the release's names: ``modulation`` ``[1, 2, D]`` and ``head``."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.cast_parameter = cast_parameter

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        table = self.cast_parameter(self.modulation, dtype=temb.dtype, device=temb.device)
        return _modulated_head(x, temb, self.norm, self.head, table)


class EmbeddingTable(nn.ParameterDict):
    """One learned vector ``[D]`` per modality name (``modality_embeddings.<m>``,
    ``switcher_embeddings.<m>``), added to its input by :meth:`forward`.

    A ``ParameterDict`` (so checkpoint keys, ``table[name]``, ``name in table`` and ``values()``
    are those of the release's dict) whose vectors are only read inside its own ``forward``: hooks
    that work per module (diffusers' leaf-level group offloading, with or without disk) then
    onload them before they are read. A bare ``ParameterDict`` read by indexing is never called,
    so such a hook would leave the vector offloaded (on disk: uninitialised memory).
    """

    __call__ = nn.Module.__call__  # ParameterDict refuses calls; this one has a forward

    def __init__(self, names, dim: int):
        super().__init__({m: nn.Parameter(torch.zeros(dim)) for m in names})
        self.cast_parameter = cast_parameter

    def forward(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """``x`` ``[..., D]`` plus the vector of ``name``, in ``x``'s dtype and on its device (a new tensor)."""
        return x + self.cast_parameter(self[name], dtype=x.dtype, device=x.device)


@dataclasses.dataclass
class UnityVideoTransformerOutput(BaseOutput):
    """The output of :meth:`UnityVideoTransformer.forward` (diffusers' ``Transformer2DModelOutput``
    with a second stream).

    Attributes:
        sample: RGB velocity ``[B, C, F, H, W]`` (flow matching: noise - data), in the dtype of
            ``rgb_latent``.
        modality_sample: modality velocity ``[B, C, F, H, W]`` in the dtype of ``modality_latent``,
            or None for an RGB-only forward (then absent from ``keys()`` / ``to_tuple()``, as
            diffusers' outputs drop None fields).
    """

    sample: torch.Tensor
    modality_sample: Optional[torch.Tensor] = None


def _modulated_head(x, temb, norm, linear, table):
    # Per-sample shift/scale: [1, 2, D] + [B, 1, D] (the release omits the unsqueeze).
    shift, scale = (table + temb[:, None, :].to(table.dtype)).chunk(2, dim=1)
    return linear((norm(x.float()) * (1 + scale) + shift).type_as(x))


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

class UnityVideoTransformer(ModelMixin, ConfigMixin, PeftAdapterMixin, CacheMixin, AttentionMixin):
    """UnityVideo's DiT (see the module docstring), a diffusers model.

    Build with ``UnityVideoTransformer.from_config(spec)`` (``spec``: a preset name such as
    ``"wan2.2-ti2v-5b"`` / ``"unityvideo-small"`` / ``"yume-5b"``, a :class:`UnityVideoConfig`,
    or a dict) or with the config's fields as keyword arguments. Load checkpoints with
    :func:`unity_core.model.load_transformer` (official, original-Wan, diffusers, sharded and fp8
    layouts) or ``from_pretrained`` on a folder written by ``save_pretrained``.

    The ``__init__`` signature is the config schema (as in diffusers' ``WanTransformer3DModel``):
    ``self.config`` is diffusers' frozen record of its arguments, and ``self.unity_config`` the
    validated :class:`UnityVideoConfig` view of it with the derived values (``head_dim``,
    ``rope_dims``); :data:`~unity_core.model.config.PRESETS` names sets of these arguments.

    Args:
        dim: model width D (3072 for the 5B).
        num_layers: number of DiT blocks.
        num_heads: attention heads; head dim ``dim // num_heads`` must be even.
        ffn_dim: hidden width of the feed-forward network.
        in_channels: latent channels C of both streams (48 for the Wan2.2 VAE).
        out_channels: velocity channels (equal to ``in_channels`` for flow matching).
        text_dim: width of the text encoder's token embeddings (4096 UMT5-XXL, 384 MiniLM).
        freq_dim: width of the sinusoidal timestep embedding.
        patch_size: (pt, ph, pw) patch of the Conv3d patch embeddings.
        eps: epsilon of every LayerNorm / RMSNorm.
        rope_theta: RoPE base.
        modalities: modality names that get a learned embedding (the release's five).
        modality_switcher: the paper's modality-adaptive switcher (modality-specific AdaLN
            parameters from MLP(L_m + t_emb)) for newly trained models. The release does not use
            it (False), and neither does its key layout.
        modality_stream: True (UnityVideo) builds the release's additions for the modality stream
            (``flow_patch_embedding``, ``flow_in``, ``modality_embeddings``, ``flow_head``);
            False leaves a plain Wan2.2 DiT (the base of Yume-5B), which runs the RGB stream only.
        history_embeddings: True builds Yume-5B's five patch embeddings for compressed history
            (``patch_embedding_2x`` / ``_4x`` / ``_8x`` / ``_16x`` with kernels (1, 2k, 2k) for
            k = 2, 4, 8, 16 over the latent, and ``patch_embedding_2x_f``, a latent-to-latent
            (1, 4, 4) kernel feeding the 16x one for the coarsest tier), as in stdstu12/YUME.

    Parameters (diffusers names for the Wan base, release names for the additions):
    ``patch_embedding``, ``condition_embedder``, ``blocks``, ``norm_out`` / ``proj_out`` /
    ``scale_shift_table`` (RGB head); with ``modality_stream`` ``flow_patch_embedding``,
    ``flow_in``, ``modality_embeddings``, ``flow_head``; with ``modality_switcher`` also
    ``switcher_embeddings`` and ``switcher_mlp``; with ``history_embeddings`` Yume's
    ``patch_embedding_{2x,4x,8x,16x,2x_f}``.

    Raises:
        ValueError: an invalid config (see :class:`UnityVideoConfig`).
    """

    # diffusers' class attributes, each as diffusers' Wan sets it unless said otherwise:
    # run_blocks checkpoints each block (enable_gradient_checkpointing)
    _supports_gradient_checkpointing = True
    # device_map="auto" never splits a block (its residual stream and modulation are one unit)
    _no_split_modules = ["UnityVideoBlock"]
    # compile_repeated_blocks compiles the block class once
    _repeated_blocks = ["UnityVideoBlock"]
    # fp8 storage (enable_layerwise_casting) leaves these in the compute dtype: the patch embeddings
    # (all of them: flow_ and Yume's history ones match too), the time/text embedder and the norms
    _skip_layerwise_casting_patterns = ["patch_embedding", "condition_embedder", "norm"]
    # float32 under from_pretrained(torch_dtype=...), load_transformer(dtype=...) and .to(dtype):
    # what Wan's code computes in float32 (its time embedding and modulations run under a float32
    # autocast; its norms upcast) and diffusers' Wan keeps in float32: the time embedder, every
    # scale_shift_table, and norm1/2/3 (norm2, the affine cross-attention norm, is the only one with
    # parameters); plus "modulation", the flow head's copy of the head's scale_shift_table. Not
    # "rope": our RotaryTable holds no tensors and always computes in float64. In the 5B: 11.0 M of
    # 5.01 B parameters (0.22 %; the time embedder is 10.2 M of them), +22 MB over bf16.
    _keep_in_fp32_modules = ["time_embedder", "scale_shift_table", "modulation", "norm1", "norm2", "norm3"]
    # Not set, unlike diffusers' Wan: _keys_to_ignore_on_load_unexpected (Wan's ["norm_added_q"] skips
    # a stray key of Wan2.1 image-to-video files; our loads are strict, a stray key is an error naming
    # it). _cp_plan is set per instance in __init__ (it names the last block, which depends on
    # num_layers). CacheMixin (step caches) is the speed work's, not set here.

    @register_to_config
    def __init__(
        self,
        dim: int = 3072,
        num_layers: int = 30,
        num_heads: int = 24,
        ffn_dim: int = 14336,
        in_channels: int = 48,
        out_channels: int = 48,
        text_dim: int = 4096,
        freq_dim: int = 256,
        patch_size: Tuple[int, int, int] = (1, 2, 2),
        eps: float = 1e-6,
        rope_theta: float = 10000.0,
        modalities: Tuple[str, ...] = tuple(MODALITIES),
        modality_switcher: bool = False,
        modality_stream: bool = True,
        history_embeddings: bool = False,
    ):
        super().__init__()
        # register_to_config has recorded the arguments in self.config before this body runs; the
        # body reads them through the validated view (checks, tuples, derived values)
        config = self.unity_config = UnityVideoConfig.from_model_config(self.config)
        d, patch = config.dim, config.patch_size
        out_features = config.out_channels * math.prod(patch)
        self.patch_embedding = nn.Conv3d(config.in_channels, d, kernel_size=patch, stride=patch)
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=d, time_freq_dim=config.freq_dim, time_proj_dim=6 * d, text_embed_dim=config.text_dim
        )
        self.blocks = nn.ModuleList(
            UnityVideoBlock(d, config.ffn_dim, config.num_heads, config.eps) for _ in range(config.num_layers)
        )
        self.norm_out = FP32LayerNorm(d, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(d, out_features)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, d) / d**0.5)

        if config.modality_stream:  # UnityVideo additions, initialised as the release does
            self.flow_patch_embedding = nn.Conv3d(config.in_channels, d, kernel_size=patch, stride=patch)
            self.flow_in = nn.Linear(d, d)
            self.modality_embeddings = EmbeddingTable(config.modalities, d)
            self.flow_head = OutputHead(d, out_features, config.eps)
        if config.modality_switcher:
            # Paper form of the switcher: modality-stream AdaLN parameters from MLP(L_m + t_emb).
            self.switcher_embeddings = EmbeddingTable(config.modalities, d)
            self.switcher_mlp = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        if config.history_embeddings:
            for name, (out, k) in HISTORY_EMBEDDINGS.items():
                out_ch = d if out == "dim" else config.in_channels
                setattr(self, name, nn.Conv3d(config.in_channels, out_ch, kernel_size=(1, k, k), stride=(1, k, k)))
        self.rope = RotaryTable(config)
        self.stream_index = StreamIndex()
        self.cast_parameter = cast_parameter
        self._compute_dtype: Optional[torch.dtype] = None
        self.gradient_checkpointing = False
        # diffusers' context-parallel plan (unity_core.model.parallel); _cp_ranks is set by enabling it
        self._cp_plan = context_parallel_plan(config.num_layers)
        self._cp_ranks = 1
        self.reset_unity_parameters()

    @classmethod
    def from_config(cls, config=None, return_unused_kwargs=False, **kwargs):
        """Build from a :class:`UnityVideoConfig`, a preset name, or (as diffusers) a config dict.

        Raises:
            ValueError: unknown preset name or config keys.
        """
        if isinstance(config, (str, UnityVideoConfig)):
            config = get_config(config).to_kwargs()  # tuples stay tuples, as in the presets
        return super().from_config(config, return_unused_kwargs=return_unused_kwargs, **kwargs)

    @torch.no_grad()
    def reset_unity_parameters(self, modality_embedding_std: float = 0.0) -> None:
        """Initialise the additions as the release does: copies of the base patch embedding and
        head, zero ``flow_in`` and zero modality embeddings (so the modality stream starts inert).

        Args:
            modality_embedding_std: 0 (the release) keeps the modality embeddings zero, which
                leaves a pretrained Wan's behaviour unchanged. For training from scratch a value
                near the token scale (e.g. 1.0) draws them from ``N(0, std^2)`` with torch's
                global RNG, so every modality starts with its own distinct signature.
        """
        if self.patch_embedding.weight.is_meta or not self.config.modality_stream:
            return
        self.flow_patch_embedding.load_state_dict(self.patch_embedding.state_dict())
        self.flow_head.head.load_state_dict(self.proj_out.state_dict())
        self.flow_head.modulation.copy_(self.scale_shift_table)
        nn.init.zeros_(self.flow_in.weight)
        nn.init.zeros_(self.flow_in.bias)
        for p in self.modality_embeddings.values():
            if modality_embedding_std > 0:
                nn.init.normal_(p, std=modality_embedding_std)
            else:
                nn.init.zeros_(p)
        if self.config.modality_switcher:
            nn.init.zeros_(self.switcher_mlp[1].weight)
            nn.init.zeros_(self.switcher_mlp[1].bias)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype inputs are cast to: the patch embedding's weight dtype unless set (hosts that
        store weights in fp8 set it to their compute dtype). The patch embedding is neither kept in
        float32 nor stored in fp8 by layerwise casting, so it holds the model's compute dtype."""
        if self._compute_dtype is not None:
            return self._compute_dtype
        return self.patch_embedding.weight.dtype

    def _fp32_kept(self, name: str) -> bool:
        """Whether parameter / buffer ``name`` is in a ``_keep_in_fp32_modules`` module (matched on
        whole dotted components, as diffusers' loader matches)."""
        keep = self._keep_in_fp32_modules or ()
        return any(part in keep for part in name.split("."))

    def _apply(self, fn, recurse=True):
        """``nn.Module._apply`` (behind ``.to``, ``.half()``, ``.bfloat16()``, ...) that never casts a
        float32 tensor of a ``_keep_in_fp32_modules`` module down to a narrower float: those
        tensors take only the device move. Diffusers' ``ModelMixin.to`` casts them (with a warning);
        keeping them makes ``.to(torch.bfloat16)`` give the model ``from_pretrained(torch_dtype=
        torch.bfloat16)`` gives. Widening (``.double()``) and hooks that cast single layers
        (layerwise casting skips these modules) are unaffected."""
        kept = {id(t) for n, t in [*self.named_parameters(), *self.named_buffers()]
                if t.dtype == torch.float32 and self._fp32_kept(n)}
        if not kept:
            return super()._apply(fn, recurse)

        def keep_fp32(t):
            out = fn(t)
            if id(t) in kept and out.is_floating_point() and torch.finfo(out.dtype).bits < 32:
                return t.to(device=out.device)
            return out

        return super()._apply(keep_fp32, recurse)

    @compute_dtype.setter
    def compute_dtype(self, dtype: Optional[torch.dtype]) -> None:
        self._compute_dtype = dtype

    # -- step caches (diffusers' CacheMixin) ---------------------------------------------------

    def enable_cache(self, config) -> None:
        """Diffusers' step caches on this model: ``FirstBlockCacheConfig``, ``MagCacheConfig``,
        ``TaylorSeerCacheConfig``, ``FasterCacheConfig``, ``PyramidAttentionBroadcastConfig`` (and
        the others ``CacheMixin`` takes). Build configs wired to this model with
        :func:`unity_core.sampling.caches.cache_config` (``"first-block:0.05"``, ``"mag"``, ...).

        The block cache decisions (first block, MagCache) cover both streams of the joint forward:
        RGB and modality tokens pass the same blocks as one sequence, so one residual decides for
        both. Our sampler wraps every evaluation in :meth:`cache_context` and resets the caches
        before and after each run; a caller of the bare forward must do the same.

        Raises:
            ValueError: a cache is already enabled, or the config is not a cache config.
        """
        register_block_metadata()
        super().enable_cache(config)

    @contextlib.contextmanager
    def cache_context(self, name: str, **kwargs):
        """``CacheMixin.cache_context`` that also records ``timestep`` (flow time x 1000), read
        by :attr:`current_timestep` (the callback of Pyramid Attention Broadcast / FasterCache)."""
        self._cache_timestep = kwargs.get("timestep")
        try:
            with super().cache_context(name, **kwargs):
                yield
        finally:
            self._cache_timestep = None

    @property
    def current_timestep(self) -> Optional[float]:
        """The timestep (flow time x 1000, a float) of the evaluation in the open
        :meth:`cache_context`, or None outside one."""
        t = getattr(self, "_cache_timestep", None)
        if t is None:
            return None
        return float(t.reshape(-1)[0]) if torch.is_tensor(t) else float(t)

    # -- low-level pieces -------------------------------------------------------------------

    def embed_time(self, timestep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Timestep ``[B]`` (flow time x 1000) -> (temb ``[B, D]``, tmod ``[B, 6, D]``).

        Also takes ``[B, N]`` per-token timesteps (Yume's history at t = 0), giving
        ``[B, N, D]`` and ``[B, N, 6, D]``.
        """
        ce = self.condition_embedder
        lead = timestep.shape
        # float32 when the time embedder is kept in float32 (then temb is float32 too, and so is
        # the head's modulation); tmod comes from time_proj in the compute dtype, as in diffusers' Wan
        fp32 = ce.time_embedder.linear_1.weight.dtype == torch.float32
        sin = timestep_sinusoid(timestep.reshape(-1), self.config.freq_dim)
        temb = ce.time_embedder(sin.to(torch.float32 if fp32 else self.compute_dtype))
        tmod = ce.time_proj(ce.act_fn(temb).to(self.compute_dtype)).unflatten(1, (6, -1))
        return temb.reshape(*lead, -1), tmod.reshape(*lead, 6, -1)

    def embed_text(self, context: torch.Tensor) -> torch.Tensor:
        """Text encoder tokens ``[B, L, text_dim]`` -> ``[B, L, D]``."""
        return self.condition_embedder.text_embedder(context.to(self.compute_dtype))

    def patchify(self, latent: torch.Tensor, conv: Optional[nn.Conv3d] = None) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        """Latent ``[B, C, F, H, W]`` -> (tokens ``[B, f*h*w, D]``, grid (f, h, w)) with ``conv``
        (default: the RGB ``patch_embedding``)."""
        conv = self.patch_embedding if conv is None else conv
        x = conv(latent.to(self.compute_dtype))
        grid = tuple(x.shape[2:])
        return x.flatten(2).transpose(1, 2).contiguous(), grid  # type: ignore[return-value]

    def _require_modality_stream(self) -> None:
        if not self.config.modality_stream:
            raise ValueError("this model has no modality stream (a plain Wan2.2 / Yume DiT): it runs the RGB stream "
                             "only; load a UnityVideo checkpoint for joint generation, control or estimation")

    def modality_tokens(self, latent: torch.Tensor, modality: Optional[str]) -> torch.Tensor:
        """Modality latent -> tokens: flow_patch_embedding, flow_in, + modality embedding."""
        self._require_modality_stream()
        tokens, _ = self.patchify(latent, self.flow_patch_embedding)
        tokens = self.flow_in(tokens)
        if modality is not None:
            tokens = self.modality_embeddings(tokens, modality)
        return tokens

    def rgb_head(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """RGB velocity features ``[B, N, C*pt*ph*pw]`` from tokens ``[B, N, D]``."""
        table = self.cast_parameter(self.scale_shift_table, dtype=temb.dtype, device=temb.device)
        return _modulated_head(tokens, temb, self.norm_out, self.proj_out, table)

    def modality_head(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Modality velocity features from tokens, with ``flow_head``."""
        self._require_modality_stream()
        return self.flow_head(tokens, temb)

    def unpatchify(self, features: torch.Tensor, grid: Tuple[int, int, int]) -> torch.Tensor:
        """Head features ``[B, f*h*w, C*pt*ph*pw]`` ((pt, ph, pw, c) order) -> ``[B, C, F, H, W]``."""
        f, h, w = grid
        pt, ph, pw = self.config.patch_size
        b = features.shape[0]
        x = features.reshape(b, f, h, w, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, -1, f * pt, h * ph, w * pw)

    def run_blocks(
        self,
        x: torch.Tensor,
        tmod: torch.Tensor,
        rope: torch.Tensor,
        context: torch.Tensor,
        grid: Optional[Tuple[int, int, int]] = None,
        modality_context: Optional[torch.Tensor] = None,
        block_runner: Optional[BlockRunner] = None,
    ) -> torch.Tensor:
        """Run every block; ``block_runner(index, fn, x)`` replaces ``fn(x)`` when given.

        Args:
            x: tokens ``[B, N, D]``.
            tmod: ``[B, 1, 6, D]`` / ``[B, 6, D]`` shared or ``[B, N, 6, D]`` per token.
            rope: :func:`rope_table` ``[N, head_dim / 2]``.
            context / modality_context: embedded prompts ``[B, L, D]``.
            grid: the per-stream grid (f, h, w) when x is the joint (f, h, 2w) sequence.
        """
        if tmod.ndim == 4 and tmod.shape[1] == 1:
            tmod = tmod[:, 0]  # shared: [B, 6, D]; a 4-D tmod is per token
        stream = None if grid is None else self.stream_index(*grid, device=x.device)
        if self._cp_ranks > 1 and tmod.ndim == 4:
            raise ValueError("context parallelism splits shared-timestep sequences only (no per-token timesteps, "
                             "no modality switcher); run this model on one rank")
        for i, block in enumerate(self.blocks):

            def fn(h, block=block):
                if self.gradient_checkpointing and torch.is_grad_enabled():
                    return torch.utils.checkpoint.checkpoint(
                        block, h, tmod, rope, context, stream, modality_context, use_reentrant=False
                    )
                return block(h, tmod, rope, context, stream, modality_context)

            x = block_runner(i, fn, x) if block_runner is not None else fn(x)
        return x

    def forward_tokens(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        block_runner: Optional[BlockRunner] = None,
    ) -> torch.Tensor:
        """All blocks over one stream of ready-made tokens (Yume's compressed history).

        Runs inside the root ``forward`` (``low_level``), so diffusers hooks on it apply.

        Args:
            tokens: ``[B, N, D]`` (e.g. from :meth:`patchify` with coarser kernels).
            positions: ``[N, 3]`` integer RoPE positions (frame, row, column).
            timestep: ``[B]`` flow time x 1000, or ``[B, N]`` per token.
            context: raw text tokens ``[B, L, text_dim]`` (embedded here).

        Returns:
            tokens ``[B, N, D]`` after the last block; feed them to :meth:`rgb_head`.
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.dim:
            raise ValueError(f"tokens must be [B, N, {self.config.dim}], got {tuple(tokens.shape)}")
        if positions.shape[0] != tokens.shape[1]:
            raise ValueError(f"{positions.shape[0]} positions for {tokens.shape[1]} tokens")
        self._check_context("context", context, tokens.shape[0])

        def run(model):
            t = torch.as_tensor(timestep, device=tokens.device)
            if t.ndim == 2:
                if t.shape != tokens.shape[:2]:
                    raise ValueError(f"per-token timestep must be [B, N] = {tuple(tokens.shape[:2])}, got {tuple(t.shape)}")
                _, tmod = model.embed_time(t.float() if not t.is_floating_point() else t)
            else:
                _, tmod = model.embed_time(model._check_timestep(t, tokens.shape[0], tokens.device))
                tmod = tmod[:, None]
            model._check_parallel_tokens(tokens.shape[1])
            rope = model.rope(positions.to(tokens.device))
            return model.run_blocks(tokens, tmod, rope, model.embed_text(context), block_runner=block_runner)

        return self(low_level=run)

    # -- the forward of the release ---------------------------------------------------------

    @staticmethod
    def _check_timestep(timestep: torch.Tensor, batch: int, device) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, device=device)
        if timestep.ndim == 0:
            timestep = timestep.expand(batch)
        if timestep.shape != (batch,):
            raise ValueError(f"timestep must be [B] = [{batch}] (flow time x 1000), got {tuple(timestep.shape)}")
        if not timestep.is_floating_point():
            timestep = timestep.float()
        return timestep

    def _check_parallel_tokens(self, tokens: int) -> None:
        if self._cp_ranks > 1:  # before the sequence is split (by the rope module's hook)
            check_divisible(self.config.num_heads, tokens, self._cp_ranks)

    def _check_context(self, name: str, context: torch.Tensor, batch: int) -> None:
        text_dim = self.config.text_dim
        if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != text_dim:
            raise ValueError(f"{name} must be [B={batch}, L, text_dim={text_dim}] (this model's text "
                             f"encoder width), got {tuple(context.shape)}")

    def _check_latent(self, name: str, latent: torch.Tensor) -> None:
        c = self.config
        if latent.ndim != 5:
            raise ValueError(f"{name} must be [B, C, F, H, W], got shape {tuple(latent.shape)}")
        if latent.shape[1] != c.in_channels:
            raise ValueError(f"{name} has {latent.shape[1]} channels; this model takes {c.in_channels}")
        for size, p, axis in zip(latent.shape[2:], c.patch_size, "FHW"):
            if size % p:
                raise ValueError(f"{name} {axis}={size} is not a multiple of the patch size {p}")

    def forward(
        self,
        rgb_latent: Optional[torch.Tensor] = None,
        timestep: Optional[torch.Tensor] = None,
        context: Optional[torch.Tensor] = None,
        modality_latent: Optional[torch.Tensor] = None,
        modality: Optional[str] = None,
        modality_context: Optional[torch.Tensor] = None,
        block_runner: Optional[BlockRunner] = None,
        *,
        return_dict: bool = True,
        low_level: Optional[Callable[["UnityVideoTransformer"], object]] = None,
    ) -> Union[UnityVideoTransformerOutput, Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """Velocities of both streams.

        Args:
            rgb_latent: ``[B, C, F, H, W]`` RGB latent (noised, or clean at t = 0).
            timestep: ``[B]`` the noised stream's flow time t in [0, 1] times 1000 (one shared t
                for both streams, as the release; a scalar is broadcast).
            context: content prompt tokens ``[B, L, text_dim]``.
            modality_latent: ``[B, C, F, H, W]`` modality latent, or None for a plain Wan forward.
            modality: the release's modality name (``raft``, not the alias ``flow``: the edges
                resolve user names with :func:`unity_core.constants.resolve_modality`), or None
                to add no modality embedding (the release's behaviour for None).
            modality_context: modality prompt tokens ``[B, L', text_dim]``; None reuses the
                content prompt, as the release.
            block_runner: optional hook ``(index, fn, x) -> x`` around every block (block cache).
            return_dict: True (diffusers' default) returns a :class:`UnityVideoTransformerOutput`;
                False the tuple ``(sample, modality_sample)``, always two entries (the second
                None without a modality latent), so ``model(..., return_dict=False)[0]`` is the
                RGB velocity as in every diffusers model.
            low_level: instead of all the above, ``low_level(self)`` is run and its result
                returned as it is (``return_dict`` does not apply): the way the low-level pieces
                are called from outside so that hooks on this forward (group offloading's
                top-level group) are active around them.

        Returns:
            :class:`UnityVideoTransformerOutput` (``sample``: RGB velocity, ``modality_sample``:
            modality velocity or None), or with ``return_dict=False`` the tuple of the two; each
            shaped like its input. Velocity = noise - data (flow matching).

        Raises:
            ValueError: wrong shapes, channel count, sizes not multiples of the patch, batch
                mismatch, an unknown modality name, or a modality latent for a model without
                the modality stream.
        """
        if low_level is not None:
            return low_level(self)
        if rgb_latent is None or timestep is None or context is None:
            raise ValueError("forward needs rgb_latent, timestep and context")
        self._check_latent("rgb_latent", rgb_latent)
        batch = rgb_latent.shape[0]
        self._check_context("context", context, batch)
        name = check_release_modality(modality) if modality is not None else None
        if modality_latent is not None:
            self._require_modality_stream()
            if name is not None and name not in self.modality_embeddings:
                raise ValueError(f"modality {name!r} has no embedding in this model ({list(self.modality_embeddings)})")
        timestep = self._check_timestep(timestep, batch, rgb_latent.device)
        temb, tmod = self.embed_time(timestep)
        ctx = self.embed_text(context)
        rgb_tokens, grid = self.patchify(rgb_latent)

        if modality_latent is None:
            x = rgb_tokens
            self._check_parallel_tokens(x.shape[1])
            rope = self.rope(grid_positions(*grid, device=x.device))
            x = self.run_blocks(x, tmod[:, None], rope, ctx, block_runner=block_runner)
            out = self.unpatchify(self.rgb_head(x, temb), grid)
            return self._output(out.to(rgb_latent.dtype), None, return_dict)

        self._check_latent("modality_latent", modality_latent)
        if modality_latent.shape != rgb_latent.shape:
            raise ValueError(
                f"modality_latent {tuple(modality_latent.shape)} must match rgb_latent {tuple(rgb_latent.shape)}"
            )
        if modality_context is None:
            mctx = ctx
        else:
            self._check_context("modality_context", modality_context, batch)
            mctx = self.embed_text(modality_context)

        x = join_width(rgb_tokens, self.modality_tokens(modality_latent, name), grid)
        f, h, w = grid
        self._check_parallel_tokens(x.shape[1])
        rope = self.rope(grid_positions(f, h, 2 * w, device=x.device))
        tmod_tokens = tmod[:, None]
        if self.config.modality_switcher and name is not None:
            m_mod = tmod + self.switcher_mlp(self.switcher_embeddings(temb, name).to(tmod.dtype)).unflatten(1, (6, -1))
            n = f * h * w
            tmod_tokens = join_width(tmod[:, None].expand(-1, n, -1, -1), m_mod[:, None].expand(-1, n, -1, -1), grid)
        x = self.run_blocks(x, tmod_tokens, rope, ctx, grid, mctx, block_runner)
        xr, xm = split_width(x, grid)
        v_rgb = self.unpatchify(self.rgb_head(xr, temb), grid)
        v_mod = self.unpatchify(self.modality_head(xm, temb), grid)
        return self._output(v_rgb.to(rgb_latent.dtype), v_mod.to(modality_latent.dtype), return_dict)

    @staticmethod
    def _output(sample, modality_sample, return_dict: bool):
        if not return_dict:
            return sample, modality_sample
        return UnityVideoTransformerOutput(sample=sample, modality_sample=modality_sample)
