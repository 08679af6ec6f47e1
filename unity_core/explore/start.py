"""The start of a walk: a start image or clip (a path, numpy or torch) read and checked
(:func:`as_frames`), picked from a clip (:func:`start_frames`), sized to the walk and encoded to
the walk's first latents (:func:`initial_history`, :func:`start_from_image`). Continuing an earlier
walk instead is :mod:`unity_core.explore.long_video`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import torch

from unity_core.constants import EXPLORE_START_CHOICES


@dataclass
class WalkStart:
    """The latents a walk's first segment continues.

    Attributes:
        latent: ``[1, C, T, h, w]`` on the pipeline's device.
        still_frames: leading decoded frames that repeat the start image (dropped from the output).
        start_frames: frames of the start (1 for an image, F for a start clip).
        start_latents: latents of the start (what Yume-5B's ``start+last`` history keeps).
    """

    latent: torch.Tensor
    still_frames: int
    start_frames: int
    start_latents: int


def as_frames(image) -> torch.Tensor:
    """Image / video as ``[F, H, W, 3]`` float32 in [0, 1].

    Args:
        image: ``[H, W, 3]`` or ``[F, H, W, 3]`` in [0, 1] (numpy or torch), or a path to an image
            or video file (grey and RGBA images become RGB).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: another shape, or values outside [0, 1].
    """
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
    (``[1, H, W, 3]``), or the whole ``clip`` (which a walk needs to be 4k+1 frames).

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


def codec_device(codec) -> torch.device:
    """Where the codec runs: its ``device`` attribute (host adapters) or its first parameter's."""
    device = getattr(codec, "device", None)
    return torch.device(device) if device is not None else next(codec.parameters()).device


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
        return codec.encode(frames_to_video(still.to(codec_device(codec)))), repeats * ratio
    if (frames.shape[0] - 1) % ratio:
        raise ValueError(f"a start video needs {ratio}k+1 frames, got {frames.shape[0]}; trim it or give one image")
    return codec.encode(frames_to_video(frames.to(codec_device(codec)))), 0


def start_from_image(pipe, image, size: Optional[Tuple[int, int]], repeats: int) -> WalkStart:
    """A new walk's start from ``image`` (:func:`as_frames`' inputs), resized and centre-cropped
    to ``size`` (height, width; default: the pipeline's ``defaults``) and encoded by the
    pipeline's codec (:func:`initial_history` with ``repeats`` still latents for an image).

    Raises:
        ValueError: no image, a bad image, or a size that is not a multiple of the codec's spatial
            ratio times the transformer's patch (the message suggests one that is).
        FileNotFoundError: an image path that does not exist.
    """
    from unity_core.io.video import resize_center_crop

    if image is None:
        raise ValueError("give a start image (or history= to continue an earlier walk)")
    frames = as_frames(image)
    h, w = size or (pipe.defaults["height"], pipe.defaults["width"])
    step = pipe.codec.spatial_ratio * pipe.transformer.config.patch_size[1]
    if h % step or w % step:
        raise ValueError(f"size {h}x{w} must be a multiple of {step} (codec x patch); e.g. {h // step * step}x{w // step * step}")
    if tuple(frames.shape[1:3]) != (h, w):
        frames = resize_center_crop(frames, h, w)
    latent, still = initial_history(pipe.codec, frames, repeats)
    return WalkStart(latent.to(pipe.device), still, frames.shape[0], latent.shape[2])


__all__ = ["WalkStart", "as_frames", "codec_device", "initial_history", "start_frames", "start_from_image"]
