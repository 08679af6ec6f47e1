"""Long video with Yume's compressed history (arXiv 2507.17744): generation segment by segment,
one camera action per segment, from a start image.

Per segment (``latent_frames_per_segment`` new latent frames, one caption line):

1. the prompt is the content prompt followed by the action's QCM text
   (:func:`unity_core.explore.qcm.segment_prompt`);
2. the kept history latents (:mod:`unity_core.explore.history`) are re-noised to the current
   noise level at every step, z_hist(t) = (1 - t) x_hist + t eps_hist (one eps_hist per segment);
3. [compressed history | new segment] goes through ``model.forward_tokens`` at the timestep
   t x 1000; the RGB head is applied to the new segment's tokens only;
4. only the new segment is integrated: Euler in flow matching on the sigma grid of
   :func:`unity_core.sampling.schedule.flow_sigmas` (t from 1 to 0), x <- x + (t_next - t) v;
5. the clean segment is appended to the history.

Image-to-video: the start image is repeated as a still clip of 1 + r * temporal_ratio frames and
encoded, which gives the first history (Yume repeats the first image as the first history);
the output video starts at the image. A 4k+1-frame video may be given instead of an image and
becomes the history as it is.

Works with any :class:`~unity_core.model.UnityVideoTransformer` (default small model, 5B);
the coarse patch embeddings are derived from the model's RGB patch embedding.
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
    kept_frames,
    pack_history,
    sequence_length,
)
from unity_core.explore.qcm import action_prompt, parse_script, segment_prompt
from unity_core.sampling.progress import check_interrupt
from unity_core.sampling.schedule import flow_sigmas, to_timestep

#: ``callback(step, total, latent, None)`` after every denoising step, counted over all segments.
Callback = Callable[[int, int, Optional[torch.Tensor], Optional[torch.Tensor]], None]


# ----------------------------------------------------------------------------------------------
# Latent-level sampling
# ----------------------------------------------------------------------------------------------


def history_velocity(model, embedder: HistoryPatchEmbedder, history: Optional[torch.Tensor], latent: torch.Tensor,
                     sigma: float, context: torch.Tensor, schedule: HistorySchedule = PAPER_SCHEDULE,
                     block_runner=None) -> torch.Tensor:
    """Velocity ``[B, C, F, H, W]`` of the new segment given the (already noised) kept history.

    Args:
        model: the DiT (``forward_tokens``, ``embed_time``, ``rgb_head``, ``unpatchify``).
        history: ``[B, C, T', H, W]`` the kept history frames (:func:`select_kept`), noised to
            ``sigma``, or None.
        latent: ``[B, C, F, H, W]`` the noised new segment.
        sigma: flow time t in [0, 1] (the model sees t x 1000).
        context: text tokens ``[B, L, text_dim]``.
    """
    packed = pack_history(embedder, history, latent, schedule, history_is_selected=True)
    t = to_timestep(sigma, latent.shape[0], latent.device)
    out = model.forward_tokens(packed.tokens, packed.positions, t, context, block_runner=block_runner)
    temb, _ = model.embed_time(t)
    features = model.rgb_head(out[:, packed.new_slice], temb)
    return model.unpatchify(features, packed.new_grid).float()


def select_kept(history: torch.Tensor, schedule: HistorySchedule) -> torch.Tensor:
    """The history frames that enter the sequence (``[B, C, T', H, W]``)."""
    return history[:, :, kept_frames(history.shape[2], schedule)]


@dataclass
class LongVideoLatents:
    """Output of :func:`generate_long_video`.

    Attributes:
        latent: ``[B, C, T + S * F, H, W]``: the given history then every generated segment.
        seconds_per_segment: wall-clock seconds of each segment's denoising.
        history_tokens: history tokens in each segment's sequence.
    """

    latent: torch.Tensor
    seconds_per_segment: List[float]
    history_tokens: List[int] = field(default_factory=list)


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
) -> LongVideoLatents:
    """Generate ``len(contexts)`` segments after ``history``, one context per segment.

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

    Returns:
        :class:`LongVideoLatents`.

    Raises:
        ValueError: bad shapes, no contexts, steps < 1 or cfg != 1 without a negative context.
        SamplingInterrupted: when ``should_interrupt()`` returns True.
    """
    if history.ndim != 5 or history.shape[2] < 1:
        raise ValueError(f"history must be [B, C, T >= 1, H, W] latents, got {tuple(history.shape)}")
    if history.shape[1] != model.config.in_channels:
        raise ValueError(f"history has {history.shape[1]} channels; the model takes {model.config.in_channels}")
    if not contexts:
        raise ValueError("no segments: give one context per segment")
    if latent_frames_per_segment < 1:
        raise ValueError(f"latent_frames_per_segment must be >= 1, got {latent_frames_per_segment}")
    if cfg != 1.0 and negative_context is None:
        raise ValueError("cfg != 1 needs negative_context (e.g. the encoding of the empty prompt)")
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
    for segment, context in enumerate(contexts):
        start = time.perf_counter()
        noise = torch.randn((b, c, latent_frames_per_segment, h, w), generator=gen).to(device)
        kept = select_kept(latent, schedule)
        hist_noise = torch.randn(kept.shape, generator=gen).to(device)
        ctx = context.to(device)
        if ctx.shape[0] != b:
            ctx = ctx.expand(b, -1, -1)
        if cfg != 1.0:
            neg = negative_context.to(device)
            neg = neg.expand(b, -1, -1) if neg.shape[0] != b else neg
            length = max(ctx.shape[1], neg.shape[1])
            pad = lambda t: torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1]))  # noqa: E731
            ctx = torch.cat([pad(ctx), pad(neg)])
        x = noise
        for i in range(int(steps)):
            check_interrupt(should_interrupt, done, total)
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            noised_hist = (1.0 - s) * kept + s * hist_noise
            if cfg != 1.0:
                v = history_velocity(model, embedder, torch.cat([noised_hist] * 2), torch.cat([x, x]), s, ctx,
                                     schedule, block_runner)
                v = v[b:] + cfg * (v[:b] - v[b:])
            else:
                v = history_velocity(model, embedder, noised_hist, x, s, ctx, schedule, block_runner)
            x = x + (s_next - s) * v
            done += 1
            if callback is not None:
                callback(done, total, x, None)
        hist_tokens.append(sequence_length(latent.shape[2], (h, w), 0, schedule, patch[1]))
        latent = torch.cat([latent, x], dim=2)
        seconds.append(time.perf_counter() - start)
    return LongVideoLatents(torch.cat([history, latent[:, :, history.shape[2]:].to(history.dtype)], 2), seconds, hist_tokens)


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
    return next(codec.parameters()).device


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


