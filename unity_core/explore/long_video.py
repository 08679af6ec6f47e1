"""Long video with compressed history: generation segment by segment, one camera action per
segment, from a start image (Yume, arXiv 2507.17744; Yume 1.5, arXiv 2512.22096).

Two samplers, chosen by the model:

- **Yume-5B** (a model with Yume's history patch embeddings, preset ``yume-5b``):
  :func:`generate_yume_walk`, the release's ``sample_5b.py``. Per segment, 8 new latent frames
  from noise; 4 Euler steps on ``linspace(1, 0)`` shifted by 7 (float64, as its numpy grid),
  x <- x + (s_next - s) v; no CFG; the history stays clean at t = 0 and is packed by the
  release's tiers (:mod:`unity_core.model.yume`). Image-to-video starts as the release: the image
  repeated into a static 17-frame clip, encoded to 5 latents, which are the first history (not
  Wan2.2-TI2V's "first latent at t = 0"). The noise is drawn at the latent's own size: the
  release's ``Yume.i2v`` sizes it from a 704 x 1280 area rule applied to the latent, which only
  round-trips for the 44 x 80 latent of 704 x 1280; at 544 x 960 (latent 34 x 60) it makes
  44 x 78 noise and the concatenation with the history fails.
- **Any other model** (the default small model, UnityVideo 5B): :func:`generate_long_video`
  with history patch embeddings derived from the model's own (:mod:`unity_core.explore.history`):
  the kept history is re-noised to the current level at every step,
  z_hist(t) = (1 - t) x_hist + t eps_hist (one eps_hist per segment), and
  [compressed history | new segment] runs at the shared timestep t x 1000.

Frames: a walk of k segments of F latent frames from an image decodes to ``1 + k * F * r``
frames (temporal ratio r = 4; the still repeats of the image are dropped): 1 + 32 k for
Yume-5B (:func:`walk_frame_count`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from unity_core.constants import EXPLORE_START_CHOICES
from unity_core.explore.actions import CameraAction
from unity_core.explore.history import (
    PAPER_SCHEDULE,
    HistoryPatchEmbedder,
    HistorySchedule,
    pack_compressed_history,
    select_history,
    sequence_length,
)
from unity_core.explore.qcm import action_prompt, parse_script, segment_prompt
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


def walk_frame_count(segments: int, latent_frames_per_segment: int = YUME_NEW_FRAMES, temporal_ratio: int = 4,
                     image_start: bool = True) -> int:
    """Frames a walk of ``segments`` segments decodes to.

    From an image (still repeats dropped): ``1 + segments * F * r``, e.g. 1 + 32 k for Yume-5B
    (F = 8, r = 4). From text (the first segment decodes alone to 1 + (F - 1) r frames, each later
    one adds F r): ``segments * F * r - r + 1``.

    Raises:
        ValueError: segments < 1 or a non-positive frame count or ratio.
    """
    if segments < 1 or latent_frames_per_segment < 1 or temporal_ratio < 1:
        raise ValueError(f"need segments, latent_frames_per_segment and temporal_ratio >= 1, got "
                         f"{segments}, {latent_frames_per_segment}, {temporal_ratio}")
    new = segments * latent_frames_per_segment * temporal_ratio
    return 1 + new if image_start else new - temporal_ratio + 1


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


# ----------------------------------------------------------------------------------------------
# Pixels, prompts and the one-call entry
# ----------------------------------------------------------------------------------------------


def _as_frames(image) -> torch.Tensor:
    """Image / video as ``[F, H, W, 3]`` float32 in [0, 1] (path, numpy or torch)."""
    if isinstance(image, (str, Path)):
        from unity_core.io.video import read_video

        path = Path(image)
        if not path.exists():
            raise FileNotFoundError(f"start image {path} does not exist")
        image, _ = read_video(path)  # images too (grey and RGBA become RGB)
    t = torch.as_tensor(image).float()
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3] or frames [F, H, W, 3] in [0, 1], got {tuple(t.shape)}")
    if t.numel() and (t.min() < -1e-3 or t.max() > 1 + 1e-3):
        raise ValueError(f"image values must be in [0, 1], got [{t.min().item():.3g}, {t.max().item():.3g}]")
    return t.clamp(0, 1)


def start_frames(frames: torch.Tensor, start: str = "first") -> torch.Tensor:
    """The start of a walk from a clip ``[F, H, W, 3]``: its ``first`` or ``last`` frame
    (``[1, H, W, 3]``), or the whole ``clip`` (which :func:`explore` needs to be 4k+1 frames).

    Raises:
        ValueError: not ``[F, H, W, 3]`` with F >= 1, or an unknown ``start``.
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [F, H, W, 3], got {getattr(frames, 'shape', type(frames))}")
    if start == "first":
        return frames[:1]
    if start == "last":
        return frames[-1:]
    if start == "clip":
        return frames
    raise ValueError(f"unknown start {start!r}; use one of {', '.join(EXPLORE_START_CHOICES)}")


