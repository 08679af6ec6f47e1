"""Built-in latent codec nodes (the embedded default's VAE). For the 5B use ComfyUI's
VAE Encode / VAE Decode with the Wan2.2 VAE."""

from __future__ import annotations

from .common import MODEL, latent_dict


def _codec(model):
    if model.codec is None:
        raise ValueError("this model has no built-in codec; use ComfyUI's VAE Encode/Decode with the Wan2.2 VAE")
    return model


class UnityVideoEncode:
    """IMAGE frames [F, H, W, 3] -> LATENT with the model's built-in codec."""

    CATEGORY = "UnityVideo/codec"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model with a built-in codec (the embedded default)."}),
            "frames": ("IMAGE", {"tooltip": "Video frames, 4k+1 of them, sides multiples of the codec's ratio (8)."}),
        }}

    def encode(self, model, frames):
        return (latent_dict(_codec(model).encode_frames(frames).cpu(), True),)


class UnityVideoDecode:
    """LATENT -> IMAGE frames [F, H, W, 3] with the model's built-in codec."""

    CATEGORY = "UnityVideo/codec"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model with a built-in codec (the embedded default)."}),
            "latent": ("LATENT", {"tooltip": "A latent from the UnityVideo sampler or encoder."}),
        }}

    def decode(self, model, latent):
        import torch

        samples = latent["samples"].to(model.device)
        return (torch.cat([_codec(model).decode_latent(samples[i:i + 1]) for i in range(samples.shape[0])]),)
