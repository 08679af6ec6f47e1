"""The latent codec: a Wan-style causal video VAE (diffusers' ``AutoencoderKLWan``).

The shipped default uses a small config trained by this project (z 16, 4x time, 8x space);
the 5B uses the Wan2.2 VAE (z 48, 4x time, 16x space) from the user's files: a diffusers
``AutoencoderKLWan`` folder (:meth:`LatentCodec.from_pretrained`) or the single file ComfyUI's
``VAELoader`` reads (``wan2.2_vae.safetensors``, Wan's original key names;
:meth:`LatentCodec.from_single_file`, through the one key map :func:`wan_vae_key_to_original`).
Latents are normalised per channel with the mean/std stored in the VAE config, so the DiT sees
roughly unit variance, as Wan's pipelines do.
"""

from __future__ import annotations

import re
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


def wan22_vae_config(base_dim: int = 160, decoder_base_dim: int = 256, z_dim: int = 48,
                     num_res_blocks: int = 2) -> dict:
    """``AutoencoderKLWan`` config of the Wan2.2 VAE (Wan2.2-TI2V-5B): z 48, 4x time, 16x space
    (a 2x2 pixel patch, 12 input channels, then 8x), residual down/up blocks, no attention in
    the stages. Smaller ``base_dim`` / ``decoder_base_dim`` give the same layout at a tiny size
    (tests). The latent mean/std are 0/1 here; Wan's released config carries measured ones.
    """
    return dict(base_dim=base_dim, decoder_base_dim=decoder_base_dim, z_dim=z_dim, dim_mult=[1, 2, 4, 4],
                num_res_blocks=num_res_blocks, attn_scales=[], temperal_downsample=[False, True, True],
                is_residual=True, in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4,
                scale_factor_spatial=16, latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)