@torch.no_grad()
def initial_history(codec, frames: torch.Tensor, repeats: int) -> Tuple[torch.Tensor, int]:
    """Encode the start: one image repeated as a still clip of ``1 + repeats * temporal_ratio``
    frames (-> ``1 + repeats`` latent frames), or a 4k+1-frame video as it is.

    Args:
        codec: a :class:`~unity_core.codec.LatentCodec`.
        frames: ``[F, H, W, 3]`` in [0, 1]; F = 1 for an image.
        repeats: extra still latent frames for an image (>= 0).

    Returns:
        (latent ``[1, C, T, h, w]``, still_frames): the number of leading decoded frames that
        are repeats of the image (0 for a video start), to drop from the output.

    Raises:
        ValueError: a video whose frame count is not 4k+1.
    """
    from unity_core.codec import frames_to_video

    ratio = codec.temporal_ratio
    if frames.shape[0] == 1:
        still = frames.expand(1 + repeats * ratio, -1, -1, -1)
        return codec.encode(frames_to_video(still.to(_codec_device(codec)))), repeats * ratio
    if (frames.shape[0] - 1) % ratio:
        raise ValueError(f"a start video needs {ratio}k+1 frames, got {frames.shape[0]}; trim it or give one image")
    return codec.encode(frames_to_video(frames.to(_codec_device(codec)))), 0


def _codec_device(codec) -> torch.device:
    """Where the codec runs: its ``device`` attribute (host adapters) or its first parameter's."""
    device = getattr(codec, "device", None)
    return torch.device(device) if device is not None else next(codec.parameters()).device


def _prompt_fits(text_encoder, prompt: str) -> bool:
    tok = getattr(text_encoder, "tokenizer", None)
    limit = getattr(text_encoder, "max_length", 0)
    if tok is None or not limit:
        return True
    return len(tok(prompt)["input_ids"]) <= limit


def _fit_content(text_encoder, content: str, action_text: str) -> str:
    """The longest word prefix of ``content`` such that ``content + action_text`` fits the
    encoder's token limit (the action text is never cut; the content is, from its end)."""
    words = (content or "").split()
    join = lambda k: " ".join(words[:k] + [action_text])  # noqa: E731
    if _prompt_fits(text_encoder, join(len(words))):
        return " ".join(words)
    lo, hi = 0, len(words)
    while lo < hi:  # largest k that fits
        mid = (lo + hi + 1) // 2
        if _prompt_fits(text_encoder, join(mid)):
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


@dataclass
class ExploreResult:
    """Output of :func:`explore`.

    Attributes:
        frames: ``[F, H, W, 3]`` in [0, 1], the whole walk from the start image (None when not
            decoded): the start frame(s), then ``4 * latent_frames_per_segment`` frames per
            segment (temporal ratio 4).
        latent: ``[1, C, T, h, w]`` all latents (start + segments); pass the result back as
            ``history=`` to continue the walk.
        actions, prompts: one per segment, over the whole walk.
        segment_frames: ``[start, end)`` range of each segment's new frames in ``frames`` (its
            motion runs from frame ``start - 1``).
        seconds_per_segment: denoising wall-clock time of each segment (this call's segments).
        fps: frames per second of the pipeline.
        info: settings used (steps, seed, sentence set, prefix, schedule, ...).
    """

    frames: Optional[torch.Tensor]
    latent: torch.Tensor
    actions: List[CameraAction]
    prompts: List[str]
    segment_frames: List[Tuple[int, int]]
    seconds_per_segment: List[float]
    fps: float = 8.0
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def new_segments(self) -> int:
        """Segments generated by the call that returned this result."""
        return len(self.seconds_per_segment)



