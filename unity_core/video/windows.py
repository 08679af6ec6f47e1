"""Windowed estimation and control over clips of any length (pure machinery, no I/O).

A clip of ``n`` output frames (the source's frames from ``start`` to ``end`` every ``stride``)
is cut into windows of the model's native length (17 frames for the default, 33 for the 5B),
overlapping by ``overlap`` frames; the last window is aligned to the clip's end so no frame is
left out, and a clip shorter than one window is padded by repeating its last frame (the padding
is dropped from the output). Each window is sampled at the model's size
(:func:`model_size`), later windows conditioned on what the previous window produced for the
frames they share (:class:`KnownFrames`), and the windows' values are stitched
(:class:`Stitcher`: per modality rules) and taken back to the source resolution
(:func:`to_source_size`). Every output frame is emitted exactly once, as soon as no later
window can change it, so a caller can write the clip window by window in bounded memory.

This follows the anchors of whole-video depth: Video Depth Anything (arXiv 2501.12375: 32-frame
windows, least-squares scale and shift on the overlap, then a blend) and DepthCrafter (110-frame
windows, 25 frames of overlap, stitched by linear interpolation). Yume's long-video module
(:mod:`unity_core.explore.long_video`) is a different job (generation that continues a walk);
what both share is the Wan VAE's 4k+1 frame rule (:func:`unity_core.io.check_frame_count`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from unity_core.constants import TEMPORAL_RATIO
from unity_core.metrics import fit_scale_shift  # the one home of the least-squares alignment

#: Modalities the stitcher knows, plus ``rgb`` (the produced stream of controllable generation).
STITCH_KINDS = ("depth", "raft", "segmentation", "skeleton", "densepose", "rgb")


# ---------------------------------------------------------------------------------------------
# the window plan


@dataclass(frozen=True)
class Window:
    """One window of a :class:`WindowPlan`.

    Attributes:
        index: 0-based window number.
        start: output position of the window's first frame.
        positions: output positions of the window's ``plan.window`` frames (a clip shorter than
            one window repeats its last position as padding).
        shared: leading frames the previous window also covered (0 for the first window); the
            stitcher blends them.
        known: leading frames conditioned on the previous window's output (the largest
            ``t*k + 1 <= shared`` that leaves at least one free latent frame; 0 when
            conditioning is off or nothing is shared), ``t`` the codec's temporal ratio.
        emit: output positions ``[lo, hi)`` that are final once this window is stitched.
    """

    index: int
    start: int
    positions: Tuple[int, ...]
    shared: int
    known: int
    emit: Tuple[int, int]


@dataclass(frozen=True)
class WindowPlan:
    """Windows covering a clip (:func:`plan_windows`).

    Attributes:
        source_indices: the source frame index of each output position (``num_frames`` of them).
        window, overlap: window length and requested overlap, in frames.
        padded: frames of padding added to a clip shorter than one window (0 otherwise).
        windows: the windows in sampling order.
    """

    source_indices: Tuple[int, ...]
    window: int
    overlap: int
    padded: int
    windows: Tuple[Window, ...]

    @property
    def num_frames(self) -> int:
        """Output frames (the selected source frames, padding excluded)."""
        return len(self.source_indices)

    def source_frames(self, window: Window) -> List[int]:
        """Source frame indices of a window's frames (padding repeats the last)."""
        return [self.source_indices[p] for p in window.positions]


def select_range(total: Optional[int], start: int = 0, end: Optional[int] = None, stride: int = 1) -> range:
    """Source frame indices ``start, start + stride, ... < end`` of a clip of ``total`` frames.

    Raises:
        ValueError: ``stride < 1``; ``start`` outside the clip; ``end <= start`` or past the
            clip's end; a ``stride`` that steps past the end of a range of several frames
            (it would keep a single frame: lower the stride).
    """
    start, stride = int(start), int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if total is not None and total < 1:
        raise ValueError("the clip has no frames")
    if start < 0 or (total is not None and start >= total):
        raise ValueError(f"start frame {start} is outside the clip's {total} frames (0 to {(total or 1) - 1})")
    end = total if end is None else int(end)
    if end is None:
        raise ValueError("end is needed when the clip's length is unknown")
    if total is not None and end > total:
        raise ValueError(f"end frame {end} is past the clip's {total} frames; use end <= {total} (or None for all)")
    if end <= start:
        raise ValueError(f"end ({end}) must be after start ({start})")
    if end - start > 1 and start + stride >= end:
        raise ValueError(f"stride {stride} steps past the end: frames {start}..{end - 1} hold a single frame at this "
                         f"stride; use a stride below {end - start}")
    return range(start, end, stride)


