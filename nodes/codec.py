"""The embedded default's built-in latent codec as nodes (IMAGE <-> LATENT). For the 5B use core's
VAE Encode / VAE Decode with the Wan2.2 VAE."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from unity_core.codec import frames_to_video, video_to_frames

from .common import CODEC
from .schema import UnityNode, out

_CODEC_TOOLTIP = "The built-in codec from UnityVideo Loader (the embedded default)."


def _device(codec) -> torch.device:
    return next(codec.parameters()).device


def _check_codec(codec):
    if codec is None or not hasattr(codec, "encode") or not hasattr(codec, "decode"):
        raise ValueError("no built-in codec connected (a 5B checkpoint has none): use core's VAE Encode / VAE Decode "
                         "with the Wan2.2 VAE, or load the '(embedded default)'")
    return codec


class UnityVideoEncode(UnityNode):
    """IMAGE frames [F, H, W, 3] -> LATENT [1, C, f, h, w] with the built-in codec (f = (F - 1) / 4 + 1,
    h, w = H, W / the codec's spatial ratio)."""

    DISPLAY = "UnityVideo Encode (built-in codec)"
    GROUP = "codec"
    INPUTS = [
        CODEC.Input("codec", tooltip=_CODEC_TOOLTIP),
        io.Image.Input("frames", tooltip="Video frames, 4k+1 of them, sides multiples of the codec's ratio (8)."),
    ]
    OUTPUTS = [out(io.Latent, "latent", "The clip's latent, [1, C, f, h, w], for the task node or a sampler.")]

    @classmethod
    def execute(cls, codec, frames) -> io.NodeOutput:
        codec = _check_codec(codec)
        with torch.no_grad():
            latent = codec.encode(frames_to_video(frames.to(_device(codec))))
        return io.NodeOutput({"samples": latent.cpu()})


class UnityVideoDecode(UnityNode):
    """LATENT [B, C, f, h, w] -> IMAGE frames [B * F, H, W, 3] in [0, 1] with the built-in codec (batch
    items one after another)."""

    DISPLAY = "UnityVideo Decode (built-in codec)"
    GROUP = "codec"
    INPUTS = [
        CODEC.Input("codec", tooltip=_CODEC_TOOLTIP),
        io.Latent.Input("latent", tooltip="A latent from a sampler, the split node or the encoder."),
    ]
    OUTPUTS = [out(io.Image, "frames", "Decoded frames, [F, H, W, 3] in [0, 1].")]

    @classmethod
    def execute(cls, codec, latent) -> io.NodeOutput:
        codec = _check_codec(codec)
        samples = latent["samples"]
        if samples.ndim != 5:
            raise ValueError(f"expected a video latent [B, C, f, h, w], got shape {tuple(samples.shape)}; "
                             "split a packed UnityVideo latent first (UnityVideo split node)")
        if samples.shape[1] != codec.latent_channels:
            raise ValueError(f"the latent has {samples.shape[1]} channels, the built-in codec takes "
                             f"{codec.latent_channels}: decode a 5B latent with core's VAE Decode (Wan2.2 VAE)")
        samples = samples.to(_device(codec))
        with torch.no_grad():
            frames = [video_to_frames(codec.decode(samples[i:i + 1]))[0].cpu() for i in range(samples.shape[0])]
        return io.NodeOutput(torch.cat(frames))