def _as_pipeline(pipeline_or_model_parts):
    """A pipeline whose ``encode_prompt`` (with its cache) encodes every prompt of the walk.

    A :class:`~unity_core.pipeline.UnityVideoPipeline` (or an object with ``transformer``,
    ``codec``, ``text_encoder`` and ``encode_prompt``) is used as it is; a dict (``transformer``,
    ``codec``, ``text_encoder``, optional ``defaults``), a ``(transformer, codec, text_encoder)``
    tuple or another object with those attributes is wrapped in one that keeps only its own
    defaults.

    Raises:
        ValueError: anything else, or no codec / text encoder.
    """
    from unity_core.pipeline import UnityVideoPipeline

    p = pipeline_or_model_parts
    if isinstance(p, dict):
        parts, defaults = (p["transformer"], p.get("codec"), p.get("text_encoder")), dict(p.get("defaults", {}))
    elif isinstance(p, (tuple, list)):
        if len(p) != 3:
            raise ValueError("model parts must be (transformer, codec, text_encoder)")
        parts, defaults = tuple(p), {}
    elif hasattr(p, "transformer"):
        parts, defaults = (p.transformer, getattr(p, "codec", None), getattr(p, "text_encoder", None)), None
    else:
        raise ValueError(f"expected a UnityVideoPipeline, a dict or (transformer, codec, text_encoder); got {type(p).__name__}")
    if parts[1] is None or parts[2] is None:
        raise ValueError("explore needs a codec and a text encoder; load a full pipeline or pass them")
    if defaults is None and hasattr(p, "encode_prompt"):
        return p
    if defaults is None:
        defaults = dict(getattr(p, "defaults", {}))
    pipe = UnityVideoPipeline(*parts, {"defaults": defaults})
    pipe.defaults = defaults  # only the given ones: a missing size means the image's own
    return pipe


def _settings(pipe, yume: bool, given: Dict[str, Any]) -> Dict[str, Any]:
    """Sampler settings of a walk: the arguments given, else the pipeline's, else the model's
    (:data:`YUME5B_DEFAULTS` or :data:`DERIVED_DEFAULTS`). For Yume-5B only the defaults written
    in the pipeline's own config count (the library-wide ones are UnityVideo's)."""
    own = dict(getattr(pipe, "config", {}).get("defaults", {})) if yume else dict(pipe.defaults)
    base = {**(YUME5B_DEFAULTS if yume else DERIVED_DEFAULTS), "seed": 42, "fps": 8.0}
    out = {k: own.get(k, v) for k, v in base.items()}
    out["fps"] = float(pipe.defaults.get("fps", out["fps"]))
    out.update({k: v for k, v in given.items() if v is not None})
    if out.get("image_repeats") is None:
        out["image_repeats"] = out["latent_frames_per_segment"]
    if yume and int(out["latent_frames_per_segment"]) != YUME_NEW_FRAMES:
        raise ValueError(f"Yume-5B generates {YUME_NEW_FRAMES} latent frames per segment (32 video frames); "
                         f"leave latent_frames_per_segment unset, got {out['latent_frames_per_segment']}")
    for key, kind in (("steps", int), ("shift", float), ("cfg", float), ("seed", int),
                      ("latent_frames_per_segment", int), ("image_repeats", int)):
        out[key] = kind(out[key])
    if out["image_repeats"] < 0:
        raise ValueError(f"image_repeats must be >= 0, got {out['image_repeats']}")
    return out


