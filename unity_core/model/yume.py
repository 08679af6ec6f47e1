"""Yume-5B's forward (Yume 1.5, arXiv 2512.22096) as functions over our transformer.

Follows the release, stdstu12/YUME at commit 111c3fa (``wan23/modules/model.py``, the 5B
``WanModel`` with Yume's history packing, and ``fastvideo/sample/sample_5b.py``); the facts and a
float32 oracle of that code are in ``tests/fixtures/yume_oracle/``. The DiT is a stock
Wan2.2-TI2V-5B plus five history patch embeddings, which our model holds when it is built with
``history_embeddings=True`` (preset ``yume-5b``): ``patch_embedding_2x`` (kernel (1, 4, 4)),
``patch_embedding_4x`` (1, 8, 8), ``patch_embedding_8x`` (1, 16, 16), ``patch_embedding_16x``
(1, 32, 32), each 48 -> D, and ``patch_embedding_2x_f`` (1, 4, 4), 48 -> 48.

Two paths:

- :func:`plain_forward`: the plain Wan forward (the release's ``flag=False``), used for the first
  segment of a text-to-video walk. Zero tokens appended up to ``seq_len`` take part in
  self-attention as keys (unrotated), as in the release; the sampler never appends any.
- :func:`packed_forward`: ``[history | new frames]`` (``flag=True``). The history latents are
  cut into chunks chosen from their number N (:func:`history_chunks`); each chunk is zero-padded
  at the bottom/right to a multiple of its kernel and patchified with its own embedding; the
  history tokens come first, then the new frames at the base (1, 2, 2) patch. RoPE: temporal
  indices run consecutively over the chunks' frames (a chunk with f frames at offset o covers
  o..o+f-1), so the new frames start at N, or at 3 for N = 1, 2 (whose chunks repeat frames);
  row/column indices are each chunk's own coarse-grid indices. Every history token is
  modulated at t = 0 and every new token at the current t (per-token modulation, Wan2.2's
  separated timestep); history is clean, never re-noised (the 14B sampler differs). Only the
  new tokens go through the head and are unpatchified.

Both pad the text context with zero rows to ``text_len`` (512 for the real model) before the
text embedding; cross-attention sees every row, unmasked (the padded rows are not zero after
the embedding's biases). Our UMT5 encoder already pads with zero rows to 512, so a context from
it passes through unchanged.

Where this differs from our own compressed history (:mod:`unity_core.explore.history`, which
serves models without these embeddings): the coarse patch kernels here are the checkpoint's
trained convs, not interpolations of the base one; padding is zeros, not a repeated edge; the
chunks follow the release's tiers, not a fixed schedule; and the history is never re-noised.

Batches: the release handles one sample on the packed path; here a batch shares the history
layout (same N and size) and each sample has its own timestep.

Both run the model's low-level pieces (``patchify``, ``embed_time`` once per distinct timestep,
``embed_text``, ``run_blocks`` with per-token modulation ``[B, L, 6, D]``, ``rgb_head``,
``unpatchify``, :func:`~unity_core.model.transformer.rope_table`) inside the model's own
forward (``model(low_level=...)``), so hooks on it, such as group offloading, apply. The
timestep sinusoid is fed float64 timesteps, as the release's sampler builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from unity_core.model.keys import HISTORY_EMBEDDINGS
from unity_core.model.transformer import grid_positions, rope_table

#: Rows the release pads every text context to (``text_len`` of its config).
YUME_TEXT_LEN = 512
#: New latent frames per segment (the release's hard-coded ``latent_frame_zero``).
YUME_NEW_FRAMES = 8
#: Most history latent frames any tier covers (2 + 4 + 16 + 64 + 256 + 1024).
YUME_MAX_HISTORY = 1366

_TO_WIDTH = {k: name for name, (out, k) in HISTORY_EMBEDDINGS.items() if out == "dim"}  # 4: patch_embedding_2x, ...
_LATENT_TO_LATENT = [(name, k) for name, (out, k) in HISTORY_EMBEDDINGS.items() if out == "in"]  # [(.._2x_f, 4)]
#: Module names of the patch embedding(s) for each kernel (latent pixels per token side), from
#: :data:`~unity_core.model.keys.HISTORY_EMBEDDINGS`: 2 is the base patch, 4..32 one embedding
#: each (``patch_embedding_2x`` ... ``_16x``); 128 is the release's "64x": ``patch_embedding_2x_f``
#: (4 x 4, 48 -> 48) then ``_16x``.
HISTORY_CONVS = {
    2: ("patch_embedding",),
    **{k: (name,) for k, name in sorted(_TO_WIDTH.items())},
    **{k * max(_TO_WIDTH): (name, _TO_WIDTH[max(_TO_WIDTH)]) for name, k in _LATENT_TO_LATENT},
}
#: The release's name of each kernel's compression (relative to the base 2 x 2 patch).
KERNEL_NAMES = {2: "1x", 4: "2x", 8: "4x", 16: "8x", 32: "16x", 128: "64x"}
# Newest-first bands below a tier's coarsest kernel: 3 frames at 1x, 2 at 2x, 16 at 4x, ...
_BANDS = ((3, 2), (2, 4), (16, 8), (64, 16), (256, 32))
# (largest N of the tier, coarsest kernel) for tiers 2..5.
_TIERS = ((22, 8), (86, 16), (342, 32), (YUME_MAX_HISTORY, 128))


@dataclass(frozen=True)
class HistoryChunk:
    """History frames patchified together.

    Attributes:
        frames: history frame indices in time order (N = 1, 2 repeat frames, as the release).
        kernel: latent pixels per token side: 2 (the base patch), 4, 8, 16, 32, or 128 (the
            ``2x_f`` + ``16x`` chain).
    """

    frames: Tuple[int, ...]
    kernel: int

    @property
    def name(self) -> str:
        """The release's name: ``1x``, ``2x``, ``4x``, ``8x``, ``16x`` or ``64x``."""
        return KERNEL_NAMES[self.kernel]


