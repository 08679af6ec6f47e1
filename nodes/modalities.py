"""Modality nodes: one-shot estimation, value <-> visualisation codecs, control preprocessors,
and savers for videos and decoded values."""

from __future__ import annotations

import numpy as np

from unity_core import modalities as M
from unity_core.constants import resolve_modality
from unity_core.io import unique_path, write_video
from unity_core.preprocess import extract_control

from . import _comfy
from .common import MODALITY_INPUT, MODEL, SEED_INPUT, STEPS_INPUT, VALUES


def _values_out(modality, values):
    return {"modality": resolve_modality(modality), "values": values}


class UnityVideoEstimate:
    """Estimation in one node: RGB frames -> the modality's visualisation and decoded values
    (depth in [0, 1], flow in pixels, labels, keypoints, IUV), with the model's built-in codec."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = ("IMAGE", VALUES)
    RETURN_NAMES = ("visualisation", "values")
    FUNCTION = "estimate"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (MODEL, {"tooltip": "A model with a built-in codec and text encoder (the embedded default)."}),
            "frames": ("IMAGE", {"tooltip": "RGB video frames; resized to the model's size and 4k+1 frames if needed."}),
            "modality": MODALITY_INPUT,
            "seed": SEED_INPUT, "steps": STEPS_INPUT,
        }}

    def estimate(self, model, frames, modality, seed, steps):
        from unity_core.sampling import SamplingInterrupted

        try:
            out = model.estimate(frames, modality, steps=steps, seed=seed, callback=_comfy.progress(steps),
                                 should_interrupt=_comfy.should_interrupt)
        except SamplingInterrupted as err:
            raise _comfy.interrupted_error(err) from None
        return (out.modality_frames, _values_out(modality, out.values))


class UnityVideoModalityDecode:
    """Visualisation frames -> modality values (inverse of the model's colouring), plus a clean
    re-rendered preview."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = (VALUES, "IMAGE")
    RETURN_NAMES = ("values", "preview")
    FUNCTION = "decode"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"frames": ("IMAGE", {"tooltip": "A modality visualisation video."}), "modality": MODALITY_INPUT}}

    def decode(self, frames, modality):
        values = M.decode(modality, frames)
        return (_values_out(modality, values), M.encode(modality, values, size=frames.shape[1:3]))


class UnityVideoModalityEncode:
    """Modality values -> the visualisation video UnityVideo consumes."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("visualisation",)
    FUNCTION = "encode"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "values": (VALUES, {"tooltip": "Values from a preprocessor, a decoder or the estimator."}),
            "width": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Frame width (skeletons only)."}),
            "height": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Frame height (skeletons only)."}),
        }}

    def encode(self, values, width, height):
        modality = values["modality"]
        return (M.encode(modality, values["values"], size=(height, width)),)


class UnityVideoPreprocess:
    """Extract a control from real video, offline: optical flow (OpenCV DIS), skeleton
    (MediaPipe pose) or a person mask (MediaPipe selfie segmentation)."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = ("IMAGE", VALUES)
    RETURN_NAMES = ("visualisation", "values")
    FUNCTION = "extract"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "RGB video frames."}),
            "modality": (["raft", "skeleton", "segmentation"], {"default": "skeleton", "tooltip": "raft = optical flow; depth and densepose have no offline estimator."}),
        }}

    def extract(self, frames, modality):
        values = extract_control(modality, frames)
        return (M.encode(modality, values, size=frames.shape[1:3]), _values_out(modality, values))


class UnityVideoSaveValues:
    """Save decoded modality values as .npz in the output folder (never overwriting)."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "values": (VALUES, {"tooltip": "Values to save."}),
            "filename_prefix": ("STRING", {"default": "unityvideo/values", "tooltip": "Path under the output folder."}),
        }}

    def save(self, values, filename_prefix):
        path = unique_path(_comfy.output_path(filename_prefix, f"_{values['modality']}.npz"))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, values=np.asarray(values["values"]), modality=values["modality"])
        summary = f"{values['modality']} {tuple(np.asarray(values['values']).shape)} -> {path.name}"
        return {"ui": {"text": [summary]}, "result": ()}


class UnityVideoSaveVideo:
    """Save IMAGE frames as H.264 mp4 or animated webp in the output folder (never overwriting),
    with a preview in the node."""

    CATEGORY = "UnityVideo/modalities"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "frames": ("IMAGE", {"tooltip": "Video frames to save."}),
            "filename_prefix": ("STRING", {"default": "unityvideo/video", "tooltip": "Path under the output folder."}),
            "fps": ("FLOAT", {"default": 8.0, "min": 1.0, "max": 120.0, "tooltip": "Frames per second (the release uses 8)."}),
            "format": (["webp", "mp4"], {"default": "webp", "tooltip": "webp previews in the node; mp4 is H.264."}),
        }}

    def save(self, frames, filename_prefix, fps, format):
        path = write_video(_comfy.output_path(filename_prefix, f".{format}"), frames, fps)
        rel = path.relative_to(_comfy.output_dir().resolve())
        return {"ui": {"images": [{"filename": rel.name, "subfolder": str(rel.parent) if str(rel.parent) != "." else "", "type": "output"}],
                       "animated": (format == "webp",)}, "result": ()}
