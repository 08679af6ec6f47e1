"""Text, task and split nodes: UnityVideo's tasks as conditioning and latent builders for core samplers.

The task node works as core's ``WanVaceToVideo`` does: it writes what the model needs into the
positive / negative CONDITIONING and returns a LATENT for any core sampler. That LATENT packs the
two streams side by side in width, ``[B, C, F, H, 2W]`` (RGB | modality; why: ``nodes/model.py``),
with a ``noise_mask`` that is 0 over the conditioning stream, so core samplers keep it clean
(t = 0) while the other stream is sampled. The split node takes the sampled LATENT apart again.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from unity_core.constants import MODALITY_PROMPTS, resolve_modality, resolve_task
from unity_core.sampling import noised_streams

from .common import (CODEC, MODEL_DEFAULTS, TASK_CHOICES, TEXT_ENCODER, conditioning_tensor, make_conditioning,
                     modality_input)
from .model import COND_MODALITY, COND_MODALITY_CONTEXT, COND_PACKED, COND_TASK
from .schema import UnityNode, out

#: The Wan2.2 VAE's latent geometry (the 5B's codec): channels, time and space compression.
WAN22_VAE = {"channels": 48, "temporal": 4, "spatial": 16}
#: LATENT key holding the streams as they came in, so the split node returns the clean one untouched
CLEAN_KEY = "unityvideo_clean"


def latent_geometry(codec, frames: int, height: int, width: int) -> tuple:
    """(C, f, h, w) of one stream: from our codec when given, else the Wan2.2 VAE's.

    Raises:
        ValueError: frames not 4k+1, or a size the codec cannot take.
    """
    if codec is not None:
        return tuple(codec.latent_shape(frames, height, width))
    from unity_core.io import check_frame_count

    check_frame_count(frames)
    s = WAN22_VAE["spatial"]
    if height % s or width % s:
        raise ValueError(f"width and height must be multiples of {s} for the Wan2.2 VAE, got {width}x{height}")
    return (WAN22_VAE["channels"], (frames - 1) // WAN22_VAE["temporal"] + 1, height // s, width // s)


def pack_streams(rgb: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, H, W]`` x 2 -> ``[B, C, F, H, 2W]`` (RGB left, modality right).

    Raises:
        ValueError: the streams differ in shape.
    """
    if rgb.shape != modality.shape:
        raise ValueError(f"the RGB latent {tuple(rgb.shape)} and the modality latent {tuple(modality.shape)} must "
                         "have the same shape: encode both videos at the same size and frame count")
    return torch.cat([rgb, modality], dim=-1)


def unpack_streams(packed: torch.Tensor):
    """``[B, C, F, H, 2W]`` -> (rgb, modality), each ``[B, C, F, H, W]``.

    Raises:
        ValueError: not a 5-D latent of even width.
    """
    if packed.ndim != 5 or packed.shape[-1] % 2:
        raise ValueError(f"expected a packed UnityVideo latent [B, C, F, H, 2W] from UnityVideo Task, "
                         f"got {tuple(packed.shape)}")
    w = packed.shape[-1] // 2
    return packed[..., :w], packed[..., w:]


def encode_modality_prompt(name: str, clip=None, text_encoder=None) -> torch.Tensor:
    """The fixed modality prompt of ``name`` encoded ``[1, L, D]`` with a core CLIP (UMT5-XXL for
    the 5B) or our text encoder (the default's MiniLM).

    Raises:
        ValueError: neither is connected.
    """
    prompt = MODALITY_PROMPTS[name]
    if clip is not None:
        return conditioning_tensor(clip.encode_from_tokens_scheduled(clip.tokenize(prompt)))
    if text_encoder is not None:
        return text_encoder.encode([prompt]).cpu()
    raise ValueError("connect 'clip' (CLIPLoader type wan with UMT5-XXL, for the 5B) or 'text_encoder' (from "
                     "UnityVideo Loader, for the embedded default) to encode the modality prompt")


def _with(cond, values: dict):
    return [[c[0], {**c[1], **values}] for c in cond]


class UnityVideoTextEncode(UnityNode):
    """Encode a prompt with the embedded default's text encoder (MiniLM). For the 5B use core's
    CLIPTextEncode with UMT5-XXL (CLIPLoader type wan) instead."""

    DISPLAY = "UnityVideo Text Encode"
    GROUP = "conditioning"
    INPUTS = [TEXT_ENCODER.Input("text_encoder", tooltip="From UnityVideo Loader (the embedded default's MiniLM)."),
              io.String.Input("text", multiline=True, default="", tooltip="Content prompt (or negative prompt).")]
    OUTPUTS = [out(io.Conditioning, "conditioning", "The prompt's tokens [1, L, 384] for UnityVideo Task.")]

    @classmethod
    def execute(cls, text_encoder, text) -> io.NodeOutput:
        if text_encoder is None:
            raise ValueError("this loader gave no text encoder (a checkpoint, not the embedded default); use "
                             "CLIPTextEncode with UMT5-XXL (CLIPLoader type wan)")
        return io.NodeOutput(make_conditioning(text_encoder.encode([text]).cpu()))


