"""Loader node: UnityVideo as core's MODEL (plus the default's codec and text encoder); video files are in
nodes/video.py."""

from __future__ import annotations

from pathlib import Path

import torch
from comfy_api.latest import io

from . import host
from .common import CODEC, TEXT_ENCODER
from .model import WEIGHT_DTYPES, make_model_patcher
from .schema import UnityNode, out

_LOADABLE = (torch.float32, torch.bfloat16, torch.float16)


def _load_dtype(path: Path, weight_dtype: str) -> torch.dtype:
    """The dtype to read a checkpoint in: ComfyUI's choice for the device and the file's dtype
    (as its UNETLoader), or the file's 16-bit dtype when the weights will be stored in fp8."""
    import comfy.model_management as mm
    from safetensors import safe_open

    file_dtype, params = torch.float32, 0
    if path.suffix in (".safetensors", ".sft"):
        with safe_open(str(path), "pt") as f:
            for k in f.keys():
                sl = f.get_slice(k)
                params += int(torch.tensor(sl.get_shape()).prod()) if sl.get_shape() else 1
            first = next(iter(f.keys()), None)
            if first is not None:
                file_dtype = f.get_slice(first).get_dtype()
                file_dtype = {"BF16": torch.bfloat16, "F16": torch.float16}.get(file_dtype, torch.float32)
    if WEIGHT_DTYPES[weight_dtype] is not None:
        return file_dtype if file_dtype != torch.float32 else torch.bfloat16
    dtype = mm.unet_dtype(model_params=params, supported_dtypes=list(_LOADABLE), weight_dtype=file_dtype)
    return dtype if dtype in _LOADABLE else torch.bfloat16


class UnityVideoLoader(UnityNode):
    """Load UnityVideo as ComfyUI's MODEL: the embedded default (with its codec and MiniLM text
    encoder) or a checkpoint from models/unityvideo or models/diffusion_models (the official
    UnityVideo layout, or a plain Wan2.2-TI2V-5B). ComfyUI's memory manager then loads, offloads
    and partially loads it; any core sampler, LoraLoaderModelOnly, ModelSamplingSD3 or EasyCache
    works on it. For checkpoints use CLIPLoader (type wan, UMT5-XXL) and VAELoader (Wan2.2 VAE)."""

    DISPLAY = "UnityVideo Loader"
    GROUP = "loaders"
    INPUTS = [
        lambda: io.Combo.Input("checkpoint", options=host.model_choices(), default=host.EMBEDDED,
                               tooltip="'(embedded default)' runs offline; other files come from models/unityvideo "
                                       "or models/diffusion_models (official UnityVideo layout, or plain Wan2.2-TI2V-5B)."),
        io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="default",
                       tooltip="Storage dtype of the transformer's linear weights, as core's UNETLoader: default "
                               "(ComfyUI's choice for the device), fp8_e4m3fn or fp8_e5m2 (half the memory of bf16)."),
    ]
    OUTPUTS = [out(io.Model, "model", "The UnityVideo transformer as core MODEL (connect to KSampler)."),
               out(CODEC, "codec", "The embedded default's video codec (None for checkpoints: use VAELoader)."),
               out(TEXT_ENCODER, "text_encoder", "The embedded default's MiniLM (None for checkpoints: use CLIPLoader).")]

    @classmethod
    def validate_inputs(cls, checkpoint=None):
        """Checked when the prompt is queued, in place of core's bare "value not in list": a
        checkpoint file that is not in the model folders fails with a message naming the file,
        the folders it was looked for in and the README section."""
        if checkpoint is None:
            return True
        return host.missing_model_message(checkpoint) or True

    @classmethod
    def execute(cls, checkpoint, weight_dtype="default") -> io.NodeOutput:
        from unity_core.model import load_transformer

        if weight_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weight_dtype must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}")
        if checkpoint == host.EMBEDDED:  # the library's own loading of the default (float32, on the CPU)
            from unity_core.pipeline import UnityVideoPipeline

            pipe = UnityVideoPipeline.from_pretrained("default")
            return io.NodeOutput(make_model_patcher(pipe.transformer, weight_dtype, default_codec=True), pipe.codec,
                                 pipe.text_encoder)
        path = host.model_path(checkpoint)
        transformer = load_transformer(path, dtype=_load_dtype(path, weight_dtype))
        return io.NodeOutput(make_model_patcher(transformer, weight_dtype), None, None)