def _start_latent(pipe, image, history, size, repeats: int) -> Dict[str, Any]:
    """The walk's start: ``latent`` ``[1, C, T, h, w]`` on the model's device, ``still`` (decoded
    frames that repeat the image), ``start_frames`` (frames of the start), ``start_latents``
    (latents of the start) and ``previous`` (the :class:`ExploreResult` continued, or None)."""
    from unity_core.io.video import resize_center_crop

    transformer, codec = pipe.transformer, pipe.codec
    prev = history if isinstance(history, ExploreResult) else None
    if history is not None:
        if image is not None or size is not None:
            raise ValueError("history= continues an earlier walk at its own size and start; pass image=None and "
                             "size=None with it (or drop history= to start a new walk from the image)")
        latent = (prev.latent if prev is not None else history).to(pipe.device)
        if latent.ndim != 5 or latent.shape[0] != 1:
            raise ValueError(f"history latent must be [1, C, T, h, w], got {tuple(latent.shape)}")
        info = prev.info if prev is not None else {}
        # A bare latent carries no record of still frames: all of its decoded frames are kept.
        return {"latent": latent, "still": info.get("still_frames", 0), "start_frames": info.get("start_frames", 1),
                "start_latents": info.get("start_latents", latent.shape[2]), "previous": prev}
    if image is None:
        raise ValueError("give a start image (or history= to continue an earlier walk)")
    frames = _as_frames(image)
    h, w = size or (pipe.defaults.get("height", frames.shape[1]), pipe.defaults.get("width", frames.shape[2]))
    step = codec.spatial_ratio * transformer.config.patch_size[1]
    if h % step or w % step:
        raise ValueError(f"size {h}x{w} must be a multiple of {step} (codec x patch); e.g. {h // step * step}x{w // step * step}")
    if tuple(frames.shape[1:3]) != (h, w):
        frames = resize_center_crop(frames, h, w)
    latent, still = initial_history(codec, frames, repeats)
    return {"latent": latent.to(pipe.device), "still": still,
            "start_frames": 1 if frames.shape[0] == 1 else frames.shape[0], "start_latents": latent.shape[2],
            "previous": None}


def segment_prompts(text_encoder, prompt: str, actions: Sequence[CameraAction], sentence_set: str = "v1",
                    prefix: Optional[bool] = None, speed: Optional[dict] = None,
                    event: str = "") -> Tuple[List[str], bool]:
    """Each segment's prompt: the content prompt, the action's QCM sentences, then ``event``.

    Segment k gets action k's text. (The release's ``sample_5b.py`` reads one caption line per
    segment and conditions segment k >= 1 on line k - 1, because it builds the next segment's
    context at the end of a segment from that segment's own line: segments 0 and 1 share line 0
    and the last line is never used. Here each segment has its own action, so there is no shift.)

    Args:
        text_encoder: the pipeline's encoder (its tokenizer and ``max_length`` bound the prompt).
        sentence_set: ``v1`` or ``v1_5`` (Yume 1.5's sentences, the default for Yume-5B).
        prefix: include the set's prefix sentence; None: when the whole prompt fits.
        speed: values of the speed sentence (:func:`~unity_core.explore.qcm.speed_sentence`), or None.
        event: free text appended to every segment (Yume's text-controlled events, e.g.
            ``"A red car drives past."``); empty for none.

    Returns:
        (prompts, shortened): shortened is True when the content prompt was cut from its end so
        that the action text and the event stay whole within the encoder's token limit.
    """
    event = (event or "").strip()
    prompts, shortened = [], False
    for a in actions:
        use_prefix = prefix
        if use_prefix is None:
            whole = " ".join(filter(None, [segment_prompt(prompt, a, sentence_set, speed, True), event]))
            use_prefix = _prompt_fits(text_encoder, whole)
        tail = " ".join(filter(None, [action_prompt(a, sentence_set, speed, use_prefix), event]))
        content = _fit_content(text_encoder, prompt, tail)
        shortened |= content != (prompt or "").strip()
        prompts.append(f"{content} {tail}" if content else tail)
    return prompts, shortened


def _sample_walk(pipe, start: Dict[str, Any], contexts, negative, s: Dict[str, Any], *, schedule, history_mode,
                 time_travel, cache, callback, should_interrupt, segment_sampler=None,
                 on_segment=None) -> LongVideoLatents:
    """Run the model's sampler: Yume-5B's packed history, or the derived history of any other."""
    model = pipe.transformer
    if is_yume_model(model):
        return generate_yume_walk(
            model, start["latent"], contexts, steps=s["steps"], shift=s["shift"], cfg=s["cfg"],
            negative_context=negative, seed=s["seed"], history_mode=history_mode,
            start_latents=start["start_latents"], time_travel=time_travel, cache=cache, callback=callback,
            should_interrupt=should_interrupt, segment_sampler=segment_sampler, on_segment=on_segment)
    return generate_long_video(
        model, start["latent"], contexts, latent_frames_per_segment=s["latent_frames_per_segment"], steps=s["steps"],
        shift=s["shift"], cfg=s["cfg"], negative_context=negative, seed=s["seed"], schedule=schedule,
        callback=callback, should_interrupt=should_interrupt, on_segment=on_segment)