class UnityVideoTask(UnityNode):
    """Pick the UnityVideo task and build its latent for any core sampler (KSampler,
    KSamplerAdvanced, SamplerCustomAdvanced).

    estimation (video2flow): rgb_latent -> the modality; controllable generation (flow2video):
    modality_latent -> RGB; joint generation (text2all): both from the prompt, at width x height x
    length. The LATENT packs RGB | modality in width with a noise mask that keeps the given stream
    clean; the conditioning carries the modality and its fixed prompt (encoded with the connected
    CLIP or text encoder). Feed the sampler's LATENT to UnityVideo Split."""

    DISPLAY = "UnityVideo Task"
    GROUP = "conditioning"
    INPUTS = [
        io.Conditioning.Input("positive", tooltip="Content prompt (CLIPTextEncode with UMT5-XXL, or UnityVideo Text Encode)."),
        io.Conditioning.Input("negative", tooltip="Negative prompt, used by the sampler when cfg > 1."),
        io.Combo.Input("task", options=TASK_CHOICES, default="video2flow",
                       tooltip="video2flow: RGB -> modality (estimation); flow2video: modality -> RGB (control); "
                               "text2all: text -> RGB + modality (joint generation)."),
        modality_input(),
        io.Clip.Input("clip", optional=True, tooltip="Encodes the modality's fixed prompt (UMT5-XXL for the 5B)."),
        TEXT_ENCODER.Input("text_encoder", optional=True,
                           tooltip="Encodes the modality's fixed prompt for the embedded default (from UnityVideo Loader)."),
        io.Latent.Input("rgb_latent", optional=True, tooltip="The RGB video's latent: required for video2flow."),
        io.Latent.Input("modality_latent", optional=True, tooltip="The control video's latent: required for flow2video."),
        CODEC.Input("codec", optional=True,
                    tooltip="text2all without latents: the codec whose latent size to use (the default's); "
                            "unconnected = the Wan2.2 VAE (48 channels, 4x time, 16x space)."),
        io.Int.Input("width", default=MODEL_DEFAULTS["width"], min=16, max=4096, step=16,
                     tooltip="text2all: video width in pixels."),
        io.Int.Input("height", default=MODEL_DEFAULTS["height"], min=16, max=4096, step=16,
                     tooltip="text2all: video height in pixels."),
        io.Int.Input("length", default=MODEL_DEFAULTS["num_frames"], min=1, max=1025, step=4,
                     tooltip="text2all: frames, 4k+1."),
        io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="text2all: videos per run."),
    ]
    # output ids differ from the input ids (V3 requires it); the sockets still show as positive / negative
    OUTPUTS = [io.Conditioning.Output(id="positive_out", display_name="positive",
                                      tooltip="The content prompt with the task's modality and modality prompt."),
               io.Conditioning.Output(id="negative_out", display_name="negative",
                                      tooltip="The negative prompt with the same modality conditioning."),
               out(io.Latent, "latent", "RGB | modality packed in width [B, C, F, H, 2W] with the clean stream masked.")]

    @classmethod
    def execute(cls, positive, negative, task, modality, clip=None, text_encoder=None, rgb_latent=None,
                modality_latent=None, codec=None, width=MODEL_DEFAULTS["width"], height=MODEL_DEFAULTS["height"],
                length=MODEL_DEFAULTS["num_frames"], batch_size=1) -> io.NodeOutput:
        task, name = resolve_task(task), resolve_modality(modality)
        rgb_noised, mod_noised = noised_streams(task)
        if not rgb_noised and rgb_latent is None:
            raise ValueError(f"{task} (estimation) needs rgb_latent: encode the RGB video and connect it")
        if not mod_noised and modality_latent is None:
            raise ValueError(f"{task} (controllable generation) needs modality_latent: encode the control video")
        mctx = encode_modality_prompt(name, clip, text_encoder)
        given = rgb_latent if rgb_latent is not None else modality_latent
        if given is not None:
            shape = tuple(given["samples"].shape)
        else:
            shape = (batch_size, *latent_geometry(codec, length, height, width))
        if len(shape) != 5:
            raise ValueError(f"UnityVideo latents are [B, C, F, H, W]; got {shape}")
        rgb = rgb_latent["samples"] if (rgb_latent is not None and not rgb_noised) else torch.zeros(shape)
        mod = modality_latent["samples"] if (modality_latent is not None and not mod_noised) else torch.zeros(shape)
        packed = pack_streams(rgb, mod)
        latent = {"samples": packed}
        if not (rgb_noised and mod_noised):
            mask = torch.ones((1, 1, *packed.shape[2:]))
            w = shape[-1]
            mask[..., :w] = float(rgb_noised)
            mask[..., w:] = float(mod_noised)
            latent["noise_mask"] = mask
            latent[CLEAN_KEY] = {"rgb": None if rgb_noised else rgb, "modality": None if mod_noised else mod}
        values = {COND_PACKED: True, COND_MODALITY: name, COND_MODALITY_CONTEXT: mctx, COND_TASK: task}
        return io.NodeOutput(_with(positive, values), _with(negative, values), latent)


class UnityVideoSplit(UnityNode):
    """Take a sampled UnityVideo LATENT apart: RGB and modality latents for VAE Decode (5B) or
    UnityVideo Decode (default). The conditioning stream comes out exactly as it went in."""

    DISPLAY = "UnityVideo Split"
    GROUP = "conditioning"
    INPUTS = [io.Latent.Input("samples", tooltip="The sampler's LATENT (from a UnityVideo Task latent).")]
    OUTPUTS = [out(io.Latent, "rgb_latent", "The RGB stream [B, C, F, H, W]."),
               out(io.Latent, "modality_latent", "The modality stream [B, C, F, H, W].")]

    @classmethod
    def execute(cls, samples) -> io.NodeOutput:
        rgb, mod = unpack_streams(samples["samples"])
        clean = samples.get(CLEAN_KEY) or {}
        if clean.get("rgb") is not None and clean["rgb"].shape == rgb.shape:
            rgb = clean["rgb"]
        if clean.get("modality") is not None and clean["modality"].shape == mod.shape:
            mod = clean["modality"]
        return io.NodeOutput({"samples": rgb}, {"samples": mod})
