"""Yume's compressed history (arXiv 2507.17744, sec. 3.2): past latents are patchified more
coarsely the older they are, and concatenated in front of the segment being generated.

Patch embeddings
----------------
The base patch embedding is the DiT's RGB ``Conv3d`` with kernel = stride = (1, 2, 2). The
coarser ones, (1, 4, 4), (1, 8, 8), (1, 16, 16), (1, 32, 32), are derived from it, not
trained: the base kernel ``[D, C, 1, 2, 2]`` is resized to ``[D, C, 1, k, k]`` with trilinear
interpolation (``align_corners=False``, as Yume's ``upsample_conv3d_weights``) and then
multiplied by (2 * 2) / (k * k). Yume's code stops after the interpolation; the rescale is ours
and makes a coarse token of a constant latent equal to the base token of that latent: for a
2 -> k upsampling with ``align_corners=False`` every source tap receives total weight k / 2 per
axis, so the interpolated kernel sums to (k / 2)^2 times the base kernel, and the factor
(2 / k)^2 restores the sum. Any remaining rounding difference is spread uniformly over the
k * k taps, so the sums match to float precision. The bias is copied.

Schedule
--------
A :class:`HistorySchedule` lists groups newest first as (number of latent frames, spatial
kernel). The paper's scheme (:data:`PAPER_SCHEDULE`): the two newest history latents at
(1, 2, 2), the next four at (1, 4, 4), the next seventeen at (1, 8, 8), and the initial frame
(the start image) at (1, 2, 2). Frames older than the schedule covers (apart from the initial
frame) are dropped, so the sequence length, and so the time per segment, stops growing once the
schedule is full. :meth:`HistorySchedule.fit` adapts a schedule to small latents (kernels that
would reduce a frame to one token anyway are clamped to the smallest kernel that does).

Token order and RoPE positions
------------------------------
History groups oldest first (initial frame, then the coarsest group, ..., the newest group),
then the new segment; inside a group frames in time order, tokens row-major. Temporal RoPE
indices are consecutive over the kept frames: the k-th kept history frame gets index k and the
new segment's frames follow (so dropped frames leave no gap, as in Yume's code). Row and column
positions are the token's indices in its own (coarse) grid, as Yume's ``up_fre`` does
(``spatial="grid"``); ``spatial="scaled"`` instead places a coarse token at its block's top-left
base-token position (an option, not Yume's).

Spatial sizes that are not multiples of a coarse kernel are padded by repeating the edge (Yume's
code pads with zeros; repeating the edge keeps the constant-input property at the border).

This module serves models without trained history embeddings (the default model, UnityVideo).
The released Yume-5B has them; its forward, with the release's tiers, zero padding and clean
history at t = 0, is :mod:`unity_core.model.yume`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from unity_core.model.keys import HISTORY_EMBEDDINGS

#: Spatial kernels Yume derives from the base (1, 2, 2) one: those of its history patch embeddings
#: to the model width (``patch_embedding_2x`` ... ``_16x``: 4, 8, 16, 32).
COARSE_KERNELS = tuple(sorted(k for out, k in HISTORY_EMBEDDINGS.values() if out == "dim"))


def _check_kernel(kernel: int) -> None:
    if int(kernel) not in (2, *COARSE_KERNELS):
        raise ValueError(f"history kernel must be 2, 4, 8, 16 or 32 (the base patch or a derived one), got {kernel}")


@dataclass(frozen=True)
class HistorySchedule:
    """Which history latents are kept and how coarsely each is patchified.

    Attributes:
        groups: ``((count, kernel), ...)`` newest first; ``count`` latent frames patchified with
            a (1, kernel, kernel) patch embedding. Kernels are the base patch (2) times a power
            of two.
        first_frame_kernel: kernel of the initial history frame (the start image), or 0 to treat
            it like any other frame.
        spatial: ``"grid"`` (Yume's code: row/column index in the coarse grid) or ``"scaled"``
            (top-left base-token position of the coarse block).

    Raises:
        ValueError: a count < 1, a kernel that is not 2 * 2^j, or an unknown ``spatial``.
    """

    groups: Tuple[Tuple[int, int], ...] = ((2, 2), (4, 4), (17, 8))
    first_frame_kernel: int = 2
    spatial: str = "grid"

    def __post_init__(self) -> None:
        groups = tuple((int(c), int(k)) for c, k in self.groups)
        object.__setattr__(self, "groups", groups)
        for count, kernel in groups:
            if count < 1:
                raise ValueError(f"history group count must be >= 1, got {count} in {groups}")
            _check_kernel(kernel)
        if self.first_frame_kernel:
            _check_kernel(self.first_frame_kernel)
        if self.spatial not in ("grid", "scaled"):
            raise ValueError(f"spatial must be 'grid' or 'scaled', got {self.spatial!r}")

    @property
    def capacity(self) -> int:
        """History latents kept besides the initial frame."""
        return sum(c for c, _ in self.groups)

    def fit(self, height: int, width: int, base: int = 2) -> "HistorySchedule":
        """Adapt to a latent of ``height`` x ``width``: kernels larger than the smallest one that
        already gives a single token per frame are clamped to it (same token count, less
        padding). E.g. an 8 x 8 latent keeps (1, 8, 8) and turns (1, 16, 16) into (1, 8, 8)."""
        one_token = base
        while one_token < max(height, width):
            one_token *= 2
        clamp = lambda k: min(k, one_token) if k > base else k  # noqa: E731
        return replace(self, groups=tuple((c, clamp(k)) for c, k in self.groups),
                       first_frame_kernel=clamp(self.first_frame_kernel) if self.first_frame_kernel else 0)


#: The paper's scheme (2 @ 2x2, 4 @ 4x4, 17 @ 8x8 newest first, initial frame @ 2x2).
PAPER_SCHEDULE = HistorySchedule()


def parse_schedule(text: str, first_frame_kernel: int = 2, spatial: str = "grid") -> HistorySchedule:
    """``"2@2,4@4,17@8"`` (count@kernel, newest first) -> :class:`HistorySchedule`.

    Raises:
        ValueError: a malformed item (named) or a bad kernel.
    """
    groups = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        count, sep, kernel = item.partition("@")
        if not sep or not count.isdigit() or not kernel.isdigit():
            raise ValueError(f"bad history group {item!r}; write count@kernel, e.g. '2@2,4@4,17@8'")
        groups.append((int(count), int(kernel)))
    if not groups:
        raise ValueError(f"empty history schedule {text!r}; e.g. '2@2,4@4,17@8'")
    return HistorySchedule(tuple(groups), first_frame_kernel, spatial)


# ----------------------------------------------------------------------------------------------
# Patch embeddings
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def derive_patch_embedding(base: nn.Conv3d, kernel: int) -> nn.Conv3d:
    """A (pt, kernel, kernel) patch embedding derived from ``base`` (kernel = stride (pt, p, p)).

    Weights: trilinear resize of the base kernel, times (p * p) / (kernel * kernel), plus a
    uniform correction so each (out, in) kernel sums exactly like the base one (see the module
    docstring); bias copied. A constant latent gives the same token as with ``base``.

    Raises:
        ValueError: ``kernel`` not a multiple of the base spatial patch, or a non-square base.
    """
    pt, ph, pw = base.kernel_size
    if ph != pw or tuple(base.stride) != tuple(base.kernel_size):
        raise ValueError(f"base patch embedding must have a square spatial kernel equal to its stride, got {base.kernel_size}")
    if kernel % ph:
        raise ValueError(f"kernel {kernel} is not a multiple of the base patch {ph}")
    w = base.weight.float()
    big = F.interpolate(w, size=(pt, kernel, kernel), mode="trilinear", align_corners=False)
    big = big * (ph * pw) / (kernel * kernel)
    # a coarse token integrates kernel^2 latent pixels, so equal kernel sums = equal response
    big = big + (w.sum(dim=(2, 3, 4), keepdim=True) - big.sum(dim=(2, 3, 4), keepdim=True)) / (pt * kernel * kernel)
    conv = nn.Conv3d(base.in_channels, base.out_channels, (pt, kernel, kernel), stride=(pt, kernel, kernel),
                     bias=base.bias is not None)
    conv.weight.copy_(big.to(base.weight.dtype))
    if base.bias is not None:
        conv.bias.copy_(base.bias)
    return conv.to(device=base.weight.device, dtype=base.weight.dtype)


class HistoryPatchEmbedder(nn.Module):
    """The base patch embedding and the coarse ones derived from it.

    Not part of the model's state dict (derived, never trained here): build it from the model,
    and rebuild it (:meth:`refresh`) after the model's weights change.

    Args:
        base: the DiT's RGB patch embedding (``model.patch_embedding``).
        kernels: coarse spatial kernels to derive (default 4, 8, 16, 32).
    """

    def __init__(self, base: nn.Conv3d, kernels: Sequence[int] = COARSE_KERNELS):
        super().__init__()
        self.base = base
        self.kernels = tuple(int(k) for k in kernels)
        self.coarse = nn.ModuleDict()
        self.refresh()

    @classmethod
    def from_model(cls, model, kernels: Sequence[int] = COARSE_KERNELS) -> "HistoryPatchEmbedder":
        """From a :class:`~unity_core.model.UnityVideoTransformer` (its ``patch_embedding``)."""
        return cls(model.patch_embedding, kernels)

    @torch.no_grad()
    def refresh(self) -> None:
        """Re-derive the coarse embeddings from the base one."""
        base_k = self.base.kernel_size[1]
        self.coarse = nn.ModuleDict({str(k): derive_patch_embedding(self.base, k) for k in self.kernels if k != base_k})

    @property
    def base_kernel(self) -> int:
        return int(self.base.kernel_size[1])

    def conv(self, kernel: int) -> nn.Conv3d:
        """The patch embedding for a spatial ``kernel``.

        Raises:
            ValueError: a kernel that was not derived (the message lists the available ones).
        """
        if kernel == self.base_kernel:
            return self.base
        if str(kernel) not in self.coarse:
            raise ValueError(f"no patch embedding for kernel {kernel}; available: {[self.base_kernel, *self.kernels]}")
        return self.coarse[str(kernel)]

    def embed(self, latent: torch.Tensor, kernel: int) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        """Latent ``[B, C, F, H, W]`` -> (tokens ``[B, f*h*w, D]``, grid (f, h, w)) with the
        (pt, kernel, kernel) embedding; H and W are edge-padded up to multiples of ``kernel``."""
        conv = self.conv(kernel)
        h, w = latent.shape[-2:]
        ph, pw = (-h) % kernel, (-w) % kernel
        if ph or pw:
            latent = F.pad(latent, (0, pw, 0, ph, 0, 0), mode="replicate")
        x = conv(latent.to(conv.weight.dtype))
        grid = tuple(int(s) for s in x.shape[2:])
        return x.flatten(2).transpose(1, 2), grid  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------
# Planning and packing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryGroup:
    """History frames patchified together: ``frames`` (indices into the full history, in time
    order) with a (1, ``kernel``, ``kernel``) embedding."""

    frames: Tuple[int, ...]
    kernel: int


def plan_history(num_history: int, schedule: HistorySchedule = PAPER_SCHEDULE) -> List[HistoryGroup]:
    """Which history frames are kept, grouped by kernel, oldest group first.

    Args:
        num_history: latent frames in the history (frame 0 = the initial frame).

    Returns:
        groups in token order; empty groups are left out. Frames older than the schedule's
        capacity (except frame 0 when ``first_frame_kernel`` is set) are not in any group.

    Raises:
        ValueError: ``num_history`` < 0.
    """
    if num_history < 0:
        raise ValueError(f"num_history must be >= 0, got {num_history}")
    first = schedule.first_frame_kernel and num_history >= 1
    rest = list(range(1 if first else 0, num_history))
    newest_first: List[HistoryGroup] = []
    for count, kernel in schedule.groups:
        if not rest:
            break
        take, rest = rest[-count:], rest[:-count]
        newest_first.append(HistoryGroup(tuple(take), kernel))
    groups = list(reversed(newest_first))
    if first:
        groups.insert(0, HistoryGroup((0,), schedule.first_frame_kernel))
    return groups


def kept_frames(num_history: int, schedule: HistorySchedule = PAPER_SCHEDULE) -> List[int]:
    """History frame indices that enter the sequence, in time order."""
    return [f for g in plan_history(num_history, schedule) for f in g.frames]


@dataclass
class PackedSequence:
    """A compressed-history token sequence ready for ``model.forward_tokens``.

    Attributes:
        tokens: ``[B, N, D]``: history tokens, then the new segment's.
        positions: ``[N, 3]`` long RoPE positions (frame, row, column).
        new_slice: where the new segment's tokens are (``tokens[:, new_slice]``).
        new_grid: (f, h, w) token grid of the new segment (for ``model.unpatchify``).
        groups: the history groups, with ``token_slices`` giving each one's tokens.
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    new_slice: slice
    new_grid: Tuple[int, int, int]
    groups: List[HistoryGroup] = field(default_factory=list)
    token_slices: List[slice] = field(default_factory=list)

    @property
    def num_history_tokens(self) -> int:
        return self.new_slice.start


def _positions(t0: int, grid: Tuple[int, int, int], scale: int, device) -> torch.Tensor:
    f, h, w = grid
    t = torch.arange(t0, t0 + f, device=device)
    r = torch.arange(h, device=device) * scale
    c = torch.arange(w, device=device) * scale
    return torch.stack(torch.meshgrid(t, r, c, indexing="ij"), -1).reshape(-1, 3)


def pack_compressed_history(
    embedder: HistoryPatchEmbedder,
    history: Optional[torch.Tensor],
    new_latent: torch.Tensor,
    schedule: HistorySchedule = PAPER_SCHEDULE,
    history_is_selected: bool = False,
) -> PackedSequence:
    """Build the token sequence [compressed history | new segment].

    Args:
        embedder: patch embeddings (base + derived).
        history: ``[B, C, T, H, W]`` past latents, frame 0 the initial frame; None or T = 0 for
            no history. With ``history_is_selected`` it holds only the kept frames
            (:func:`kept_frames`, in that order), which saves re-noising frames that are dropped.
        new_latent: ``[B, C, F, H, W]`` the segment being generated, patchified with the base
            embedding.
        schedule: the compression schedule.

    Returns:
        :class:`PackedSequence` (tokens, positions, new_slice, new_grid).

    Raises:
        ValueError: mismatched batch, channels or spatial size, or a wrong rank.
    """
    if new_latent.ndim != 5:
        raise ValueError(f"new_latent must be [B, C, F, H, W], got {tuple(new_latent.shape)}")
    device = new_latent.device
    parts: List[torch.Tensor] = []
    pos: List[torch.Tensor] = []
    slices: List[slice] = []
    groups: List[HistoryGroup] = []
    n = 0
    t_index = 0
    base = embedder.base_kernel
    if history is not None and history.shape[2] > 0:
        if history.ndim != 5 or history.shape[0] != new_latent.shape[0] or history.shape[1] != new_latent.shape[1] \
                or history.shape[3:] != new_latent.shape[3:]:
            raise ValueError(f"history {tuple(history.shape)} must be [B, C, T, H, W] matching new_latent "
                             f"{tuple(new_latent.shape)} in batch, channels and size")
        groups = (_plan_selected if history_is_selected else plan_history)(history.shape[2], schedule)
        for g in groups:
            idx = torch.tensor(g.frames, device=history.device)
            tok, grid = embedder.embed(history.index_select(2, idx), g.kernel)
            scale = g.kernel // base if schedule.spatial == "scaled" else 1
            parts.append(tok)
            pos.append(_positions(t_index, grid, scale, device))
            slices.append(slice(n, n + tok.shape[1]))
            n += tok.shape[1]
            t_index += grid[0]
    tok, grid = embedder.embed(new_latent, base)
    parts.append(tok)
    pos.append(_positions(t_index, grid, 1, device))
    new_slice = slice(n, n + tok.shape[1])
    return PackedSequence(torch.cat(parts, 1), torch.cat(pos, 0).long(), new_slice, grid, groups, slices)


def _plan_selected(num_selected: int, schedule: HistorySchedule) -> List[HistoryGroup]:
    """Plan for a history that already holds only kept frames: the same grouping as
    :func:`plan_history`, with frame indices into the selection."""
    groups = plan_history(num_selected, schedule)
    # a selection never holds dropped frames, so its plan keeps every frame
    if sum(len(g.frames) for g in groups) != num_selected:
        raise ValueError(f"{num_selected} selected frames exceed the schedule's capacity "
                         f"({schedule.capacity} + initial frame); select with kept_frames()")
    return groups


def select_history(history: torch.Tensor, schedule: HistorySchedule = PAPER_SCHEDULE) -> torch.Tensor:
    """The kept frames ``[B, C, T', H, W]`` of a history (see :func:`kept_frames`)."""
    idx = kept_frames(history.shape[2], schedule)
    return history[:, :, idx]


def sequence_length(num_history: int, latent_hw: Tuple[int, int], new_frames: int,
                    schedule: HistorySchedule = PAPER_SCHEDULE, base: int = 2) -> int:
    """Number of tokens :func:`pack_compressed_history` produces (for planning and benches)."""
    h, w = latent_hw
    n = new_frames * (h // base) * (w // base)
    for g in plan_history(num_history, schedule):
        n += len(g.frames) * (-(-h // g.kernel)) * (-(-w // g.kernel))
    return n


__all__ = [
    "COARSE_KERNELS", "HistoryGroup", "HistoryPatchEmbedder", "HistorySchedule", "PAPER_SCHEDULE", "PackedSequence",
    "derive_patch_embedding", "kept_frames", "pack_compressed_history", "parse_schedule", "plan_history",
    "select_history", "sequence_length",
]
