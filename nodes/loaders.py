"""Loader nodes: the UnityVideo model and video files."""

from __future__ import annotations

import torch

from unity_core.io import read_video
from unity_core.model import load_transformer
from unity_core.pipeline import UnityVideoPipeline

from . import _comfy
from .common import MODEL

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class UnityVideoLoader:
    """Load the embedded default (with its codec and text encoder) or a UnityVideo checkpoint
    from ComfyUI's ``unityvideo`` / ``diffusion_models`` folders (then use ComfyUI's CLIP and
    VAE nodes with UMT5-XXL and the Wan2.2 VAE)."""

    CATEGORY = "UnityVideo/loaders"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (_comfy.model_choices(), {"tooltip": "'(embedded default)' runs offline; other files come from models/unityvideo or models/diffusion_models (official UnityVideo layout, or plain Wan2.2-TI2V-5B)."}),
            "dtype": (list(_DTYPES), {"default": "fp32", "tooltip": "Weight dtype; bf16 halves memory (the 5B ships in bf16)."}),
            "device": (["auto", "cpu", "cuda"], {"default": "auto", "tooltip": "Where the model runs; auto = ComfyUI's device."}),
        }}

    def load(self, checkpoint, dtype, device):
        dev = _comfy.torch_device(device)
        if checkpoint == _comfy.EMBEDDED:
            return (UnityVideoPipeline.from_pretrained("default", dtype=_DTYPES[dtype], device=dev),)
        transformer = load_transformer(_comfy.model_path(checkpoint), dtype=_DTYPES[dtype], device=dev)
        return (UnityVideoPipeline(transformer, None, None, {"checkpoint": checkpoint}),)


class UnityVideoLoadVideo:
    """Read a video (mp4, webm, gif, webp or an image folder) into IMAGE frames [F, H, W, 3]."""

    CATEGORY = "UnityVideo/loaders"
    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("frames", "fps")
    FUNCTION = "load"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {"default": "", "tooltip": "File name in ComfyUI's input folder (or a path outside ComfyUI)."}),
            "num_frames": ("INT", {"default": 17, "min": 1, "max": 1025, "step": 4, "tooltip": "Frames to keep; must be 4k+1 (17, 33, 81)."}),
            "width": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Output width (multiple of 16); the clip is scaled and centre-cropped."}),
            "height": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Output height (multiple of 16)."}),
            "sampling": (["uniform", "stride"], {"default": "uniform", "tooltip": "uniform: spread over the whole clip (the release); stride: consecutive frames."}),
            "stride": ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Step between frames for stride sampling."}),
        }}

    def load(self, video, num_frames, width, height, sampling, stride):
        from unity_core.io import check_frame_count

        check_frame_count(num_frames)
        frames, fps = read_video(_comfy.input_path(video), num_frames, sampling, stride, size=(height, width))
        return (frames, fps)
