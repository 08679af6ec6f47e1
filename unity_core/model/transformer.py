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
diffusers for the base and the release for the additions; ``checkpoint.py`` maps the official,
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
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanTimeTextImageEmbedding, WanTransformerBlock

from unity_core.constants import resolve_modality
from unity_core.model.config import UnityVideoConfig

BlockRunner = Callable[[int, Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Position and time encodings (computed the release's way: float64 / complex128)
# ----------------------------------------------------------------------------------------------


def timestep_sinusoid(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal timestep embedding ``[B, dim]`` = cat(cos(t w), sin(t w)), w_k = 10000^(-k/(dim/2)).

    Computed in float64 and cast back to the timestep's dtype, as Wan's original code does.

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
    """Rotate ``x`` ``[B, N, heads, head_dim]`` by ``table`` ``[N, head_dim/2]`` (interleaved pairs)."""
    b, n, h, d = x.shape
    xc = torch.view_as_complex(x.to(torch.float64).reshape(b, n, h, d // 2, 2))
    out = torch.view_as_real(xc * table[None, :, None, :]).reshape(b, n, h, d)
    return out.to(x.dtype)


class _RopeAttnProcessor:
    """Attention for ``WanAttention`` with float64 RoPE (rotary_emb = complex table or None)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None, **kwargs):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(context)).unflatten(2, (attn.heads, -1))
        v = attn.to_v(context).unflatten(2, (attn.heads, -1))
        if rotary_emb is not None:
            q = apply_rope(q, rotary_emb)
            k = apply_rope(k, rotary_emb)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = out.transpose(1, 2).flatten(2).type_as(hidden_states)
        return attn.to_out[0](out)


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
    ``modulation``).
    """

    def __init__(self, config: UnityVideoConfig):
        super().__init__(config.dim, config.ffn_dim, config.num_heads, "rms_norm_across_heads", True, config.eps)
        self.attn1.set_processor(_RopeAttnProcessor())
        self.attn2.set_processor(_RopeAttnProcessor())

    def _cross(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x + self.attn2(self.norm2(x.float()).type_as(x), context)

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        tmod: torch.Tensor,
        rope: torch.Tensor,
        context: torch.Tensor,
        grid: Optional[Tuple[int, int, int]] = None,
        modality_context: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """One block.

        Args:
            x: tokens ``[B, N, D]``.
            tmod: timestep modulation ``[B, 1, 6, D]`` (shared) or ``[B, N, 6, D]`` (per token).
            rope: :func:`rope_table` for the N tokens.
            context: embedded content prompt ``[B, L, D]``.
            grid: per-stream token grid (f, h, w) when x is the joint (f, h, 2w) sequence; None
                for a single stream.
            modality_context: embedded modality prompt ``[B, L', D]`` for the modality tokens.
        """
        e = (self.scale_shift_table[None] + tmod.float()).unbind(2)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = e
        y = (self.norm1(x.float()) * (1 + scale_msa) + shift_msa).type_as(x)
        x = (x.float() + self.attn1(y, None, None, rope) * gate_msa).type_as(x)
        if grid is None:
            x = self._cross(x, context)
        else:
            xr, xm = split_width(x, grid)
            x = join_width(self._cross(xr, context), self._cross(xm, modality_context), grid)
        y = (self.norm3(x.float()) * (1 + scale_mlp) + shift_mlp).type_as(x)
        return (x.float() + self.ffn(y).float() * gate_mlp).type_as(x)


class OutputHead(nn.Module):
    """Wan's output head under the release's names: ``modulation`` ``[1, 2, D]`` and ``head``."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return _modulated_head(x, temb, self.norm, self.head, self.modulation)


def _modulated_head(x, temb, norm, linear, table):
    # Per-sample shift/scale: [1, 2, D] + [B, 1, D] (the release omits the unsqueeze).
    shift, scale = (table + temb[:, None, :].to(table.dtype)).chunk(2, dim=1)
    return linear((norm(x.float()) * (1 + scale) + shift).type_as(x))


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


class UnityVideoTransformer(nn.Module):
    """UnityVideo's DiT (see the module docstring). Build with ``UnityVideoTransformer(config)``.

    Parameters (diffusers names for the Wan base, release names for the additions):
    ``patch_embedding``, ``condition_embedder``, ``blocks``, ``norm_out`` / ``proj_out`` /
    ``scale_shift_table`` (RGB head), ``flow_patch_embedding``, ``flow_in``,
    ``modality_embeddings``, ``flow_head``; with ``config.modality_switcher`` also
    ``switcher_embeddings`` and ``switcher_mlp``.
    """

    def __init__(self, config: UnityVideoConfig):
        super().__init__()
        self.config = config
        d, patch = config.dim, config.patch_size
        out_features = config.out_channels * math.prod(patch)
        self.patch_embedding = nn.Conv3d(config.in_channels, d, kernel_size=patch, stride=patch)
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=d, time_freq_dim=config.freq_dim, time_proj_dim=6 * d, text_embed_dim=config.text_dim
        )
        self.blocks = nn.ModuleList(UnityVideoBlock(config) for _ in range(config.num_layers))
        self.norm_out = FP32LayerNorm(d, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(d, out_features)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, d) / d**0.5)

        # UnityVideo additions, initialised as the release does.
        self.flow_patch_embedding = nn.Conv3d(config.in_channels, d, kernel_size=patch, stride=patch)
        self.flow_in = nn.Linear(d, d)
        self.modality_embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m in config.modalities})
        self.flow_head = OutputHead(d, out_features, config.eps)
        if config.modality_switcher:
            # Paper form of the switcher: modality-stream AdaLN parameters from MLP(L_m + t_emb).
            self.switcher_embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m in config.modalities})
            self.switcher_mlp = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.gradient_checkpointing = False
        self.reset_unity_parameters()

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
        if self.patch_embedding.weight.is_meta:
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
    def dtype(self) -> torch.dtype:
        return self.proj_out.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.proj_out.weight.device

    # -- low-level pieces -------------------------------------------------------------------

    def embed_time(self, timestep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Timestep ``[B]`` (flow time x 1000) -> (temb ``[B, D]``, tmod ``[B, 6, D]``)."""
        ce = self.condition_embedder
        sin = timestep_sinusoid(timestep, self.config.freq_dim).to(self.dtype)
        temb = ce.time_embedder(sin)
        tmod = ce.time_proj(ce.act_fn(temb)).unflatten(1, (6, -1))
        return temb, tmod

    def embed_text(self, context: torch.Tensor) -> torch.Tensor:
        """Text encoder tokens ``[B, L, text_dim]`` -> ``[B, L, D]``."""
        return self.condition_embedder.text_embedder(context.to(self.dtype))

    def patchify(self, latent: torch.Tensor, conv: Optional[nn.Conv3d] = None) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        """Latent ``[B, C, F, H, W]`` -> (tokens ``[B, f*h*w, D]``, grid (f, h, w)) with ``conv``
        (default: the RGB ``patch_embedding``)."""
        conv = self.patch_embedding if conv is None else conv
        x = conv(latent.to(self.dtype))
        grid = tuple(x.shape[2:])
        return x.flatten(2).transpose(1, 2).contiguous(), grid  # type: ignore[return-value]

    def modality_tokens(self, latent: torch.Tensor, modality: Optional[str]) -> torch.Tensor:
        """Modality latent -> tokens: flow_patch_embedding, flow_in, + modality embedding."""
        tokens, _ = self.patchify(latent, self.flow_patch_embedding)
        tokens = self.flow_in(tokens)
        if modality is not None:
            tokens = tokens + self.modality_embeddings[modality].to(tokens.dtype)
        return tokens

    def rgb_head(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """RGB velocity features ``[B, N, C*pt*ph*pw]`` from tokens ``[B, N, D]``."""
        return _modulated_head(tokens, temb, self.norm_out, self.proj_out, self.scale_shift_table)

    def modality_head(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """Modality velocity features from tokens, with ``flow_head``."""
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
        """Run every block; ``block_runner(index, fn, x)`` replaces ``fn(x)`` when given."""
        for i, block in enumerate(self.blocks):

            def fn(h, block=block):
                if self.gradient_checkpointing and torch.is_grad_enabled():
                    return torch.utils.checkpoint.checkpoint(
                        block, h, tmod, rope, context, grid, modality_context, use_reentrant=False
                    )
                return block(h, tmod, rope, context, grid, modality_context)

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

        Args:
            tokens: ``[B, N, D]`` (e.g. from :meth:`patchify` with coarser kernels).
            positions: ``[N, 3]`` integer RoPE positions (frame, row, column).
            timestep: ``[B]`` flow time x 1000.
            context: raw text tokens ``[B, L, text_dim]`` (embedded here).

        Returns:
            tokens ``[B, N, D]`` after the last block; feed them to :meth:`rgb_head`.
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.dim:
            raise ValueError(f"tokens must be [B, N, {self.config.dim}], got {tuple(tokens.shape)}")
        if positions.shape[0] != tokens.shape[1]:
            raise ValueError(f"{positions.shape[0]} positions for {tokens.shape[1]} tokens")
        self._check_context("context", context, tokens.shape[0])
        _, tmod = self.embed_time(self._check_timestep(timestep, tokens.shape[0]))
        rope = rope_table(positions.to(tokens.device), self.config)
        return self.run_blocks(tokens, tmod[:, None], rope, self.embed_text(context), block_runner=block_runner)

    # -- the forward of the release ---------------------------------------------------------

    def _check_timestep(self, timestep: torch.Tensor, batch: int) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, device=self.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(batch)
        if timestep.shape != (batch,):
            raise ValueError(f"timestep must be [B] = [{batch}] (flow time x 1000), got {tuple(timestep.shape)}")
        if not timestep.is_floating_point():
            timestep = timestep.float()
        return timestep

    def _check_context(self, name: str, context: torch.Tensor, batch: int) -> None:
        if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != self.config.text_dim:
            raise ValueError(f"{name} must be [B={batch}, L, text_dim={self.config.text_dim}] (this model's text "
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
        rgb_latent: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        modality_latent: Optional[torch.Tensor] = None,
        modality: Optional[str] = None,
        modality_context: Optional[torch.Tensor] = None,
        block_runner: Optional[BlockRunner] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Velocities of both streams.

        Args:
            rgb_latent: ``[B, C, F, H, W]`` RGB latent (noised, or clean at t = 0).
            timestep: ``[B]`` the noised stream's flow time t in [0, 1] times 1000 (one shared t
                for both streams, as the release; a scalar is broadcast).
            context: content prompt tokens ``[B, L, text_dim]``.
            modality_latent: ``[B, C, F, H, W]`` modality latent, or None for a plain Wan forward.
            modality: modality name (aliases accepted), or None to add no modality embedding
                (the release's behaviour for None).
            modality_context: modality prompt tokens ``[B, L', text_dim]``; None reuses the
                content prompt, as the release.
            block_runner: optional hook ``(index, fn, x) -> x`` around every block (block cache).

        Returns:
            (rgb_velocity, modality_velocity), each shaped like its input; the second is None
            without a modality latent. Velocity = noise - data (flow matching).

        Raises:
            ValueError: wrong shapes, channel count, sizes not multiples of the patch, batch
                mismatch, or an unknown modality name.
        """
        self._check_latent("rgb_latent", rgb_latent)
        batch = rgb_latent.shape[0]
        self._check_context("context", context, batch)
        name = resolve_modality(modality) if modality is not None else None
        if name is not None and name not in self.modality_embeddings:
            raise ValueError(f"modality {name!r} has no embedding in this model ({list(self.modality_embeddings)})")
        timestep = self._check_timestep(timestep, batch)
        temb, tmod = self.embed_time(timestep)
        ctx = self.embed_text(context)
        rgb_tokens, grid = self.patchify(rgb_latent)

        if modality_latent is None:
            x = rgb_tokens
            rope = rope_table(grid_positions(*grid, device=x.device), self.config)
            x = self.run_blocks(x, tmod[:, None], rope, ctx, block_runner=block_runner)
            out = self.unpatchify(self.rgb_head(x, temb), grid)
            return out.to(rgb_latent.dtype), None

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
        rope = rope_table(grid_positions(f, h, 2 * w, device=x.device), self.config)
        tmod_tokens = tmod[:, None]
        if self.config.modality_switcher and name is not None:
            m_mod = tmod + self.switcher_mlp(self.switcher_embeddings[name] + temb).unflatten(1, (6, -1))
            n = f * h * w
            tmod_tokens = join_width(tmod[:, None].expand(-1, n, -1, -1), m_mod[:, None].expand(-1, n, -1, -1), grid)
        x = self.run_blocks(x, tmod_tokens, rope, ctx, grid, mctx, block_runner)
        xr, xm = split_width(x, grid)
        v_rgb = self.unpatchify(self.rgb_head(xr, temb), grid)
        v_mod = self.unpatchify(self.modality_head(xm, temb), grid)
        return v_rgb.to(rgb_latent.dtype), v_mod.to(modality_latent.dtype)
