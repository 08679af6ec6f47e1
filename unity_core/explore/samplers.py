"""The two samplers of a walk: segment after segment of new latents, each conditioned on the
walk's history (Yume, arXiv 2507.17744; Yume 1.5, arXiv 2512.22096). Which one runs is the
model's: :func:`is_yume_model`.

- **Yume-5B** (a model with Yume's history patch embeddings, preset ``yume-5b``):
  :func:`generate_yume_walk`, the release's ``sample_5b.py``. Per segment, 8 new latent frames
  from noise; 4 Euler steps on ``linspace(1, 0)`` shifted by 7 (float64, as its numpy grid),
  x <- x + (s_next - s) v; no CFG; the history stays clean at t = 0 and is packed by the
  release's tiers (:mod:`unity_core.model.yume`). The noise is drawn at the latent's own size:
  the release's ``Yume.i2v`` sizes it from a 704 x 1280 area rule applied to the latent, which
  only round-trips for the 44 x 80 latent of 704 x 1280; at 544 x 960 (latent 34 x 60) it makes
  44 x 78 noise and the concatenation with the history fails.
- **Any other model** (the default small model, UnityVideo 5B): :func:`generate_long_video`
  with history patch embeddings derived from the model's own (:mod:`unity_core.explore.history`):
  the kept history is re-noised to the current level at every step,
  z_hist(t) = (1 - t) x_hist + t eps_hist (one eps_hist per segment), and
  [compressed history | new segment] runs at the shared timestep t x 1000.

Both take text contexts already encoded; the whole walk from an image or an earlier walk (start,
prompts, settings, decoding) is :meth:`unity_core.pipeline.UnityVideoPipeline.explore`
(:mod:`unity_core.explore.long_video`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from unity_core.explore.history import (
    PAPER_SCHEDULE,
    HistoryPatchEmbedder,
    HistorySchedule,
    pack_compressed_history,
    select_history,
    sequence_length,
)
from unity_core.model.yume import (
    YUME_NEW_FRAMES,
    YUME_TEXT_LEN,
    check_yume_model,
    has_history_embeddings,
    history_token_count,
    yume_velocity,
)
from unity_core.sampling.caches import reset_step_caches, step_cache_context
from unity_core.sampling.integrator import Guidance, integrate
from unity_core.sampling.schedule import TIMESTEP_SCALE, flow_sigmas, to_timestep

#: ``callback(step, total, latent, None)`` after every denoising step, counted over all segments.
Callback = Callable[[int, int, Optional[torch.Tensor], Optional[torch.Tensor]], None]

#: ``segment_sampler(k, history, noise, context) -> latent``: samples Yume-5B segment k, the new
#: frames ``[B, C, 8, H, W]`` from their ``noise`` (at sigma 1) given the clean ``history``
#: ``[B, C, N, H, W]`` (None for a first text-to-video segment) and the text ``context`` ``[B, L, D]``.
SegmentSampler = Callable[[int, Optional[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]

#: Yume-5B's sampler settings (``sample_5b.py``; the still image repeats give 5 start latents).
YUME5B_DEFAULTS: Dict[str, Any] = {
    "steps": 4, "shift": 7.0, "cfg": 1.0, "latent_frames_per_segment": YUME_NEW_FRAMES, "sentence_set": "v1_5",
    "image_repeats": 4,
}
#: Defaults of the derived-history sampler (the embedded default model).
DERIVED_DEFAULTS: Dict[str, Any] = {
    "steps": 20, "shift": 1.0, "cfg": 1.0, "latent_frames_per_segment": 1, "sentence_set": "v1",
}
#: What the Yume-5B sampler keeps as history: every latent so far (packed by the tiers), or only
#: the start latents plus the last segment (the release's web app).
HISTORY_MODES = ("all", "start+last")


def is_yume_model(model) -> bool:
    """Whether ``model`` runs Yume-5B's packed-history forward (it has the history embeddings)."""
    return has_history_embeddings(model)


# ----------------------------------------------------------------------------------------------
# Derived-history sampling (any model)
# ----------------------------------------------------------------------------------------------