def history_chunks(num_history: int) -> List[HistoryChunk]:
    """The release's chunks for N history latents, in token order (oldest first).

    ====== ==========================================================================
    N      chunks (frames -> compression)
    ====== ==========================================================================
    1      [0] 1x, [0] 2x, [0] 1x
    2      [0] 1x, [1] 2x, [1] 1x
    3-6    [0] 1x, [1..N-2] 2x, [N-1] 1x
    7-22   [0] 1x, [1..N-6] 4x, [N-5, N-4] 2x, [N-3..N-1] 1x
    23-86  [0] 1x, [1..N-22] 8x, [N-21..N-6] 4x, then as above
    87-342 [0] 2x, [1..N-86] 16x, [N-85..N-22] 8x, then as above
    -1366  [0] 2x, [1..N-342] 64x, [N-341..N-86] 16x, then as above
    ====== ==========================================================================

    Raises:
        ValueError: N < 1 (the packed path needs history; use :func:`plain_forward`) or
            N > 1366 (no tier covers it; the release fails there too).
    """
    n = int(num_history)
    if n < 1:
        raise ValueError(f"the packed forward needs at least one history latent, got {n}; "
                         "a first segment without history runs plain_forward")
    if n > YUME_MAX_HISTORY:
        raise ValueError(f"{n} history latents exceed the release's tiers ({YUME_MAX_HISTORY} at most); "
                         "keep fewer (e.g. history='start+last')")
    if n <= 2:
        last = n - 1
        return [HistoryChunk((0,), 2), HistoryChunk((last,), 4), HistoryChunk((last,), 2)]
    if n <= 6:
        return [HistoryChunk((0,), 2), HistoryChunk(tuple(range(1, n - 1)), 4), HistoryChunk((n - 1,), 2)]
    coarsest = next(k for top, k in _TIERS if n <= top)
    newest_first = []
    end = n
    for count, kernel in _BANDS:
        if kernel >= coarsest:
            break
        newest_first.append(HistoryChunk(tuple(range(end - count, end)), kernel))
        end -= count
    newest_first.append(HistoryChunk(tuple(range(1, end)), coarsest))
    first = 2 if n <= 86 else 4
    return [HistoryChunk((0,), first), *reversed(newest_first)]


