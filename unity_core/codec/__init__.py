"""The latent codec: a Wan-style causal video VAE (diffusers' ``AutoencoderKLWan``).

The shipped default uses a small config trained by this project (z 16, 4x time, 8x space);
the 5B uses the Wan2.2 VAE (z 48, 4x time, 16x space) from the user's files. Latents are
normalised per channel with the mean/std stored in the VAE config, so the DiT sees roughly unit
variance, as Wan's pipelines do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn


def small_vae_config(spatial_ratio: int = 8, base_dim: int = 16, z_dim: int = 16) -> dict:
    """Config of a small ``AutoencoderKLWan`` for the default codec: 4x in time, ``spatial_ratio``
    (4 or 8) in space, ``z_dim`` latent channels, no attention. The latent mean/std start at 0/1;
    training measures them (``unity_core.train.codec.set_latent_statistics``).

    Raises:
        ValueError: a spatial ratio other than 4 or 8.
    """
    if spatial_ratio not in (4, 8):
        raise ValueError(f"spatial_ratio must be 4 or 8, got {spatial_ratio}")
    # one more (space-only) stage for 8x; the last two stages also halve time (4x)
    dim_mult, temporal = ([1, 2, 4, 4], [False, True, True]) if spatial_ratio == 8 else ([1, 2, 4], [True, True])
    return dict(base_dim=base_dim, z_dim=z_dim, dim_mult=dim_mult, num_res_blocks=1, attn_scales=[],
                temperal_downsample=temporal, latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)


#: The shipped default codec's config (z 16, 4x time, 8x space).
DEFAULT_VAE_CONFIG = small_vae_config()


class LatentCodec(nn.Module):
    """Video <-> latent with a Wan VAE.

    ``encode``: video ``[B, 3, F, H, W]`` in [-1, 1] -> normalised latent ``[B, C, f, h, w]``
    (posterior mean, f = (F - 1) / 4 + 1, h = H / s, w = W / s). ``decode`` is its inverse,
    clamped to [-1, 1].

    Raises (``encode``): ValueError for a frame count that is not 4k+1 or a size that is not
    a multiple of the spatial ratio.
    """

    def __init__(self, vae, encode_window: Optional[int] = None):
        super().__init__()
        self.vae = vae
        #: :meth:`posterior`'s window when none is given (pipeline.json ``codec_window``).
        self.encode_window = encode_window

    @classmethod
    def from_config(cls, config: Optional[dict] = None) -> "LatentCodec":
        from diffusers import AutoencoderKLWan

        return cls(AutoencoderKLWan(**(config or DEFAULT_VAE_CONFIG)))

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.z_dim)

    @property
    def temporal_ratio(self) -> int:
        return 2 ** sum(bool(x) for x in self.vae.config.temperal_downsample)

    @property
    def spatial_ratio(self) -> int:
        patch = self.vae.config.patch_size or 1
        return 2 ** (len(self.vae.config.dim_mult) - 1) * patch

    def latent_shape(self, num_frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        """(C, f, h, w) of the latent of a clip, from the VAE's own ratios."""
        from unity_core.io.video import check_frame_count

        check_frame_count(num_frames)
        s = self.spatial_ratio
        if height % s or width % s:
            raise ValueError(f"height and width must be multiples of {s} for this codec, got {height}x{width}")
        return (self.latent_channels, (num_frames - 1) // self.temporal_ratio + 1, height // s, width // s)

    def _stats(self, like: torch.Tensor):
        cfg = self.vae.config
        shape = (1, -1, 1, 1, 1)
        return (torch.tensor(cfg.latents_mean, dtype=like.dtype, device=like.device).view(shape),
                torch.tensor(cfg.latents_std, dtype=like.dtype, device=like.device).view(shape))

    def posterior(self, video: torch.Tensor, window: Optional[int] = None):
        """The VAE's posterior (a diffusers ``DiagonalGaussianDistribution``, unnormalised
        latents ``[B, C, f, h, w]``) of ``video`` ``[B, 3, F, H, W]`` in [-1, 1].

        ``window`` (4k+1 frames): the longest clip the encoder runs over in one causal pass.
        A Wan VAE carries a feature cache from chunk to chunk, and a small one trained on
        17-frame clips drifts on longer ones (the default's encoder does; so did its first
        decoder, whose RGB L1 rose from 0.06 to about 0.3 over 33-frame walks).
        With a window, each later latent frame is encoded from the ``window`` frames that end
        with its own chunk, as in training. None: the codec's ``encode_window``; when that is
        None too, one pass over the whole clip (Wan's way).

        Raises:
            ValueError: a shape that is not ``[B, 3, F, H, W]``, F not 4k+1, a size that is not a
                multiple of the spatial ratio, or a window that is not (temporal ratio)k+1.
        """
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, F, H, W] in [-1, 1], got {tuple(video.shape)}")
        self.latent_shape(video.shape[2], video.shape[3], video.shape[4])
        video, frames, step = video.to(self.dtype), video.shape[2], self.temporal_ratio
        window = self.encode_window if window is None else window
        if window is not None and (window < 1 or (window - 1) % step):  # checked even when the clip is shorter
            raise ValueError(f"window must be {step}k+1 frames (e.g. pipeline.json's codec_window), got {window}")
        if window is None or frames <= window:
            return self.vae.encode(video).latent_dist
        first = self.vae.encode(video[:, :, :window]).latent_dist  # latents 0 .. (window - 1) / step
        params = [torch.cat([first.mean, first.logvar], 1)]
        for end in range(window - 1 + step, frames, step):  # the last frame of each later chunk
            dist = self.vae.encode(video[:, :, end + 1 - window:end + 1]).latent_dist
            params.append(torch.cat([dist.mean, dist.logvar], 1)[:, :, -1:])
        return DiagonalGaussianDistribution(torch.cat(params, 2))

    def encode(self, video: torch.Tensor, sample: bool = False, generator: Optional[torch.Generator] = None,
               window: Optional[int] = None) -> torch.Tensor:
        """Normalised latent of ``video`` (see the class docstring; ``window`` as in :meth:`posterior`)."""
        dist = self.posterior(video, window)
        z = dist.sample(generator) if sample else dist.mode()
        mean, std = self._stats(z)
        return (z - mean) / std

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"latent must be [B, {self.latent_channels}, f, h, w], got {tuple(latent.shape)}")
        mean, std = self._stats(latent)
        return self.vae.decode((latent * std + mean).to(self.dtype)).sample.clamp(-1, 1)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def save_pretrained(self, folder: Union[str, Path]) -> Path:
        """Write ``config.json`` + ``diffusion_pytorch_model.safetensors`` (diffusers layout).

        Raises:
            FileExistsError: the folder already holds a codec.
        """
        folder = Path(folder)
        if (folder / "config.json").exists():
            raise FileExistsError(f"{folder} already holds a codec; save into a new folder")
        self.vae.save_pretrained(folder, safe_serialization=True)
        return folder

    @classmethod
    def from_pretrained(cls, folder: Union[str, Path], dtype: torch.dtype = torch.float32,
                        encode_window: Optional[int] = None) -> "LatentCodec":
        """Load a diffusers ``AutoencoderKLWan`` folder (ours, or Wan2.2's ``vae`` folder);
        ``encode_window`` as in :meth:`posterior` (a pipeline's ``codec_window``).

        Raises:
            FileNotFoundError: no ``config.json`` in the folder.
        """
        from diffusers import AutoencoderKLWan

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no codec in {folder}: config.json missing")
        return cls(AutoencoderKLWan.from_pretrained(folder, torch_dtype=dtype), encode_window).eval()


def frames_to_video(frames: torch.Tensor) -> torch.Tensor:
    """ComfyUI-style frames ``[F, H, W, 3]`` in [0, 1] (or ``[B, F, H, W, 3]``) -> ``[B, 3, F, H, W]`` in [-1, 1]."""
    if frames.ndim == 4:
        frames = frames[None]
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3] or [B, F, H, W, 3], got {tuple(frames.shape)}")
    return frames.permute(0, 4, 1, 2, 3) * 2 - 1


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, F, H, W]`` in [-1, 1] -> ``[B, F, H, W, 3]`` in [0, 1]."""
    return ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1)


__all__ = ["DEFAULT_VAE_CONFIG", "LatentCodec", "small_vae_config", "frames_to_video", "video_to_frames"]