def history_velocity(model, embedder: HistoryPatchEmbedder, history: Optional[torch.Tensor], latent: torch.Tensor,
                     sigma: float, context: torch.Tensor, schedule: HistorySchedule = PAPER_SCHEDULE,
                     block_runner=None) -> torch.Tensor:
    """Velocity ``[B, C, F, H, W]`` of the new segment given the (already noised) kept history.

    Args:
        model: the DiT (``forward_tokens``, ``embed_time``, ``rgb_head``, ``unpatchify``).
        history: ``[B, C, T', H, W]`` the kept history frames (:func:`select_history`), noised to
            ``sigma``, or None.
        latent: ``[B, C, F, H, W]`` the noised new segment.
        sigma: flow time t in [0, 1] (the model sees t x 1000).
        context: text tokens ``[B, L, text_dim]``.
    """
    packed = pack_compressed_history(embedder, history, latent, schedule, history_is_selected=True)
    t = to_timestep(sigma, latent.shape[0], latent.device)
    out = model.forward_tokens(packed.tokens, packed.positions, t, context, block_runner=block_runner)
    temb, _ = model.embed_time(t)
    features = model.rgb_head(out[:, packed.new_slice], temb)
    return model.unpatchify(features, packed.new_grid).float()


@dataclass
class LongVideoLatents:
    """Output of :func:`generate_long_video` and :func:`generate_yume_walk`.

    Attributes:
        latent: ``[B, C, T + S * F, H, W]``: the given history then every generated segment.
        seconds_per_segment: wall-clock seconds of each segment's denoising.
        history_tokens: history tokens in each segment's sequence.
    """

    latent: torch.Tensor
    seconds_per_segment: List[float]
    history_tokens: List[int] = field(default_factory=list)


def _batch_context(context: torch.Tensor, batch: int, device) -> torch.Tensor:
    ctx = context.to(device)
    return ctx.expand(batch, -1, -1) if ctx.shape[0] != batch else ctx