# diffusers resnet part -> Wan's Sequential index inside ``residual`` (or the shortcut conv)
_RESNET_PARTS = {"norm1.": "residual.0.", "conv1.": "residual.2.", "norm2.": "residual.3.",
                 "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}
_TOP_VAE = {"quant_conv.": "conv1.", "post_quant_conv.": "conv2.", "encoder.conv_in.": "encoder.conv1.",
            "decoder.conv_in.": "decoder.conv1.", "encoder.norm_out.": "encoder.head.0.",
            "encoder.conv_out.": "encoder.head.2.", "decoder.norm_out.": "decoder.head.0.",
            "decoder.conv_out.": "decoder.head.2.", "encoder.mid_block.attentions.0.": "encoder.middle.1.",
            "decoder.mid_block.attentions.0.": "decoder.middle.1."}
_VAE_BLOCK = re.compile(r"^(encoder|decoder)\.(down_blocks|up_blocks|mid_block)\.(?:(\d+)\.)?"
                        r"(resnets\.(\d+)\.|downsampler\.|upsampler\.)(.*)$")


def wan_vae_key_to_original(key: str, num_res_blocks: int = 2) -> str:
    """diffusers ``AutoencoderKLWan`` name of the Wan2.2 VAE -> Wan's original name, the one
    ComfyUI's single file uses (``encoder.down_blocks.1.resnets.0.conv1.weight`` ->
    ``encoder.downsamples.1.downsamples.0.residual.2.weight``; a stage's resampler is the entry
    after its resnets; mid block resnets 0/1 and attention are ``middle.0/2`` and ``middle.1``).
    The one map between the two layouts: :meth:`LatentCodec.from_single_file` reads it backwards.

    Raises:
        ValueError: a key of no Wan2.2 VAE part (e.g. a Wan2.1 VAE's ``up_blocks.N.upsamplers``).
    """
    for ours, orig in _TOP_VAE.items():
        if key.startswith(ours):
            return orig + key[len(ours):]
    m = _VAE_BLOCK.match(key)
    if m is None:
        raise ValueError(f"{key!r} is not a Wan2.2 VAE parameter name (diffusers AutoencoderKLWan)")
    side, kind, stage, part, resnet, rest = m.groups()
    if part.startswith("resnets."):
        for d_name, o_name in _RESNET_PARTS.items():
            if rest.startswith(d_name):
                rest = o_name + rest[len(d_name):]
                break
        else:
            raise ValueError(f"{key!r}: unknown resnet part")
        index = int(resnet)
    else:  # the stage's resampler follows its resnets (the decoder's stages have one more resnet)
        index = num_res_blocks + (1 if kind == "up_blocks" else 0)
    if kind == "mid_block":
        return f"{side}.middle.{2 * index}.{rest}"
    inner = "downsamples" if kind == "down_blocks" else "upsamples"
    return f"{side}.{inner}.{stage}.{inner}.{index}.{rest}"


def _wan22_config_from_shapes(shapes: dict) -> dict:
    """Wan2.2 VAE config read off the original-layout tensor shapes (ComfyUI's single file)."""
    try:
        base = shapes["encoder.conv1.weight"][0]
        dec = shapes["decoder.head.2.weight"][1]
        z = shapes["conv2.weight"][0]
    except KeyError as err:
        raise ValueError(f"not a Wan2.2 VAE file: tensor {err} is missing") from None
    if "decoder.upsamples.0.upsamples.0.residual.2.weight" not in shapes:
        raise ValueError("not a Wan2.2 VAE file (no decoder.upsamples.0.upsamples.*): a Wan2.1 VAE (z 16, 8x) "
                         "is not this codec's layout")
    res = sum(1 for k in shapes if re.match(r"^encoder\.downsamples\.0\.downsamples\.\d+\.residual\.0\.gamma$", k))
    return wan22_vae_config(base_dim=base, decoder_base_dim=dec, z_dim=z, num_res_blocks=res)


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
        from diffusers.utils import is_accelerate_available

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no codec in {folder}: config.json missing")
        # accelerate is optional (the 'offload' extra): without it, say so to diffusers instead of
        # letting it print a warning that asks every user of the default to install it
        vae = AutoencoderKLWan.from_pretrained(folder, torch_dtype=dtype, low_cpu_mem_usage=is_accelerate_available())
        return cls(vae, encode_window).eval()

    @classmethod
    def from_single_file(cls, path: Union[str, Path], dtype: torch.dtype = torch.float32,
                         encode_window: Optional[int] = None) -> "LatentCodec":
        """Load the Wan2.2 VAE from ComfyUI's single file (``models/vae/wan2.2_vae.safetensors``,
        Wan's original key names). The config is read off the tensor shapes; tensors stream one
        by one into a model built on the meta device (no second copy in RAM).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a Wan2.2 VAE file, or keys missing / left over (listed).
        """
        from diffusers import AutoencoderKLWan
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VAE file {path} does not exist")
        with safe_open(str(path), framework="pt", device="cpu") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            config = _wan22_config_from_shapes(shapes)
            with torch.device("meta"):
                vae = AutoencoderKLWan(**config)
            names = {k: wan_vae_key_to_original(k, config["num_res_blocks"]) for k in vae.state_dict()}
            missing = sorted(v for v in names.values() if v not in shapes)
            extra = sorted(set(shapes) - set(names.values()))
            if missing or extra:
                raise ValueError(f"{path.name} does not match the Wan2.2 VAE layout: missing {missing[:10]} "
                                 f"({len(missing)}), unexpected {extra[:10]} ({len(extra)})")
            state = {k: f.get_tensor(orig).to(dtype) for k, orig in names.items()}
        vae.load_state_dict(state, strict=True, assign=True)
        return cls(vae, encode_window).eval()


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


__all__ = ["DEFAULT_VAE_CONFIG", "LatentCodec", "small_vae_config", "wan22_vae_config", "wan_vae_key_to_original",
           "frames_to_video", "video_to_frames"]
