"""Modality nodes: one-shot estimation, value <-> visualisation codecs, control preprocessors,
and the saver for decoded values."""

from __future__ import annotations

import numpy as np
from comfy_api.latest import io

from unity_core import modalities as M
from unity_core.constants import resolve_modality
from unity_core.io import save_values
from unity_core.preprocess import extract_control

from . import host
from .common import CODEC, MAX_SIDE, MODEL_DEFAULTS, TEXT_ENCODER, VALUES, modality_input, seed_input, steps_input
from .schema import UnityNode, out

#: Controls :func:`unity_core.preprocess.extract_control` estimates offline (depth and densepose need
#: weights that are not shipped).
PREPROCESS_CHOICES = ["raft", "skeleton", "segmentation"]
_VIS_TOOLTIP = "The modality's visualisation video, [F, H, W, 3] in [0, 1] (what UnityVideo reads and writes)."
_VALUES_TOOLTIP = ("Decoded values: depth in [0, 1], flow in pixels, segmentation labels, skeleton keypoints or "
                   "DensePose IUV.")


def _values_out(modality, values):
    return {"modality": resolve_modality(modality), "values": values}


class UnityVideoEstimate(UnityNode):
    """Estimation in one node: RGB frames of any length and size -> the modality's visualisation
    and decoded values (depth in [0, 1], flow in pixels, labels, keypoints, IUV) for every frame at
    the frames' own size, with the built-in codec and text encoder. A preset of UnityVideo Windowed
    Sampling (video2flow) with core's euler sampler and simple schedule at cfg 1 (the release's
    sampler), windows of 17 frames at a 64-pixel short side: the sampling is core's. For the 5B,
    use UnityVideo Windowed Sampling with core's CLIP and VAE."""

    DISPLAY = "UnityVideo Estimate"
    GROUP = "modalities"
    INPUTS = [
        io.Model.Input("model", tooltip="MODEL from UnityVideo Loader (the embedded default)."),
        CODEC.Input("codec", tooltip="The built-in codec from UnityVideo Loader."),
        TEXT_ENCODER.Input("text_encoder", tooltip="The built-in text encoder from UnityVideo Loader."),
        io.Image.Input("frames", tooltip="RGB video frames [F, H, W, 3], any length and size."),
        modality_input(),
        seed_input(),
        steps_input(),
    ]
    OUTPUTS = [out(io.Image, "visualisation", _VIS_TOOLTIP), out(VALUES, "values", _VALUES_TOOLTIP)]

    @classmethod
    def execute(cls, model, codec, text_encoder, frames, modality, seed, steps) -> io.NodeOutput:
        import comfy.samplers

        from .codec import _check_codec
        from .conditioning import UnityVideoTextEncode
        from .windows import sample_clip

        if codec is None or text_encoder is None:
            raise ValueError("UnityVideo Estimate needs the built-in codec and text encoder (the embedded default); "
                             "for a checkpoint use UnityVideo Windowed Sampling with core's CLIP and VAE")
        _check_codec(codec)
        host.unity_transformer(model, cls.DISPLAY)  # refuses a MODEL that is not UnityVideo's
        (empty,) = UnityVideoTextEncode.execute(text_encoder, "").args
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()
        vis, values = sample_clip(model, empty, empty, frames, "video2flow", modality,
                                  comfy.samplers.sampler_object("euler"), sigmas, seed, codec=codec,
                                  text_encoder=text_encoder, node=cls.DISPLAY)
        return io.NodeOutput(vis, _values_out(modality, values))


class UnityVideoModalityDecode(UnityNode):
    """Visualisation frames -> modality values (the inverse of the model's colouring), plus a clean
    re-rendered preview."""

    DISPLAY = "UnityVideo Modality Decode"
    GROUP = "modalities"
    INPUTS = [io.Image.Input("frames", tooltip="A modality visualisation video [F, H, W, 3]."), modality_input()]
    OUTPUTS = [out(VALUES, "values", _VALUES_TOOLTIP),
               out(io.Image, "preview", "The values coloured again: a clean rendering of what was decoded.")]

    @classmethod
    def execute(cls, frames, modality) -> io.NodeOutput:
        values = M.decode(modality, frames)
        return io.NodeOutput(_values_out(modality, values), M.encode(modality, values, size=frames.shape[1:3]))


class UnityVideoModalityEncode(UnityNode):
    """Modality values -> the visualisation video UnityVideo consumes."""

    DISPLAY = "UnityVideo Modality Encode"
    GROUP = "modalities"
    INPUTS = [
        VALUES.Input("values", tooltip="Values from a preprocessor, a decoder or the estimator."),
        io.Int.Input("width", default=MODEL_DEFAULTS["width"], min=16, max=MAX_SIDE, step=16,
                     tooltip="Frame width (skeletons only)."),
        io.Int.Input("height", default=MODEL_DEFAULTS["height"], min=16, max=MAX_SIDE, step=16,
                     tooltip="Frame height (skeletons only)."),
    ]
    OUTPUTS = [out(io.Image, "visualisation", _VIS_TOOLTIP)]

    @classmethod
    def execute(cls, values, width, height) -> io.NodeOutput:
        return io.NodeOutput(M.encode(values["modality"], values["values"], size=(height, width)))


class UnityVideoPreprocess(UnityNode):
    """Extract a control from real video, offline: optical flow (OpenCV DIS), skeleton (MediaPipe
    pose) or a person mask (MediaPipe selfie segmentation)."""

    DISPLAY = "UnityVideo Control Preprocess"
    GROUP = "modalities"
    INPUTS = [
        io.Image.Input("frames", tooltip="RGB video frames [F, H, W, 3]."),
        io.Combo.Input("modality", options=PREPROCESS_CHOICES, default="skeleton",
                       tooltip="raft = optical flow; depth and densepose have no offline estimator."),
    ]
    OUTPUTS = [out(io.Image, "visualisation", _VIS_TOOLTIP), out(VALUES, "values", _VALUES_TOOLTIP)]

    @classmethod
    def execute(cls, frames, modality) -> io.NodeOutput:
        values = extract_control(modality, frames)
        return io.NodeOutput(M.encode(modality, values, size=frames.shape[1:3]), _values_out(modality, values))


class UnityVideoSaveValues(UnityNode):
    """Save decoded modality values as .npz in the output folder (never overwriting)."""

    DISPLAY = "UnityVideo Save Values"
    GROUP = "modalities"
    IS_OUTPUT = True
    INPUTS = [
        VALUES.Input("values", tooltip="Values to save."),
        io.String.Input("filename_prefix", default="unityvideo/values", tooltip="Path under the output folder."),
    ]

    @classmethod
    def execute(cls, values, filename_prefix) -> io.NodeOutput:
        path = save_values(host.output_path(filename_prefix, f"_{values['modality']}.npz"), values["modality"],
                           values["values"])
        summary = f"{values['modality']} {tuple(np.asarray(values['values']).shape)} -> {path.name}"
        return io.NodeOutput(ui={"text": [summary]})
