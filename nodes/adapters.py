"""Core's VAE and CLIP seen as our codec and text encoder, so that the library calls that run a whole
task (:meth:`unity_core.pipeline.UnityVideoPipeline.explore`) take the 5B stack as ComfyUI loads it: the Wan2.2
VAE from ``VAELoader`` and UMT5-XXL from ``CLIPLoader`` (type ``wan``).

Both adapters leave memory to ComfyUI: ``vae.encode`` / ``vae.decode`` and
``clip.encode_from_tokens_scheduled`` load their models through ``comfy.model_management`` and may
offload them again, as core's own VAE Encode / Decode and CLIP Text Encode nodes do.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .common import conditioning_tensor

#: Core's tiled decode at its VAE Decode (Tiled) node's defaults, in pixels and video frames:
#: 512 px tiles overlapping by 64 px, 64 frames at a time overlapping by 8.
TILE_PIXELS, TILE_OVERLAP_PIXELS, TILE_FRAMES, TILE_OVERLAP_FRAMES = 512, 64, 64, 8


class ComfyVaeCodec:
    """A core ``VAE`` (a video VAE such as Wan2.2's, from ``VAELoader``) with the interface of
    :class:`unity_core.codec.LatentCodec` that :meth:`~unity_core.pipeline.UnityVideoPipeline.explore` uses.

    Latents are in the MODEL's space: ``encode`` applies the MODEL's ``latent_format.process_in``
    to the VAE's latent (Wan2.2: per-channel ``(z - mean) / std``), ``decode`` its ``process_out``
    before the VAE, as core's samplers do around ``VAE Encode`` / ``VAE Decode``.

    Attributes:
        spatial_ratio: pixels per latent cell (Wan2.2 VAE: 16).
        temporal_ratio: video frames per latent frame after the first (Wan2.2 VAE: 4).
        tiled: decode with core's tiled decode (``vae.decode_tiled``; less memory, same frames).
        device: where latents come back (ComfyUI's intermediate device; the VAE itself is moved
            by ComfyUI's memory manager).
    """

    def __init__(self, vae, latent_format, tiled: bool = False):
        """
        Args:
            vae: core ``VAE`` of a video model (3-D latents).
            latent_format: the MODEL's ``comfy.latent_formats.LatentFormat``
                (``patcher.model.latent_format``).
            tiled: use ``vae.decode_tiled`` at core's tiled-decode defaults.

        Raises:
            ValueError: ``vae`` is not a video VAE (an image VAE has no temporal compression).
        """
        temporal = vae.temporal_compression_decode() if hasattr(vae, "temporal_compression_decode") else None
        if getattr(vae, "latent_dim", None) != 3 or not temporal:
            raise ValueError("the VAE is not a video VAE (no temporal compression); load the Wan2.2 VAE "
                             "(wan2.2_vae.safetensors) with VAELoader")
        self.vae, self.latent_format, self.tiled = vae, latent_format, bool(tiled)
        self.spatial_ratio = int(vae.spacial_compression_encode())
        self.temporal_ratio = int(temporal)
        self.device = torch.device(getattr(vae, "output_device", "cpu"))

    def to(self, device=None, dtype=None) -> "ComfyVaeCodec":
        """No-op: ComfyUI's memory manager places the VAE (kept for the codec interface)."""
        return self

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video ``[B, 3, F, H, W]`` in [-1, 1] (F = 4k + 1, H and W multiples of ``spatial_ratio``)
        -> latent ``[B, C, 1 + (F - 1) / temporal_ratio, H / s, W / s]`` in the MODEL's space
        (float32, on :attr:`device`).

        Raises:
            ValueError: not a 5-D RGB video.
        """
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected a video [B, 3, F, H, W] in [-1, 1], got {tuple(video.shape)}")
        frames = ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).cpu()  # [B, F, H, W, 3]
        latent = torch.cat([self.vae.encode(f) for f in frames])  # each [F, H, W, 3] -> [1, C, T, h, w]
        return self.latent_format.process_in(latent.float()).to(self.device)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, C, T, h, w]`` in the MODEL's space -> video ``[B, 3, 1 + (T - 1) * r, h * s,
        w * s]`` in [-1, 1] (float32, on :attr:`device`)."""
        z = self.latent_format.process_out(latent.float())
        if self.tiled:
            s, r = self.spatial_ratio, self.temporal_ratio
            tile_t = max(2, TILE_FRAMES // r)
            pixels = self.vae.decode_tiled(z, tile_x=TILE_PIXELS // s, tile_y=TILE_PIXELS // s,
                                           overlap=TILE_OVERLAP_PIXELS // s, tile_t=tile_t,
                                           overlap_t=max(1, min(tile_t // 2, TILE_OVERLAP_FRAMES // r)))
        else:
            pixels = self.vae.decode(z)  # [B, F, H, W, 3] in [0, 1]
        return (pixels.float().movedim(-1, 1) * 2 - 1).to(self.device)


class ComfyClipTextEncoder:
    """A core ``CLIP`` (UMT5-XXL from ``CLIPLoader`` type ``wan``) with the ``encode`` of
    :class:`unity_core.text.TextEncoder`.

    It has no ``tokenizer`` / ``max_length``: prompts are not shortened to a token limit here
    (ComfyUI's tokenizer splits a long prompt into chunks itself).
    """

    name = "comfyui-clip"

    def __init__(self, clip):
        """``clip``: core ``CLIP`` whose embeddings have the MODEL's text width (4096 for UMT5-XXL)."""
        self.clip = clip

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> embeddings ``[len(prompts), L, D]`` (float32, CPU), each as core's CLIP Text
        Encode makes it; shorter ones are zero-padded at the end to the longest L.

        Raises:
            ValueError: no prompts.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise ValueError("no prompts to encode")
        out = [conditioning_tensor(self.clip.encode_from_tokens_scheduled(self.clip.tokenize(p))).float().cpu()
               for p in prompts]
        length = max(t.shape[1] for t in out)
        return torch.cat([torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1])) for t in out])