def _parts(pipeline_or_model_parts):
    p = pipeline_or_model_parts
    if isinstance(p, dict):
        return p["transformer"], p.get("codec"), p.get("text_encoder"), dict(p.get("defaults", {}))
    if isinstance(p, (tuple, list)):
        if len(p) != 3:
            raise ValueError("model parts must be (transformer, codec, text_encoder)")
        return p[0], p[1], p[2], {}
    if hasattr(p, "transformer"):
        return p.transformer, p.codec, p.text_encoder, dict(getattr(p, "defaults", {}))
    raise ValueError(f"expected a UnityVideoPipeline, a dict or (transformer, codec, text_encoder); got {type(p).__name__}")


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
    latent_frames_per_segment: int = 1,
    sentence_set: str = "v1",
    prefix: Optional[bool] = None,
    speed: Optional[dict] = None,
    schedule: Optional[HistorySchedule] = None,
    size: Optional[Tuple[int, int]] = None,
    image_repeats: Optional[int] = None,
    history: Optional[Union["ExploreResult", torch.Tensor]] = None,
    decode: bool = True,
    callback: Optional[Callback] = None,
    should_interrupt: Optional[Callable[[], bool]] = None,
) -> ExploreResult:
    """Walk through a generated world: one segment per action, from a start image.

    Args:
        pipeline_or_model_parts: a :class:`~unity_core.pipeline.UnityVideoPipeline`, or
            ``(transformer, codec, text_encoder)``, or a dict with those keys (+ ``defaults``).
        image: start image ``[H, W, 3]`` / ``[1, H, W, 3]`` in [0, 1], a 4k+1-frame video
            ``[F, H, W, 3]``, or a path to an image or video file (grey and RGBA images are
            made RGB). None when ``history`` continues an earlier walk.
        actions_script: e.g. ``"W W W+A ← ·"`` (grammar in :mod:`unity_core.explore.qcm`) or a
            list of :class:`CameraAction`; one segment per action.
        prompt: content prompt (what the world looks like); each segment's prompt is this plus
            the action's QCM text. When both exceed the text encoder's token limit, the content
            is shortened from its end (with a warning) so the action text is never cut.
        steps, shift, cfg, seed: sampler settings (default: the pipeline's defaults, else 20,
            1.0, 1.0, 42).
        negative_prompt: for cfg != 1.
        latent_frames_per_segment: new latent frames per action, 4 video frames each (default 1:
            synthworld, and so the default model, moves one action per 4 frames; Yume uses 8).
        sentence_set: ``"v1"`` or ``"v1_5"``.
        prefix: include the set's prefix sentence. None: include it when the whole prompt fits
            the text encoder's token limit (the default MiniLM encoder holds 96 tokens; the
            default model was trained with the v1 prefix).
        speed: speed sentence values (see :func:`~unity_core.explore.qcm.speed_sentence`) or None.
        schedule: history compression (default: the paper's, fitted to the latent size).
        size: (height, width) of the walk (default: the pipeline's; the image is resized and
            centre-cropped). None with ``history``: a continuation keeps its walk's size.
        image_repeats: still latent frames of the start image (default
            ``latent_frames_per_segment``).
        history: an earlier :class:`ExploreResult` (or its latent ``[1, C, T, h, w]``) to continue
            from. A bare latent keeps every frame it decodes to (it does not know how many were
            still repeats of a start image), and numbers the new segments' frames after them.
        decode: decode the latents to frames.
        callback: ``callback(step, total, latent, None)`` after every step.
        should_interrupt: checked before every step; True raises ``SamplingInterrupted``.

    Returns:
        :class:`ExploreResult`.

    Raises:
        ValueError: a bad action script, image, size or setting (the message names it), or an
            image or size given together with ``history``.
        SamplingInterrupted: when ``should_interrupt()`` returns True.
    """
    from unity_core.io.video import resize_center_crop

    transformer, codec, text_encoder, defaults = _parts(pipeline_or_model_parts)
    if codec is None or text_encoder is None:
        raise ValueError("explore needs a codec and a text encoder; load a full pipeline or pass them")
    actions = parse_script(actions_script)
    steps = int(steps if steps is not None else defaults.get("steps", 20))
    shift = float(shift if shift is not None else defaults.get("shift", 1.0))
    cfg = float(cfg if cfg is not None else defaults.get("cfg", 1.0))
    seed = int(seed if seed is not None else defaults.get("seed", 42))
    fps = float(defaults.get("fps", 8.0))

    prev: Optional[ExploreResult] = history if isinstance(history, ExploreResult) else None
    if history is not None:
        if image is not None or size is not None:
            raise ValueError("history= continues an earlier walk at its own size and start; pass image=None and "
                             "size=None with it (or drop history= to start a new walk from the image)")
        latent0 = (prev.latent if prev is not None else history).to(transformer.device)
        if latent0.ndim != 5 or latent0.shape[0] != 1:
            raise ValueError(f"history latent must be [1, C, T, h, w], got {tuple(latent0.shape)}")
        # A bare latent carries no record of still frames: all of its decoded frames are kept.
        still = prev.info.get("still_frames", 0) if prev is not None else 0
        start_count = prev.info.get("start_frames", 1) if prev is not None else 1
    else:
        if image is None:
            raise ValueError("give a start image (or history= to continue an earlier walk)")
        frames = _as_frames(image)
        h, w = size or (defaults.get("height", frames.shape[1]), defaults.get("width", frames.shape[2]))
        step = codec.spatial_ratio * transformer.config.patch_size[1]
        if h % step or w % step:
            raise ValueError(f"size {h}x{w} must be a multiple of {step} (codec x patch); e.g. {h // step * step}x{w // step * step}")
        if tuple(frames.shape[1:3]) != (h, w):
            frames = resize_center_crop(frames, h, w)
        repeats = latent_frames_per_segment if image_repeats is None else int(image_repeats)
        if repeats < 0:
            raise ValueError(f"image_repeats must be >= 0, got {repeats}")
        latent0, still = initial_history(codec, frames, repeats)
        latent0 = latent0.to(transformer.device)
        start_count = 1 if frames.shape[0] == 1 else frames.shape[0]

    cache: Dict[str, torch.Tensor] = {}

    def encode(text: str) -> torch.Tensor:
        if text not in cache:
            cache[text] = text_encoder.encode([text]).to(transformer.device)
        return cache[text]

    prompts = []
    shortened = False
    for a in actions:
        use_prefix = prefix
        if use_prefix is None:
            use_prefix = _prompt_fits(text_encoder, segment_prompt(prompt, a, sentence_set, speed, True))
        action_text = action_prompt(a, sentence_set, speed, use_prefix)
        content = _fit_content(text_encoder, prompt, action_text)
        shortened |= content != (prompt or "").strip()
        prompts.append(f"{content} {action_text}" if content else action_text)
    if shortened:
        warnings.warn(f"content prompt + action text exceed the text encoder's {text_encoder.max_length} tokens; the "
                      "content prompt was shortened (at the end) so that the action text stays whole", stacklevel=3)
    contexts = [encode(p) for p in prompts]
    negative = encode(negative_prompt) if cfg != 1.0 else None

    out = generate_long_video(
        transformer, latent0, contexts, latent_frames_per_segment=latent_frames_per_segment, steps=steps,
        shift=shift, cfg=cfg, negative_context=negative, seed=seed, schedule=schedule, callback=callback,
        should_interrupt=should_interrupt,
    )
    all_actions = (prev.actions if prev is not None else []) + actions
    all_prompts = (prev.prompts if prev is not None else []) + prompts
    frames_out = None
    if decode:
        from unity_core.codec import video_to_frames

        frames_out = video_to_frames(codec.decode(out.latent.to(_codec_device(codec))))[0].cpu()[still:]
    ratio = codec.temporal_ratio
    seg_len = latent_frames_per_segment * ratio
    first = 1 + (latent0.shape[2] - 1) * ratio - still  # decoded frames before this call's segments
    segment_frames = (list(prev.segment_frames) if prev is not None else []) + [
        (first + i * seg_len, first + (i + 1) * seg_len) for i in range(len(actions))
    ]
    info = {
        "steps": steps, "shift": shift, "cfg": cfg, "seed": seed, "sentence_set": sentence_set,
        "latent_frames_per_segment": latent_frames_per_segment, "still_frames": still, "start_frames": start_count,
        "prefix": prefix, "content_shortened": shortened,
        "schedule": (schedule or PAPER_SCHEDULE).fit(*out.latent.shape[-2:], transformer.config.patch_size[1]),
        "history_tokens": out.history_tokens,
    }
    return ExploreResult(frames_out, out.latent, all_actions, all_prompts, segment_frames, out.seconds_per_segment,
                         fps, info)


__all__ = [
    "ExploreResult", "LongVideoLatents", "explore", "generate_long_video",
    "history_velocity", "initial_history", "select_kept", "start_frames",
]