@torch.no_grad()
def generate_long_video(
    model,
    history: torch.Tensor,
    contexts: Sequence[torch.Tensor],
    *,
    latent_frames_per_segment: int = 4,
    steps: int = 20,
    shift: float = 1.0,
    cfg: float = 1.0,
    negative_context: Optional[torch.Tensor] = None,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    schedule: Optional[HistorySchedule] = None,
    embedder: Optional[HistoryPatchEmbedder] = None,
    callback: Optional[Callback] = None,
    should_interrupt: Optional[Callable[[], bool]] = None,
    block_runner=None,
    on_segment: Optional[Callable[[int, torch.Tensor, int], None]] = None,
) -> LongVideoLatents:
    """Generate ``len(contexts)`` segments after ``history`` with derived history embeddings.

    Args:
        model: a :class:`~unity_core.model.UnityVideoTransformer` (any preset).
        history: ``[B, C, T, H, W]`` clean latents, T >= 1 (frame 0 the start image); never
            changed: the returned latent starts with this very data.
        contexts: per segment, text tokens ``[B, L, text_dim]`` (content + action prompt).
        latent_frames_per_segment: new latent frames per segment (Yume: 8 = 32 video frames).
        steps, shift: the flow-matching sigma grid (:func:`flow_sigmas`).
        cfg: classifier-free guidance scale (1 = off); needs ``negative_context`` ``[1|B, L, D]``.
        seed / generator: noise source (a CPU generator; ``seed`` is used when no generator is
            given). The same seed gives the same video.
        schedule: history compression (default: the paper's, fitted to the latent size).
        embedder: patch embeddings (default: derived from ``model.patch_embedding``).
        callback: ``callback(step, total, latent, None)`` after every step (over all segments).
        should_interrupt: checked before every step; True raises ``SamplingInterrupted``.
        block_runner: optional ``(index, fn, x) -> x`` hook around every block.
        on_segment: ``on_segment(k, latent, new)`` after segment k with the walk's latents so far,
            the last ``new`` of them the segment's.

    Returns:
        :class:`LongVideoLatents`.

    Raises:
        ValueError: bad shapes, no contexts, steps < 1 or cfg != 1 without a negative context.
        SamplingInterrupted: when ``should_interrupt()`` returns True.
    """
    _check_walk(model, history, contexts, latent_frames_per_segment, cfg, negative_context)
    b, c, _, h, w = history.shape
    patch = model.config.patch_size
    if patch[0] != 1:
        raise ValueError(f"compressed history needs a temporal patch of 1, the model has {patch}")
    if h % patch[1] or w % patch[2]:
        raise ValueError(f"latent size {h}x{w} is not a multiple of the patch size {patch[1:]}")
    schedule = (schedule or PAPER_SCHEDULE).fit(h, w, patch[1])
    embedder = embedder or HistoryPatchEmbedder.from_model(model)
    gen = generator if generator is not None else torch.Generator("cpu").manual_seed(int(seed))
    sigmas = flow_sigmas(steps, shift)
    device = history.device
    total = len(contexts) * int(steps)
    done = 0
    latent = history.float()
    seconds, hist_tokens = [], []
    for k, context in enumerate(contexts):
        start = time.perf_counter()
        noise = torch.randn((b, c, latent_frames_per_segment, h, w), generator=gen).to(device)
        kept = select_history(latent, schedule)
        hist_noise = torch.randn(kept.shape, generator=gen).to(device)
        guidance = Guidance(cfg, _batch_context(context, b, device), negative_context)

        def velocity(x, sigma, kept=kept, hist_noise=hist_noise, guidance=guidance):
            s = float(sigma)
            noised_hist = (1.0 - s) * kept + s * hist_noise
            hist, new = guidance.batch(noised_hist, x)
            v = history_velocity(model, embedder, hist, new, s, guidance.context, schedule, block_runner)
            return guidance.mix((v,), x.shape[0])[0]

        def step_done(i, n, z, offset=done):
            if callback is not None:
                callback(offset + i, total, z, None)

        x = integrate(velocity, noise, sigmas, callback=step_done, should_interrupt=should_interrupt)
        done += int(steps)
        hist_tokens.append(sequence_length(latent.shape[2], (h, w), 0, schedule, patch[1]))
        latent = torch.cat([latent, x], dim=2)
        seconds.append(time.perf_counter() - start)
        if on_segment is not None:
            on_segment(k, latent, x.shape[2])
    return LongVideoLatents(torch.cat([history, latent[:, :, history.shape[2]:].to(history.dtype)], 2), seconds, hist_tokens)


def _check_walk(model, history: Optional[torch.Tensor], contexts, frames_per_segment: int, cfg: float,
                negative_context) -> None:
    """The input checks both samplers share (before any heavy work)."""
    if history is not None:
        if history.ndim != 5 or history.shape[2] < 1:
            raise ValueError(f"history must be [B, C, T >= 1, H, W] latents, got {tuple(history.shape)}")
        if history.shape[1] != model.config.in_channels:
            raise ValueError(f"history has {history.shape[1]} channels; the model takes {model.config.in_channels}")
    if not contexts:
        raise ValueError("no segments: give one context per segment")
    if frames_per_segment < 1:
        raise ValueError(f"latent_frames_per_segment must be >= 1, got {frames_per_segment}")
    if cfg != 1.0 and negative_context is None:
        raise ValueError("cfg != 1 needs negative_context (e.g. the encoding of the empty prompt)")


# ----------------------------------------------------------------------------------------------
# Yume-5B sampling (the release's packed history)
# ----------------------------------------------------------------------------------------------