def plan_windows(num_frames: int, window: int, overlap: int, *, source_indices: Optional[Sequence[int]] = None,
                 temporal_ratio: int = TEMPORAL_RATIO, condition: bool = True) -> WindowPlan:
    """Cut ``num_frames`` output frames into windows of ``window`` frames overlapping by ``overlap``.

    Windows start every ``window - overlap`` frames; the last one starts at
    ``num_frames - window`` (aligned to the clip's end, so it may share more than ``overlap``
    frames with the one before). A clip shorter than one window is one window padded by
    repeating its last frame (``padded`` frames; they are never emitted). Window ``k`` emits
    output positions ``[start_k, start_(k+1))`` (the last: up to the end), so the windows' emits
    partition ``range(num_frames)``: every frame is output exactly once.

    Args:
        num_frames: output frames (>= 1).
        window: frames per window, ``temporal_ratio * k + 1`` (17 for the default, 33 for the 5B).
        overlap: frames shared by consecutive windows, ``0 <= overlap < window``; the frames
            conditioned on (``known``) are the largest ``temporal_ratio * k + 1`` of them, so
            overlaps of that form (1, 5, 9, ...) use every shared frame.
        source_indices: the source index of each output position (default ``range(num_frames)``).
        temporal_ratio: the codec's temporal compression (4 for Wan VAEs).
        condition: False gives ``known = 0`` everywhere (independent windows, blended only).

    Raises:
        ValueError: ``num_frames < 1``, a window that is not ``temporal_ratio * k + 1``, or an
            overlap outside ``[0, window)``.
    """
    n, window, overlap, r = int(num_frames), int(window), int(overlap), int(temporal_ratio)
    if n < 1:
        raise ValueError("the clip has no frames to estimate")
    if window < 1 or (window - 1) % r:
        lower = max(1, (window - 1) // r * r + 1)
        raise ValueError(f"window {window} is not {r}k+1 frames (the codec's rule); use {lower} or {lower + r}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be 0 <= overlap < window ({window}), got {overlap}")
    source = tuple(int(i) for i in (range(n) if source_indices is None else source_indices))
    if len(source) != n:
        raise ValueError(f"{len(source)} source indices for {n} frames")
    if n <= window:
        positions = tuple(range(n)) + (n - 1,) * (window - n)
        only = Window(0, 0, positions, 0, 0, (0, n))
        return WindowPlan(source, window, overlap, window - n, (only,))
    step = window - overlap
    starts = list(range(0, n - window, step)) + [n - window]
    windows = []
    for k, s in enumerate(starts):
        shared = 0 if k == 0 else max(0, starts[k - 1] + window - s)
        known = 0
        if condition and shared > 0:
            usable = min(shared, window - r)  # leave at least one latent frame to produce
            known = (usable - 1) // r * r + 1 if usable >= 1 else 0
        hi = starts[k + 1] if k + 1 < len(starts) else n
        windows.append(Window(k, s, tuple(range(s, s + window)), shared, known, (s, hi)))
    return WindowPlan(source, window, overlap, 0, tuple(windows))


# ---------------------------------------------------------------------------------------------
# sizes


def model_size(height: int, width: int, short_side: int = 64, multiple: int = 16,
               size: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """The (height, width) the model sees for a ``height`` x ``width`` source, aspect kept.

    The short side becomes ``short_side`` (the model's trained size: 64 for the default, 256
    for the 5B); the long side becomes the multiple of ``multiple`` (the latent grid: VAE
    stride x patch, 16 for both) nearest to the aspect-true length. The clip is then resized to
    exactly that size: no padding and no cropping, so every source pixel has a prediction; the
    aspect error is at most ``multiple / 2`` pixels on the long side (176x144 -> 80x64: 1.4 %).
    ``size`` (the user's choice, multiples of ``multiple``) overrides.

    Raises:
        ValueError: a non-positive source size, or a ``size`` that is not positive multiples of
            ``multiple``.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if size is not None:
        h, w = (int(v) for v in size)
        if h <= 0 or w <= 0 or h % multiple or w % multiple:
            raise ValueError(f"size must be positive multiples of {multiple} (HxW), got {h}x{w}")
        return h, w
    if short_side % multiple:
        raise ValueError(f"short_side {short_side} is not a multiple of {multiple}")
    if height <= width:
        long = max(multiple, int(round(width * short_side / height / multiple)) * multiple)
        return short_side, long
    long = max(multiple, int(round(height * short_side / width / multiple)) * multiple)
    return long, short_side


def resize_frames(frames: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` (float in [0, 1] or uint8) -> float32 ``[F, h, w, 3]`` in [0, 1],
    bilinear (antialiased when shrinking), no crop."""
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    if tuple(x.shape[1:3]) == tuple(size):
        return x.contiguous()
    y = F.interpolate(x.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1).clamp(0, 1).contiguous()


def _interp(x: torch.Tensor, size: Tuple[int, int], mode: str) -> torch.Tensor:
    """``[F, H, W, C]`` -> ``[F, h, w, C]`` by ``mode`` (no antialias: upsampling)."""
    y = x.permute(0, 3, 1, 2).float()
    if mode == "nearest":
        y = F.interpolate(y, size=tuple(size), mode="nearest-exact")
    else:
        y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
    return y.permute(0, 2, 3, 1).contiguous()


def to_source_size(modality: str, values, model_hw: Tuple[int, int], source_hw: Tuple[int, int]):
    """Values predicted at the model's size -> the source resolution, by each modality's rule.

    ======================  =========================================================================
    modality                rule
    ======================  =========================================================================
    depth ``[F, H, W]``     bilinear
    raft ``[F, H, W, 2]``   bilinear, then u scaled by ``W_src / W_model`` and v by ``H_src / H_model``
                            (flow is in pixels of the frame it lives on)
    segmentation            nearest neighbour: labels are never blended
    skeleton                x scaled by ``W_src / W_model``, y by ``H_src / H_model``; confidence kept
    ``[F, P, 18, 3]``
    densepose               I (part) by nearest neighbour, U and V bilinear, then zeroed on background
    ``[F, H, W, 3]``
    rgb ``[F, H, W, 3]``    bilinear, clamped to [0, 1]
    ======================  =========================================================================

    Pixel centres map as ``align_corners=False`` (the resize of :func:`resize_frames`); a
    keypoint at model pixel x lands at source pixel ``(x + 0.5) * W_src / W_model - 0.5``.

    Raises:
        ValueError: a name other than ``rgb`` and the release's modality names (aliases are
            resolved by the callers' edges, :func:`unity_core.constants.resolve_modality`).
    """
    from unity_core.constants import check_release_modality

    kind = check_release_modality(modality, ("rgb",))
    v = torch.as_tensor(values)
    (mh, mw), (sh, sw) = model_hw, source_hw
    if kind == "skeleton":
        out = v.clone().float()
        out[..., 0] = (v[..., 0] + 0.5) * (sw / mw) - 0.5
        out[..., 1] = (v[..., 1] + 0.5) * (sh / mh) - 0.5
        return out
    if (mh, mw) == (sh, sw):
        return v
    if kind == "depth":
        return _interp(v[..., None], source_hw, "bilinear")[..., 0]
    if kind == "raft":
        out = _interp(v, source_hw, "bilinear")
        out[..., 0] *= sw / mw
        out[..., 1] *= sh / mh
        return out
    if kind == "segmentation":
        return _interp(v[..., None], source_hw, "nearest")[..., 0].round().to(v.dtype)
    if kind == "densepose":
        part = _interp(v[..., :1], source_hw, "nearest")
        uv = _interp(v[..., 1:], source_hw, "bilinear") * (part > 0).float()
        return torch.cat([part, uv], -1)
    return _interp(v, source_hw, "bilinear").clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# alignment and stitching


def blend_weights(shared: int) -> torch.Tensor:
    """The later window's weight on each of ``shared`` frames: ``(j + 1) / (shared + 1)``, a
    linear cross-fade that never gives one window all the weight on a shared frame."""
    return torch.arange(1, shared + 1, dtype=torch.float32) / (shared + 1)


def _rematch_labels(new: torch.Tensor, old: torch.Tensor, next_label: int) -> Tuple[torch.Tensor, int]:
    """Relabel ``new`` ``[S', H, W]`` (a whole window) so its labels agree with ``old`` on the
    shared frames (``new[:S]`` vs ``old``): greedy one-to-one matching by pixel overlap, largest
    first; background 0 stays 0; unmatched labels get fresh numbers from ``next_label``."""
    shared = old.shape[0]
    a, b = new[:shared].flatten().long(), old.flatten().long()
    labels_new = [int(x) for x in torch.unique(new) if x > 0]
    if not labels_new:
        return new, next_label
    pairs = []
    for ln in labels_new:
        hit = b[a == ln]
        for lo, count in zip(*np.unique(hit.numpy(), return_counts=True)):
            if lo > 0:
                pairs.append((int(count), ln, int(lo)))
    mapping, used = {}, set()
    for _, ln, lo in sorted(pairs, reverse=True):
        if ln not in mapping and lo not in used:
            mapping[ln], used = lo, used | {lo}
    for ln in labels_new:
        if ln not in mapping:
            mapping[ln], next_label = next_label, next_label + 1
    out = torch.zeros_like(new)
    for ln, lo in mapping.items():
        out[new == ln] = lo
    return out, next_label


def _match_people(new: torch.Tensor, old: torch.Tensor, min_conf: float) -> torch.Tensor:
    """Reorder the people of ``new`` ``[S', P, 18, 3]`` to those of ``old`` ``[S, P, 18, 3]`` by the
    mean distance of keypoints confident in both over the shared frames (greedy, nearest first)."""
    people = new.shape[1]
    if people < 2:
        return new
    s = old.shape[0]
    cost = torch.full((people, people), float("inf"))
    for i in range(people):
        for j in range(people):
            ok = (new[:s, i, :, 2] >= min_conf) & (old[:, j, :, 2] >= min_conf)
            if ok.any():
                cost[i, j] = (new[:s, i, :, :2] - old[:, j, :, :2]).norm(dim=-1)[ok].mean()
    order, taken_i, taken_j = [-1] * people, set(), set()
    flat = sorted(((float(cost[i, j]), i, j) for i in range(people) for j in range(people)))
    for c, i, j in flat:
        if i not in taken_i and j not in taken_j and c < float("inf"):
            order[j] = i
            taken_i.add(i)
            taken_j.add(j)
    rest = [i for i in range(people) if i not in taken_i]
    order = [o if o >= 0 else rest.pop(0) for o in order]
    return new[:, order]


class Stitcher:
    """Stitches per-window values into one clip, emitting each frame once (see :func:`plan_windows`).

    Rules on the frames two windows share (``w`` = the later window's weight, rising linearly
    over the shared frames, :func:`blend_weights`):

    - **depth** (relative, ``[F, H, W]``): the later window is mapped by the least-squares scale
      and shift that best fits it to the stitched values on the shared frames
      (:func:`fit_scale_shift`, Video Depth Anything's alignment), applied to the whole window,
      then cross-faded ``(1 - w) * old + w * new``. The clip keeps the first window's scale;
      emitted values are clamped to [0, 1], the values' range.
    - **raft** (``[F, H, W, 2]`` pixels, absolute): cross-faded, no rescaling.
    - **segmentation** (``[F, H, W]`` labels): the later window's labels are re-matched to the
      earlier ones by pixel overlap on the shared frames (unmatched labels get new numbers);
      never blended: the first half of the shared frames keeps the earlier window's labels,
      the second half takes the later window's.
    - **skeleton** (``[F, P, 18, 3]``): people re-matched by keypoint distance on the shared
      frames; a keypoint confident (>= 0.3) in both windows is cross-faded (x, y and
      confidence), one confident in only one window takes that window's keypoint.
    - **densepose** (``[F, H, W, 3]`` I, U, V): the part index I is switched at the middle of the
      shared frames as labels are; U and V are cross-faded where both windows give the same
      part, else taken with the chosen I.
    - **rgb** (controllable generation's video, ``[F, H, W, 3]``): cross-faded.

    Values are kept at the model's size; memory is one window's values.
    """

    def __init__(self, kind: str, plan: WindowPlan, min_confidence: float = 0.3):
        from unity_core.constants import check_release_modality

        self.kind = check_release_modality(kind, ("rgb",))
        self.plan, self.min_confidence = plan, float(min_confidence)
        self._pending: Optional[torch.Tensor] = None  # stitched values of positions [next start, previous end)
        self._next_label = 1
        #: per window: (scale, shift) applied to depth (1, 0 elsewhere)
        self.alignments: List[Tuple[float, float]] = []

    def add(self, window: Window, values) -> torch.Tensor:
        """Stitch one window's values (``[plan.window, ...]`` at the model's size, in window
        order); returns the final values of output positions ``window.emit``.

        Raises:
            ValueError: a window out of order or values of the wrong length.
        """
        v = torch.as_tensor(values)
        if v.shape[0] != self.plan.window:
            raise ValueError(f"window {window.index} has {v.shape[0]} frames of values, expected {self.plan.window}")
        if window.index != len(self.alignments):
            raise ValueError(f"windows must be stitched in order: got {window.index}, expected {len(self.alignments)}")
        if self.kind == "segmentation":
            if self._pending is not None and window.shared:
                v, self._next_label = _rematch_labels(v, self._pending, self._next_label)
            else:
                v = v.clone()
            self._next_label = max(self._next_label, int(v.max()) + 1 if v.numel() else 1)
        if self.kind == "skeleton" and self._pending is not None and window.shared:
            v = _match_people(v, self._pending, self.min_confidence)
        s = window.shared
        scale, shift = 1.0, 0.0
        if s and self._pending is not None:
            old = self._pending
            if self.kind == "depth":
                scale, shift = fit_scale_shift(v[:s], old)
                v = v.float() * scale + shift
            v = v.clone()
            v[:s] = self._blend(old, v[:s])
        self.alignments.append((scale, shift))
        lo, hi = window.emit
        emit = v[lo - window.start:hi - window.start]
        if self.kind == "depth":
            emit = emit.clamp(0, 1)
        nxt = self.plan.windows[window.index + 1] if window.index + 1 < len(self.plan.windows) else None
        self._pending = None if nxt is None else v[nxt.start - window.start:].clone()
        return emit

    def _blend(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        s = old.shape[0]
        w = blend_weights(s)
        half = torch.arange(s) >= s / 2  # the later window's half of a hard switch
        if self.kind in ("depth", "raft", "rgb"):
            w = w.view(-1, *([1] * (old.ndim - 1)))
            return (1 - w) * old.float() + w * new.float()
        if self.kind == "segmentation":
            return torch.where(half.view(-1, 1, 1), new, old)
        if self.kind == "skeleton":
            w = w.view(-1, 1, 1, 1)
            ok_old, ok_new = old[..., 2:] >= self.min_confidence, new[..., 2:] >= self.min_confidence
            mixed = (1 - w) * old + w * new
            return torch.where(ok_old & ok_new, mixed, torch.where(ok_new, new, torch.where(ok_old, old, mixed)))
        # densepose
        part = torch.where(half.view(-1, 1, 1), new[..., 0], old[..., 0])
        w = w.view(-1, 1, 1, 1)
        same = (old[..., :1] == new[..., :1])
        uv_mix = (1 - w) * old[..., 1:] + w * new[..., 1:]
        uv_pick = torch.where(half.view(-1, 1, 1, 1), new[..., 1:], old[..., 1:])
        uv = torch.where(same, uv_mix, uv_pick) * (part[..., None] > 0).float()
        return torch.cat([part[..., None], uv], -1)


# ---------------------------------------------------------------------------------------------
# conditioning a window on the previous one


class KnownFrames(torch.nn.Module):
    """A model wrapper that feeds the first latent frames of the produced stream as known.

    Wraps a UnityVideo transformer for :func:`unity_core.sampling.sample`: before every forward
    the produced stream's first ``k`` latent frames (the frames a window shares with the
    previous one) are replaced by the previous window's result, either

    - ``mode="clean"``: the clean latent, as the conditioning stream enters every step (the
      model still reads the one timestep of the noised stream), or
    - ``mode="noised"``: the latent noised to the current level, ``(1 - t) x + t * noise``
      with fixed noise (what ComfyUI's noise mask does in core's samplers, RePaint style).

    After sampling, :meth:`apply` writes the known latent into the result. ``stream`` is the
    produced stream: ``"modality"`` for estimation (``video2flow``), ``"rgb"`` for controllable
    generation (``flow2video``).

    Args:
        model: the transformer (called as ``model(rgb, t, context, modality_latent, ...)``).
        known: ``[B, C, k, h, w]`` latent of the known frames.
        stream: ``"modality"`` or ``"rgb"``.
        mode: ``"clean"`` or ``"noised"``.
        generator: the noise of ``"noised"`` (a CPU generator).
    """

    def __init__(self, model, known: torch.Tensor, stream: str = "modality", mode: str = "clean",
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if stream not in ("modality", "rgb"):
            raise ValueError(f"stream must be 'modality' or 'rgb', got {stream!r}")
        if mode not in ("clean", "noised"):
            raise ValueError(f"mode must be 'clean' or 'noised', got {mode!r}")
        self.model, self.known, self.stream, self.mode = model, known, stream, mode
        self.noise = torch.randn(known.shape, generator=generator, dtype=torch.float32).to(known)

    # diffusers' step caches live on the wrapped transformer: unity_core.sampling.caches finds them here
    @property
    def is_cache_enabled(self) -> bool:
        return bool(getattr(self.model, "is_cache_enabled", False))

    @property
    def _cache_config(self):
        return getattr(self.model, "_cache_config", None)

    def cache_context(self, name: str, **kwargs):
        return self.model.cache_context(name, **kwargs)

    def _reset_stateful_cache(self) -> None:
        self.model._reset_stateful_cache()

    def _replace(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        k = self.known.shape[2]
        known = self.known.to(x.dtype).expand(x.shape[0], -1, -1, -1, -1)
        if self.mode == "noised":
            s = (t.float() / 1000.0).view(-1, 1, 1, 1, 1).to(x.dtype)
            known = (1 - s) * known + s * self.noise.to(x.dtype).expand_as(known)
        return torch.cat([known, x[:, :, k:]], 2)

    def forward(self, rgb, t, context, modality_latent=None, *args, **kwargs):
        if self.stream == "modality" and modality_latent is not None:
            modality_latent = self._replace(modality_latent, t)
        elif self.stream == "rgb":
            rgb = self._replace(rgb, t)
        return self.model(rgb, t, context, modality_latent, *args, **kwargs)

    def apply(self, latent: torch.Tensor) -> torch.Tensor:
        """The sampled latent ``[B, C, f, h, w]`` with its first ``k`` frames set to the known latent."""
        k = self.known.shape[2]
        return torch.cat([self.known.to(latent).expand(latent.shape[0], -1, -1, -1, -1), latent[:, :, k:]], 2)


# ---------------------------------------------------------------------------------------------
# the loop


#: ``sample_window(window, frames, known)`` -> the produced stream's frames ``[window, h, w, 3]`` in
#: [0, 1]: ``frames`` the input stream at the model's size ``[window, h, w, 3]``; ``known`` None or
#: the previous output's frames ``[window.known, h, w, 3]`` for the window's first frames.
SampleWindow = Callable[[Window, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def run_windows(plan: WindowPlan, frames_for: Callable[[Window], torch.Tensor], sample_window: SampleWindow,
                kind: str, decode: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                should_interrupt: Optional[Callable[[], bool]] = None,
                ) -> Iterator[Tuple[Window, torch.Tensor, torch.Tensor]]:
    """Windowed estimation or control: sample every window of ``plan`` and stitch.

    For each window: ``frames_for(window)`` gives the input stream's frames at the model's size
    ``[plan.window, h, w, 3]`` in [0, 1]; ``sample_window`` (one core sampling run: the
    pipeline's, or a ComfyUI sampler) gives the produced stream's frames; ``decode`` turns them
    into values (default: :func:`unity_core.modalities.decode` for a modality, identity for
    ``rgb``); the :class:`Stitcher` merges the shared frames.

    Yields:
        ``(window, values, frames)`` per window: the stitched values of output positions
        ``window.emit`` at the model's size, and the produced frames of those positions (the
        model's own output, before stitching). Take them to the source size with
        :func:`to_source_size`.

    Raises:
        SamplingInterrupted: ``should_interrupt()`` turned True between windows.
    """
    from unity_core import modalities as M
    from unity_core.sampling.progress import SamplingInterrupted

    if decode is None:
        decode = (lambda x: x) if kind == "rgb" else (lambda x: M.decode(kind, x))
    stitcher = Stitcher(kind, plan)
    previous: Optional[torch.Tensor] = None  # the previous window's produced frames
    for window in plan.windows:
        if should_interrupt is not None and should_interrupt():
            raise SamplingInterrupted(f"cancelled before window {window.index + 1} of {len(plan.windows)}")
        frames = frames_for(window)
        known = None
        if window.known and previous is not None:
            offset = window.start - plan.windows[window.index - 1].start
            known = previous[offset:offset + window.known]
        produced = sample_window(window, frames, known)
        if produced.shape[0] != plan.window:
            raise ValueError(f"sample_window returned {produced.shape[0]} frames for a window of {plan.window}")
        values = stitcher.add(window, decode(produced))
        lo, hi = window.emit
        yield window, values, produced[lo - window.start:hi - window.start]
        previous = produced


__all__ = ["KnownFrames", "STITCH_KINDS", "SampleWindow", "Stitcher", "Window", "WindowPlan", "blend_weights",
           "fit_scale_shift", "model_size", "plan_windows", "resize_frames", "run_windows", "select_range",
           "to_source_size"]