def chunk_grid(kernel: int, height: int, width: int) -> Tuple[int, int]:
    """Token grid (rows, columns) of one frame of an ``height`` x ``width`` latent at ``kernel``:
    ceil(H / k) x ceil(W / k), and ceil(ceil(H / 4) / 32) for the 128 chain."""
    if kernel == 128:
        return -(-(-(-height // 4)) // 32), -(-(-(-width // 4)) // 32)
    return -(-height // kernel), -(-width // kernel)


def history_token_count(num_history: int, height: int, width: int) -> int:
    """History tokens of the packed sequence (e.g. 2,420 for N = 5 at a 44 x 80 latent)."""
    total = 0
    for chunk in history_chunks(num_history):
        rows, cols = chunk_grid(chunk.kernel, height, width)
        total += len(chunk.frames) * rows * cols
    return total


def has_history_embeddings(model) -> bool:
    """Whether ``model`` holds Yume's five history patch embeddings."""
    return all(hasattr(model, name) for names in HISTORY_CONVS.values() for name in names)


def check_yume_model(model) -> None:
    """Raise ``ValueError`` when ``model`` lacks Yume's history patch embeddings."""
    if not has_history_embeddings(model):
        raise ValueError("this model has no Yume history patch embeddings (patch_embedding_2x ... _2x_f); load a "
                         "Yume-5B checkpoint (preset 'yume-5b'), or explore with the derived history of "
                         "unity_core.explore.samplers.generate_long_video")


def _pad_to(latent: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero padding at the bottom/right to multiples of ``multiple`` (the release's ``convpadd``)."""
    h, w = latent.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(latent, (0, pw, 0, ph)) if ph or pw else latent


def embed_chunk(model, latent: torch.Tensor, kernel: int) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
    """Latent frames ``[B, C, f, H, W]`` -> (tokens ``[B, f*h*w, D]``, grid (f, h, w)) with the
    embedding(s) of ``kernel`` (:data:`HISTORY_CONVS`), zero-padding before each conv."""
    if kernel not in HISTORY_CONVS:
        raise ValueError(f"kernel must be one of {sorted(HISTORY_CONVS)}, got {kernel}")
    names = HISTORY_CONVS[kernel]
    if kernel == 2:
        return model.patchify(latent)
    check_yume_model(model)
    x = latent
    for name in names[:-1]:  # the 128 chain: 2x_f first, channels stay 48
        conv = getattr(model, name)
        x = conv(_pad_to(x, conv.kernel_size[-1]).to(getattr(model, "compute_dtype", conv.weight.dtype)))
    last = getattr(model, names[-1])
    return model.patchify(_pad_to(x, last.kernel_size[-1]), last)


@dataclass
class PackedHistory:
    """The packed sequence of :func:`pack_release_history`.

    Attributes:
        tokens: ``[B, L, D]``: history tokens, then the new frames'.
        positions: ``[L, 3]`` long RoPE indices (frame, row, column).
        num_history_tokens: where the new frames' tokens start.
        new_grid: (f, h, w) token grid of the new frames.
        chunks: the history chunks, in token order.
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    num_history_tokens: int
    new_grid: Tuple[int, int, int]
    chunks: List[HistoryChunk]


def pack_release_history(model, history: torch.Tensor, latent: torch.Tensor) -> PackedHistory:
    """``[history | new frames]`` as the release packs it (see the module docstring).

    Args:
        model: a Yume model (:func:`check_yume_model`).
        history: ``[B, C, N, H, W]`` clean latents, N >= 1.
        latent: ``[B, C, F, H, W]`` the new frames (F = 8 in the release).

    Raises:
        ValueError: N out of range, or shapes that do not match in batch, channels or size.
    """
    if history.ndim != 5 or latent.ndim != 5 or history.shape[:2] != latent.shape[:2] \
            or history.shape[3:] != latent.shape[3:]:
        raise ValueError(f"history {tuple(history.shape)} and latent {tuple(latent.shape)} must be [B, C, T, H, W] "
                         "with the same batch, channels and size")
    chunks = history_chunks(history.shape[2])
    device = latent.device
    parts, positions = [], []
    offset = 0
    for chunk in chunks:
        idx = torch.tensor(chunk.frames, device=history.device)
        tokens, grid = embed_chunk(model, history.index_select(2, idx), chunk.kernel)
        parts.append(tokens)
        positions.append(grid_positions(*grid, device=device) + torch.tensor([offset, 0, 0], device=device))
        offset += grid[0]
    n_hist = sum(p.shape[1] for p in parts)
    tokens, grid = model.patchify(latent)
    parts.append(tokens)
    positions.append(grid_positions(*grid, device=device) + torch.tensor([offset, 0, 0], device=device))
    return PackedHistory(torch.cat(parts, 1), torch.cat(positions, 0).long(), n_hist, grid, chunks)


def pad_context(context: torch.Tensor, text_len: int = YUME_TEXT_LEN) -> torch.Tensor:
    """Text tokens ``[B, L, text_dim]`` -> ``[B, text_len, text_dim]`` with zero rows appended.

    Raises:
        ValueError: not 3-D, or L > text_len.
    """
    if context.ndim != 3:
        raise ValueError(f"context must be [B, L, text_dim], got {tuple(context.shape)}")
    if context.shape[1] > text_len:
        raise ValueError(f"context has {context.shape[1]} rows; the release pads to text_len={text_len} and takes "
                         "no more (encode with at most that many tokens)")
    return F.pad(context, (0, 0, 0, text_len - context.shape[1]))


def _unity_config(model):
    return getattr(model, "unity_config", None) or model.config


def _rope(model, positions: torch.Tensor, num_pad: int = 0) -> torch.Tensor:
    """RoPE table for ``positions`` plus ``num_pad`` unrotated rows (padding tokens)."""
    table = rope_table(positions, _unity_config(model))
    if num_pad:
        table = torch.cat([table, torch.ones(num_pad, table.shape[1], dtype=table.dtype, device=table.device)])
    return table


def _timesteps(timestep, batch: int, device) -> torch.Tensor:
    """``[B]`` or ``[B, L]`` float64 timesteps (the release's sinusoid input is float64)."""
    t = torch.as_tensor(timestep, device=device)
    if not t.is_floating_point():
        t = t.double()
    t = t.to(torch.float64)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape[0] != batch or t.ndim > 2:
        raise ValueError(f"timestep must be [B={batch}] or [B, L] (flow time x 1000), got {tuple(t.shape)}")
    return t


def _token_modulation(model, t_tok: torch.Tensor):
    """Per-token timesteps ``[B, L]`` -> (values ``[U]``, index ``[B, L]`` into them, temb ``[U, D]``,
    tmod ``[B, L, 6, D]``); the embedding runs once per distinct value."""
    values, index = torch.unique(t_tok, return_inverse=True)
    temb, tmod = model.embed_time(values)
    return values, index, temb, tmod[index]


def _head(model, x: torch.Tensor, index: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """Head features for tokens ``[B, L, D]`` whose timestep is ``temb[index]`` (grouped by value)."""
    out = None
    for b in range(x.shape[0]):
        for u in index[b].unique().tolist():
            mask = index[b] == u
            y = model.rgb_head(x[b:b + 1, mask], temb[u:u + 1])
            if out is None:
                out = x.new_zeros(x.shape[0], x.shape[1], y.shape[-1], dtype=y.dtype)
            out[b:b + 1, mask] = y
    return out


def _check_inputs(model, latent: torch.Tensor, context: torch.Tensor) -> None:
    cfg = _unity_config(model)
    if latent.ndim != 5 or latent.shape[1] != cfg.in_channels:
        raise ValueError(f"latent must be [B, {cfg.in_channels}, F, H, W], got {tuple(latent.shape)}")
    if latent.shape[-2] % cfg.patch_size[1] or latent.shape[-1] % cfg.patch_size[2]:
        raise ValueError(f"latent size {tuple(latent.shape[-2:])} must be a multiple of the patch {cfg.patch_size[1:]}")
    if context.ndim != 3 or context.shape[0] not in (1, latent.shape[0]) or context.shape[2] != cfg.text_dim:
        raise ValueError(f"context must be [B, L, {cfg.text_dim}], got {tuple(context.shape)}")


def plain_forward(model, latent: torch.Tensor, timestep, context: torch.Tensor, *, seq_len: Optional[int] = None,
                  text_len: int = YUME_TEXT_LEN, block_runner=None) -> torch.Tensor:
    """The release's plain Wan forward (``flag=False``).

    Args:
        model: our transformer (any; a plain Wan base is all it uses).
        latent: ``[B, C, F, H, W]``.
        timestep: ``[B]`` flow time x 1000 (float64 keeps the release's sinusoid input), or
            ``[B, seq_len]`` per token (padding tokens included).
        context: ``[B, L, text_dim]``, zero-padded here to ``text_len`` rows.
        seq_len: token count with padding (default: no padding).
        block_runner: optional ``(index, fn, x) -> x`` hook around every block (block cache).

    Returns:
        velocity ``[B, C, F, H, W]`` float32.

    Raises:
        ValueError: bad shapes, seq_len below the token count, or a per-token timestep of the
            wrong length.
    """
    _check_inputs(model, latent, context)
    return model(low_level=lambda m: _plain(m, latent, timestep, context, seq_len, text_len, block_runner))


def _plain(model, latent, timestep, context, seq_len, text_len, block_runner):
    b = latent.shape[0]
    tokens, grid = model.patchify(latent)
    n = tokens.shape[1]
    seq_len = n if seq_len is None else int(seq_len)
    if seq_len < n:
        raise ValueError(f"seq_len {seq_len} is below the {n} tokens of the latent")
    x = F.pad(tokens, (0, 0, 0, seq_len - n))
    t = _timesteps(timestep, b, tokens.device)
    if t.ndim == 1:
        t = t[:, None].expand(b, seq_len)
    if t.shape[1] != seq_len:
        raise ValueError(f"a per-token timestep needs {seq_len} entries, got {t.shape[1]}")
    _, index, temb, tmod = _token_modulation(model, t)
    ctx = model.embed_text(pad_context(context, text_len).expand(b, -1, -1))
    rope = _rope(model, grid_positions(*grid, device=tokens.device), seq_len - n)
    x = model.run_blocks(x, tmod, rope, ctx, block_runner=block_runner)
    features = _head(model, x[:, :n], index[:, :n], temb)
    return model.unpatchify(features, grid).float()


def packed_forward(model, history: torch.Tensor, latent: torch.Tensor, timestep, context: torch.Tensor, *,
                   text_len: int = YUME_TEXT_LEN, block_runner=None) -> torch.Tensor:
    """The release's forward with history (``flag=True``): velocity of the new frames.

    Args:
        model: a Yume model (:func:`check_yume_model`).
        history: ``[B, C, N, H, W]`` clean latents, 1 <= N <= 1366; their tokens are modulated
            at t = 0.
        latent: ``[B, C, F, H, W]`` the noised new frames (F = 8 in the release).
        timestep: ``[B]`` (or a scalar) flow time x 1000 of the new frames.
        context: ``[B, L, text_dim]``, zero-padded here to ``text_len`` rows.
        block_runner: optional ``(index, fn, x) -> x`` hook around every block.

    Returns:
        velocity ``[B, C, F, H, W]`` float32 of the new frames only.

    Raises:
        ValueError: a model without history embeddings, N out of range, or bad shapes.
    """
    check_yume_model(model)
    _check_inputs(model, latent, context)
    return model(low_level=lambda m: _packed(m, history, latent, timestep, context, text_len, block_runner))


def _packed(model, history, latent, timestep, context, text_len, block_runner):
    b = latent.shape[0]
    packed = pack_release_history(model, history, latent)
    t = _timesteps(timestep, b, latent.device)
    if t.ndim != 1:
        raise ValueError(f"packed_forward takes one timestep per sample ([B]), got {tuple(t.shape)}")
    n_hist, n = packed.num_history_tokens, packed.tokens.shape[1]
    # the timestep of each token: 0 for the history, t for the new frames; embedded once per value
    # ([0, t_1 .. t_B]) and spread by layout, with static shapes (no unique: the forward compiles whole)
    temb, tmod_v = model.embed_time(torch.cat([t.new_zeros(1), t]))
    tmod = torch.cat([tmod_v[:1, None].expand(b, n_hist, -1, -1), tmod_v[1:, None].expand(b, n - n_hist, -1, -1)], 1)
    ctx = model.embed_text(pad_context(context, text_len).expand(b, -1, -1))
    x = model.run_blocks(packed.tokens, tmod, _rope(model, packed.positions), ctx, block_runner=block_runner)
    features = model.rgb_head(x[:, n_hist:], temb[1:])  # only new tokens reach the head, all at t
    return model.unpatchify(features, packed.new_grid).float()


def yume_velocity(model, history: Optional[torch.Tensor], latent: torch.Tensor, timestep, context: torch.Tensor, *,
                  text_len: int = YUME_TEXT_LEN, block_runner=None) -> torch.Tensor:
    """:func:`packed_forward` with history, :func:`plain_forward` without (None or N = 0): the
    velocity of ``latent`` as the release's sampler asks for it."""
    if history is None or history.shape[2] == 0:
        return plain_forward(model, latent, timestep, context, text_len=text_len, block_runner=block_runner)
    return packed_forward(model, history, latent, timestep, context, text_len=text_len, block_runner=block_runner)


__all__ = [
    "HISTORY_CONVS", "HistoryChunk", "KERNEL_NAMES", "PackedHistory", "YUME_MAX_HISTORY", "YUME_NEW_FRAMES",
    "YUME_TEXT_LEN", "check_yume_model", "chunk_grid", "embed_chunk", "has_history_embeddings", "history_chunks",
    "history_token_count", "pack_release_history", "packed_forward", "pad_context", "plain_forward", "yume_velocity",
]