def yume_history(latent: torch.Tensor, start_latents: int, mode: str = "all") -> torch.Tensor:
    """The history the next Yume-5B segment sees, from the walk's latents ``[B, C, T, H, W]``.

    ``all``: every latent (the packed forward compresses the older ones by its tiers).
    ``start+last``: the first ``start_latents`` (the start image's) and the last segment's
    latents, as the release's web app keeps them: the sequence stops growing.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in HISTORY_MODES:
        raise ValueError(f"unknown history mode {mode!r}; use one of {', '.join(HISTORY_MODES)}")
    total = latent.shape[2]
    if mode == "all" or total <= start_latents + YUME_NEW_FRAMES:
        return latent
    return torch.cat([latent[:, :, :start_latents], latent[:, :, total - YUME_NEW_FRAMES:]], 2)


class _YumeVelocity:
    """Yume-5B's velocity of the new frames at one sigma: the packed forward (or the plain one for
    a first text-to-video segment), with optional CFG (:class:`Guidance`) and block cache."""

    def __init__(self, model, history, context, cfg, negative_context, cache, text_len):
        self.model, self.history, self.cache, self.text_len = model, history, cache, text_len
        self.guidance = Guidance(cfg, context, negative_context)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.cache is not None:
            self.cache.start_evaluation()
        batch = x.shape[0]
        x, hist = self.guidance.batch(x, self.history)
        # sigma x 1000 in float64: the release builds t from its numpy float64 grid
        t = (torch.as_tensor(sigma, dtype=torch.float64) * TIMESTEP_SCALE).reshape(1).expand(x.shape[0])
        with step_cache_context(self.model, t):  # diffusers' step caches, if enabled on the model
            v = yume_velocity(self.model, hist, x, t.to(x.device), self.guidance.context, text_len=self.text_len,
                              block_runner=self.cache)
        return self.guidance.mix((v,), batch)[0]


@torch.no_grad()
def generate_yume_walk(
    model,
    history: Optional[torch.Tensor],
    contexts: Sequence[torch.Tensor],
    *,
    steps: int = 4,
    shift: float = 7.0,
    cfg: float = 1.0,
    negative_context: Optional[torch.Tensor] = None,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    noise: Optional[Sequence[torch.Tensor]] = None,
    latent_size: Optional[Tuple[int, int]] = None,
    history_mode: str = "all",
    start_latents: Optional[int] = None,
    time_travel=None,
    cache=None,
    text_len: int = YUME_TEXT_LEN,
    callback: Optional[Callback] = None,
    should_interrupt: Optional[Callable[[], bool]] = None,
    segment_sampler: Optional[SegmentSampler] = None,
    on_segment: Optional[Callable[[int, torch.Tensor, int], None]] = None,
) -> LongVideoLatents:
    """Yume-5B's walk (``sample_5b.py``): ``len(contexts)`` segments of 8 new latent frames.

    Args:
        model: a Yume model (history patch embeddings; preset ``yume-5b``).
        history: ``[B, C, N, H, W]`` clean start latents (image-to-video: the 5 latents of the
            image repeated 17 times), or None for text-to-video: segment 0 then runs the plain
            forward over its 8 frames and the later ones take it as history.
        contexts: per segment, text tokens ``[B, L, text_dim]`` (L <= ``text_len``).
        steps, shift: the sigma grid, ``flow_sigmas(steps, shift)`` in float64 (4 and 7 in the
            release).
        cfg: classifier-free guidance (1 = off, the release); needs ``negative_context``.
        seed / generator: noise source (a CPU generator; the same seed gives the same walk).
        noise: per segment, explicit noise ``[B, C, 8, H, W]`` instead of drawing it.
        latent_size: (H, W) of the latent for text-to-video (taken from ``history`` otherwise).
        history_mode: ``all`` or ``start+last`` (:func:`yume_history`).
        start_latents: latents of the start kept by ``start+last`` (default: all of ``history``,
            or the first segment for text-to-video).
        time_travel: :class:`~unity_core.sampling.yume.TimeTravel` (TTS / TTS-SDE), None = off.
        cache: :class:`~unity_core.sampling.yume.BlockCache`, None = off (both off give exactly the
            plain sampler).
        text_len: rows every context is zero-padded to (512 in the release).
        callback: ``callback(step, total, latent, None)`` after every step (over all segments).
        should_interrupt: checked before every step; True raises ``SamplingInterrupted``.
        segment_sampler: samples one segment instead of the library's integrator
            (:data:`SegmentSampler`; the ComfyUI node passes core's sampling of the patched
            MODEL). The walk (noise, history, contexts) stays this function's; ``cfg``,
            ``steps``, ``shift``, ``time_travel``, ``cache`` and ``callback`` are then the
            segment sampler's business.
        on_segment: ``on_segment(k, latent, new)`` after segment k with the walk's latents so far
            ``[B, C, T, H, W]``, the last ``new`` of them the segment's (e.g. to decode and show it
            while the next one samples).

    Returns:
        :class:`LongVideoLatents`: ``latent`` is the start history then every new segment.

    Raises:
        ValueError: a model without history embeddings, bad shapes, no contexts, a wrong noise
            count or shape, cfg without a negative, an unknown history mode.
        SamplingInterrupted: when ``should_interrupt()`` returns True.
    """
    check_yume_model(model)
    _check_walk(model, history, contexts, YUME_NEW_FRAMES, cfg, negative_context)
    if history_mode not in HISTORY_MODES:
        raise ValueError(f"unknown history mode {history_mode!r}; use one of {', '.join(HISTORY_MODES)}")
    if history is None and latent_size is None and noise is None:
        raise ValueError("text-to-video needs latent_size=(H, W) (or noise); image-to-video gives history")
    if noise is not None and len(noise) != len(contexts):
        raise ValueError(f"noise holds {len(noise)} tensors for {len(contexts)} segments; give one per segment")
    ref = history if history is not None else (noise[0] if noise is not None else None)
    b = ref.shape[0] if ref is not None else 1
    c = model.config.in_channels
    h, w = ref.shape[-2:] if ref is not None else latent_size
    device = ref.device if ref is not None else model.device
    shape = (b, c, YUME_NEW_FRAMES, h, w)
    gen = generator if generator is not None else torch.Generator("cpu").manual_seed(int(seed))
    sigmas = flow_sigmas(steps, shift, dtype=torch.float64)
    total, done = len(contexts) * int(steps), 0
    latent = None if history is None else history.float()
    if start_latents is None:
        start_latents = history.shape[2] if history is not None else YUME_NEW_FRAMES
    seconds, hist_tokens = [], []
    for k, context in enumerate(contexts):
        start = time.perf_counter()
        if noise is not None:
            x = noise[k].to(device=device, dtype=torch.float32)
            if tuple(x.shape) != shape:
                raise ValueError(f"noise of segment {k} is {tuple(x.shape)}; expected {shape} (the latent's own size)")
        else:
            x = torch.randn(shape, generator=gen).to(device)
        hist = None if latent is None else yume_history(latent, start_latents, history_mode)
        hist_tokens.append(0 if hist is None else history_token_count(hist.shape[2], h, w))
        if cache is not None:  # every segment starts afresh (its sequence differs)
            cache.clear()
        reset_step_caches(model)
        velocity = _YumeVelocity(model, hist, _batch_context(context, b, device), cfg, negative_context, cache,
                                 text_len)

        def step_done(i, n, z, offset=done):
            if callback is not None:
                callback(offset + i, total, z, None)

        try:
            if segment_sampler is not None:
                x = segment_sampler(k, hist, x, _batch_context(context, b, device))
            else:
                x = integrate(velocity, x, sigmas, time_travel=time_travel, generator=gen, callback=step_done,
                              should_interrupt=should_interrupt)
        finally:
            if cache is not None:
                cache.clear()
            reset_step_caches(model)
        done += int(steps)
        latent = x if latent is None else torch.cat([latent, x], dim=2)
        seconds.append(time.perf_counter() - start)
        if on_segment is not None:
            on_segment(k, latent, x.shape[2])
    if history is not None:
        latent = torch.cat([history, latent[:, :, history.shape[2]:].to(history.dtype)], 2)
    return LongVideoLatents(latent, seconds, hist_tokens)


__all__ = [
    "Callback", "DERIVED_DEFAULTS", "HISTORY_MODES", "LongVideoLatents", "SegmentSampler", "YUME5B_DEFAULTS",
    "generate_long_video", "generate_yume_walk", "history_velocity", "is_yume_model", "yume_history",
]