def _decode_walk(codec, latent: torch.Tensor, still: int) -> torch.Tensor:
    """All latents -> frames ``[F, H, W, 3]`` in [0, 1] on the CPU, without the still repeats."""
    from unity_core.codec import video_to_frames

    return video_to_frames(codec.decode(latent.to(_codec_device(codec))))[0].cpu()[still:]


@torch.no_grad()
def explore(
    pipeline_or_model_parts,
    image,
    actions_script: Union[str, Sequence[CameraAction]],
    prompt: str = "",
    *,
    steps: Optional[int] = None,
    shift: Optional[float] = None,
    cfg: Optional[float] = None,
    negative_prompt: str = "",
    seed: Optional[int] = None,
    latent_frames_per_segment: Optional[int] = None,
    sentence_set: Optional[str] = None,
    prefix: Optional[bool] = None,
    speed: Optional[dict] = None,
    event: str = "",
    schedule: Optional[HistorySchedule] = None,
    size: Optional[Tuple[int, int]] = None,
    image_repeats: Optional[int] = None,
    history: Optional[Union["ExploreResult", torch.Tensor]] = None,
    history_mode: str = "all",
    time_travel=None,
    cache=None,
    decode: bool = True,
    callback: Optional[Callback] = None,
    should_interrupt: Optional[Callable[[], bool]] = None,
    segment_sampler: Optional[SegmentSampler] = None,
    on_segment: Optional[Callable[[int, torch.Tensor, int], None]] = None,
) -> ExploreResult:
    """Walk through a generated world: one segment per action, from a start image.

    The model decides the sampler (module docstring): Yume-5B (history embeddings) runs the
    release's, every other model the derived-history one. Settings left None take the
    pipeline's, else the model's defaults: Yume-5B 4 steps, shift 7, cfg 1, 8 latent frames per
    segment, sentence set ``v1_5``, 4 image repeats (17 still frames -> 5 latents); otherwise 20,
    1.0, 1.0, 1, ``v1`` and image repeats = latent frames per segment. Seed 42.

    Args:
        pipeline_or_model_parts: a :class:`~unity_core.pipeline.UnityVideoPipeline` (its
            ``encode_prompt`` and cache encode the prompts), or ``(transformer, codec,
            text_encoder)``, or a dict with those keys (+ ``defaults``).
        image: start image ``[H, W, 3]`` / ``[1, H, W, 3]`` in [0, 1], a 4k+1-frame video
            ``[F, H, W, 3]``, or a path to an image or video file (grey and RGBA images are
            made RGB). None when ``history`` continues an earlier walk. A video is encoded as
            it is and becomes the history (the release's Yume-5B script keeps only a video's
            frame 0, repeated like an image).
        actions_script: e.g. ``"W W W+A ← ·"`` (grammar in :mod:`unity_core.explore.qcm`) or a
            list of :class:`CameraAction`; one segment per action.
        prompt: content prompt; each segment adds its action's text and ``event``
            (:func:`segment_prompts`; the content is shortened from its end, with a warning,
            when the whole exceeds the encoder's token limit).
        steps, shift, cfg, seed: sampler settings; ``negative_prompt`` for cfg != 1.
        latent_frames_per_segment: new latent frames per action, 4 video frames each (Yume-5B: 8).
        sentence_set, prefix, speed, event: the segment prompts (:func:`segment_prompts`).
        schedule: derived history compression (default: the paper's, fitted to the latent size).
        size: (height, width) of the walk (default: the pipeline's; the image is resized and
            centre-cropped). None with ``history``: a continuation keeps its walk's size.
        image_repeats: still latent frames of the start image besides its own.
        history: an earlier :class:`ExploreResult` (or its latent ``[1, C, T, h, w]``) to continue
            from. A bare latent keeps every frame it decodes to and numbers the new frames after them.
        history_mode, time_travel, cache: Yume-5B only (:func:`generate_yume_walk`); off by default.
        decode: decode the latents to frames.
        callback: ``callback(step, total, latent, None)`` after every step.
        should_interrupt: checked before every step; True raises ``SamplingInterrupted``.
        segment_sampler: Yume-5B only (:func:`generate_yume_walk`): another sampler of each
            segment (ComfyUI's core sampling).
        on_segment: ``on_segment(k, latent, new)`` after each segment (:func:`generate_yume_walk`).

    Returns:
        :class:`ExploreResult` (frames: :func:`walk_frame_count` of its segments from an image).

    Raises:
        ValueError: a bad action script, image, size or setting (the message names it), an image
            or size given together with ``history``, or a Yume-only option on another model.
        SamplingInterrupted: when ``should_interrupt()`` returns True.
    """
    pipe = _as_pipeline(pipeline_or_model_parts)
    actions = parse_script(actions_script)
    yume = is_yume_model(pipe.transformer)
    if not yume and (time_travel is not None or cache is not None or history_mode != "all"
                     or segment_sampler is not None):
        raise ValueError("time_travel, cache, history_mode and segment_sampler are options of the Yume-5B "
                         "sampler; this model has no "
                         "Yume history embeddings (load a Yume-5B checkpoint, or leave them unset)")
    if history_mode not in HISTORY_MODES:
        raise ValueError(f"unknown history mode {history_mode!r}; use one of {', '.join(HISTORY_MODES)}")
    s = _settings(pipe, yume, {"steps": steps, "shift": shift, "cfg": cfg, "seed": seed, "sentence_set": sentence_set,
                               "latent_frames_per_segment": latent_frames_per_segment, "image_repeats": image_repeats})
    start = _start_latent(pipe, image, history, size, s["image_repeats"])
    prompts, shortened = segment_prompts(pipe.text_encoder, prompt, actions, s["sentence_set"], prefix, speed, event)
    if shortened:
        warnings.warn(f"content prompt + action text exceed the text encoder's {pipe.text_encoder.max_length} tokens; "
                      "the content prompt was shortened (at the end) so that the action text stays whole", stacklevel=3)
    contexts = [pipe.encode_prompt(p) for p in prompts]
    negative = pipe.encode_prompt(negative_prompt) if s["cfg"] != 1.0 else None
    if getattr(pipe, "free_text_encoder_after_encoding", False) and pipe.text_encoder is not None:
        pipe.free_text_encoder()  # every prompt is encoded: UMT5-XXL's memory is free for sampling
    out = _sample_walk(pipe, start, contexts, negative, s, schedule=schedule, history_mode=history_mode,
                       time_travel=time_travel, cache=cache, callback=callback, should_interrupt=should_interrupt,
                       segment_sampler=segment_sampler, on_segment=on_segment)
    prev, ratio = start["previous"], pipe.codec.temporal_ratio
    frames = _decode_walk(pipe.codec, out.latent, start["still"]) if decode else None
    seg_len = (YUME_NEW_FRAMES if yume else s["latent_frames_per_segment"]) * ratio
    first = 1 + (start["latent"].shape[2] - 1) * ratio - start["still"]  # decoded frames before these segments
    segment_frames = (list(prev.segment_frames) if prev is not None else []) + [
        (first + i * seg_len, first + (i + 1) * seg_len) for i in range(len(actions))]
    info = {
        "sampler": "yume-5b" if yume else "derived-history", "steps": s["steps"], "shift": s["shift"], "cfg": s["cfg"],
        "seed": s["seed"], "sentence_set": s["sentence_set"], "event": event,
        "latent_frames_per_segment": seg_len // ratio, "still_frames": start["still"],
        "start_frames": start["start_frames"], "start_latents": start["start_latents"], "prefix": prefix,
        "content_shortened": shortened, "history_tokens": out.history_tokens,
        "schedule": None if yume else (schedule or PAPER_SCHEDULE).fit(*out.latent.shape[-2:],
                                                                        pipe.transformer.config.patch_size[1]),
        "history_mode": history_mode if yume else None,
    }
    return ExploreResult(frames, out.latent, (prev.actions if prev else []) + actions,
                         (prev.prompts if prev else []) + prompts, segment_frames, out.seconds_per_segment, s["fps"], info)


__all__ = [
    "DERIVED_DEFAULTS", "ExploreResult", "HISTORY_MODES", "LongVideoLatents", "YUME5B_DEFAULTS", "explore",
    "generate_long_video", "generate_yume_walk", "history_velocity", "initial_history", "is_yume_model",
    "segment_prompts", "start_frames", "walk_frame_count", "yume_history",
]
