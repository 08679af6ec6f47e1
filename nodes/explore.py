"""World exploration node: Yume-style keyboard camera control (one camera action per segment)
over :meth:`unity_core.pipeline.UnityVideoPipeline.explore`, with the walk kept in memory so it can be continued.

The model is core's MODEL from UnityVideo Loader, loaded onto its device by ComfyUI's memory manager
(which unloads other models to make room and applies LoRA patches). The codec and text encoder are
either the embedded default's built-in ones (from the same loader) or, for a 5B checkpoint
(UnityVideo-5B, Yume-5B), core's VAE (``VAELoader``, Wan2.2 VAE) and CLIP (``CLIPLoader`` type wan,
UMT5-XXL) through the adapters of :mod:`nodes.adapters`. On a Yume-5B MODEL the walk runs the
walk (:func:`unity_core.explore.samplers.generate_yume_walk`: noise, history, prompts) samples
every segment with core's sampling (:func:`nodes.yume.sample_segment`, the Yume Segment node's
functions): the MODEL as patched (``ModelSamplingSD3``, LoRA, ``EasyCache``, UnityVideo Block Cache,
``TorchCompileModel``), loaded by ComfyUI's memory manager per segment, with the connected SAMPLER
and SIGMAS or Yume-5B's defaults (4 steps of euler on the simple schedule at the MODEL's shift,
7; no CFG), with core's progress bar (and "segment k/n" as its text) and latent previews. On the
default model the walk runs the library's derived-history sampler.

Live walk: after each segment its new frames are decoded and sent to the browser
(``unityvideo.explore.segment`` messages with an animated WEBP in ComfyUI's temp folder), so the
frontend widget (``web/explore_widget.js``) shows the walk growing while it renders. The widget
writes the queued keys into ``actions`` and sets ``continue_walk`` after the first run, so each
press of "continue" extends the same walk; keys pressed during a render wait for the next one.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
from comfy_api.latest import io

from unity_core.constants import EXPLORE_DEFAULT_PROMPT
from unity_core.explore.long_video import ExploreResult
from unity_core.explore.qcm import SENTENCE_SETS, format_script, parse_script
from unity_core.explore.samplers import HISTORY_MODES, is_yume_model
from unity_core.explore.start import start_frames

from . import host
from .common import CODEC, TEXT_ENCODER, seed_input, size_inputs
from .schema import UnityNode, out

log = logging.getLogger(__name__)

#: The node's start choices (saved in workflows) -> :func:`unity_core.explore.start.start_frames`'s.
START_CHOICES = {"last frame": "last", "first frame": "first", "whole clip": "clip"}
#: Walks kept in memory across runs, by ComfyUI node id (a few; each holds latents and frames).
MAX_WALKS = 4
#: The memory key of a node called outside ComfyUI's executor (no node id).
DIRECT_CALL = "(direct call)"
_WALKS: "OrderedDict[str, _Walk]" = OrderedDict()
#: The ``sentence_set`` choice that takes the model's own set (Yume-5B: v1_5; the default: v1).
MODEL_DEFAULT = "model default"
#: ``steps`` = 0 takes the model's own step count (Yume-5B: 4; the default: 20).
STEPS_MODEL_DEFAULT = 0


@dataclass
class _Walk:
    """A finished walk and what it was made from; continued only when ``key`` and model match."""

    model: "weakref.ReferenceType"
    key: Tuple[Any, ...]
    result: ExploreResult


def _fingerprint(frames: torch.Tensor) -> str:
    """Content hash of the start frames (a new tensor with the same pixels is the same start)."""
    data = frames.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest() + str(tuple(frames.shape))


class UnityVideoExplore(UnityNode):
    """Walk through a generated world from a start image, one camera action per segment
    (Yume's keyboard control: W/A/S/D move, arrows turn; 4 new frames per action on the
    default model, 32 on Yume-5B). Outputs the frames of the whole walk so far and the actions walked.

    continue_walk: when True and this node (same node id) already made a walk with the same
    MODEL, prompt, sentence set, size, start choice and start image, the new actions continue
    that walk from its last segment (Yume's compressed history); otherwise a new walk starts
    from the image. A continuation always runs (never served from ComfyUI's cache). The last
    few walks (``MAX_WALKS`` nodes) are kept in memory, never on disk, and are lost when ComfyUI
    restarts.

    Codec and text encoder: connect exactly one of ``codec`` (the embedded default's) or ``vae``
    (core's Wan2.2 VAE, for a 5B checkpoint), and one of ``text_encoder`` or ``clip`` (core's
    UMT5-XXL). ``steps`` 0 and ``sentence_set`` "model default" take the model's own settings
    (Yume-5B: 4 steps, v1_5; otherwise 20 steps, v1)."""

    DISPLAY = "UnityVideo Explore (keyboard walk)"
    GROUP = "explore"
    HIDDEN = [io.Hidden.unique_id]
    INPUTS = [
        io.Model.Input("model", tooltip="MODEL from UnityVideo Loader: the embedded default, a UnityVideo-5B or a "
                                        "Yume-5B checkpoint (core's Load Diffusion Model drops Yume's history "
                                        "layers)."),
        CODEC.Input("codec", optional=True,
                    tooltip="The built-in codec from UnityVideo Loader (the embedded default); or connect 'vae'."),
        TEXT_ENCODER.Input("text_encoder", optional=True,
                           tooltip="The built-in text encoder from UnityVideo Loader (the embedded default); or "
                                   "connect 'clip'."),
        io.Image.Input("image", optional=True,
                       tooltip="Start of the walk (needed): an image, or frames of which the last (or the whole 4k+1 "
                               "clip, see 'start') is used; resized and centre-cropped to width x height. Optional "
                               "only so that the sockets keep the slots that saved graphs link to."),
        io.Vae.Input("vae", optional=True,
                     tooltip="Core's VAE for a 5B checkpoint: VAELoader with the Wan2.2 VAE (wan2.2_vae.safetensors); "
                             "or connect 'codec'."),
        io.Clip.Input("clip", optional=True,
                      tooltip="Core's CLIP for a 5B checkpoint: CLIPLoader type wan with UMT5-XXL; or connect "
                              "'text_encoder'."),
        io.String.Input("actions", default="W W+A",
                        tooltip="One camera action per segment, separated by spaces: W/A/S/D move (pairs like W+A), "
                                "arrows ← → ↑ ↓ (or < > ^ v) turn, W→ does both, · stands still, W*3 repeats. The "
                                "keyboard widget below fills this in."),
        io.String.Input("prompt", default=EXPLORE_DEFAULT_PROMPT, multiline=True,
                        tooltip="What the world looks like; each segment's prompt is this followed by Yume's sentence "
                                "for its action."),
        io.Combo.Input("start", options=list(START_CHOICES), default="last frame",
                       tooltip="last frame / first frame: start from that frame of the image batch; whole clip: a "
                               "4k+1-frame clip is the walk's first history, as it is."),
        *size_inputs(64, "Walk"),
        io.Int.Input("steps", default=STEPS_MODEL_DEFAULT, min=0, max=200,
                     tooltip="Sampling steps per segment; 0 = the model's default (Yume-5B: 4, as the release; "
                             "otherwise 20)."),
        seed_input(),
        io.Combo.Input("sentence_set", options=[MODEL_DEFAULT, *SENTENCE_SETS], default=MODEL_DEFAULT,
                       tooltip="Yume's action sentences: v1 (Yume 1.0, what the default model is trained on), v1_5 "
                               "(Yume 1.5, what Yume-5B is trained on), or model default (v1_5 on a Yume-5B MODEL, "
                               "otherwise v1)."),
        io.Boolean.Input("continue_walk", default=False, optional=True,
                         tooltip="Continue this node's previous walk with the new actions (same model, prompt, size "
                                 "and start image); off, or nothing to continue, starts a new walk from the image."),
        # no defaults: graphs saved before these inputs existed stay as they are (absent = off / all)
        io.Boolean.Input("tiled_decode", optional=True,
                         tooltip="Decode with core's tiled VAE decode (less memory for long or large walks); only "
                                 "with 'vae' connected. Off when unset."),
        io.Combo.Input("history_mode", options=list(HISTORY_MODES), optional=True,
                       tooltip="Yume-5B only: the history each segment sees: all latents so far (packed by Yume's "
                               "tiers), or start+last (the start image's latents and the last segment, as the "
                               "release's web app). all when unset."),
        io.Sampler.Input("sampler", optional=True,
                         tooltip="Yume-5B only: the SAMPLER of every segment (KSamplerSelect, UnityVideo Time Travel / "
                                 "AAM Sampler); unconnected = euler, as the release."),
        io.Sigmas.Input("sigmas", optional=True,
                        tooltip="Yume-5B only: the noise levels of every segment (BasicScheduler on the same MODEL, "
                                "...); unconnected = 'steps' on the simple schedule at the MODEL's shift (7 for "
                                "Yume-5B; ModelSamplingSD3 changes it)."),
    ]
    OUTPUTS = [
        out(io.Image, "frames", "The whole walk so far, [N, height, width, 3] in [0, 1], from the start frame."),
        out(io.String, "actions_done", "The whole walk's actions in canonical spelling, e.g. 'W W+A ←'."),
    ]

    @classmethod
    def validate_inputs(cls, actions=None):
        """Refuse a bad action script when the prompt is queued (a linked input is None here and is
        checked when the node runs). Only ``actions`` is named: ComfyUI skips its own range and
        list checks for the inputs a validator takes."""
        if isinstance(actions, str):
            try:
                parse_script(actions)
            except ValueError as err:
                return f"actions: {err}"
        return True

    @classmethod
    def fingerprint_inputs(cls, continue_walk=False, **kwargs):
        """A continuation depends on the walk in memory, not only on the inputs: NaN (never equal to
        itself) makes ComfyUI run it every time; a new walk is a function of its inputs."""
        return float("nan") if continue_walk else ""

    @classmethod
    def execute(cls, model, actions, prompt, start, width, height, steps, seed, sentence_set, continue_walk=False,
                codec=None, text_encoder=None, image=None, vae=None, clip=None, tiled_decode=False,
                history_mode=None, sampler=None, sigmas=None) -> io.NodeOutput:
        """Run the walk (or continue it).

        Args:
            model: core MODEL from UnityVideo Loader.
            codec, text_encoder: the embedded default's built-in codec and text encoder; or
            vae, clip: core's VAE (Wan2.2) and CLIP (UMT5-XXL) for a 5B checkpoint (one of each pair).
            image: IMAGE ``[F, H, W, 3]`` in [0, 1] (needed; an optional socket only to keep its slot).
            actions: the action script (grammar in :mod:`unity_core.explore.qcm`).
            steps: per segment, 0 = the model's default; sentence_set: ``"model default"``, v1 or v1_5.
            tiled_decode: core's tiled VAE decode (with ``vae``); history_mode: Yume-5B's history
                (``all`` or ``start+last``; None = all).
            sampler, sigmas: Yume-5B only: core SAMPLER and SIGMAS of every segment (None: euler,
                ``steps`` on the simple schedule at the MODEL's shift).

        Returns:
            NodeOutput(frames ``[N, height, width, 3]`` in [0, 1]: the whole walk from the start frame,
            actions_done: the whole walk's actions in canonical spelling, e.g. ``"W W+A ←"``).

        Raises:
            ValueError: a bad action script (``actions: entry N: ...``), start choice, image (or none) or size;
                not exactly one of codec / vae or of text_encoder / clip; a MODEL that is not
                UnityVideo Loader's (e.g. core's Load Diffusion Model on a Yume file); a Yume-only
                option (history_mode, sampler, sigmas) on a model without Yume's history layers. All before
                any model work.
        """
        from unity_core.sampling import SamplingInterrupted

        try:
            parsed = parse_script(actions)
        except ValueError as err:
            raise ValueError(f"actions: {err}") from None
        if start not in START_CHOICES:
            raise ValueError(f"unknown start {start!r}; use one of {list(START_CHOICES)}")
        if image is None:
            raise ValueError("UnityVideo Explore needs a start image: connect 'image' (Load Image, or UnityVideo Load "
                             "Video for a clip)")
        if history_mode is not None and history_mode not in HISTORY_MODES:
            raise ValueError(f"unknown history_mode {history_mode!r}; use one of {list(HISTORY_MODES)}")
        frames = start_frames(image, START_CHOICES[start])
        transformer = host.unity_transformer(model, "UnityVideo Explore")
        if history_mode not in (None, "all") and not is_yume_model(transformer):
            raise ValueError(f"history_mode {history_mode!r} is Yume-5B's: this MODEL has no Yume history patch "
                             "embeddings (patch_embedding_2x ... _2x_f); load a Yume-5B checkpoint with UnityVideo "
                             "Loader, or set history_mode to 'all'")
        yume = is_yume_model(transformer)
        if not yume and (sampler is not None or sigmas is not None):
            raise ValueError("sampler and sigmas are Yume-5B's: this MODEL's walk runs the derived-history sampler; "
                             "load a Yume-5B checkpoint with UnityVideo Loader, or disconnect them")
        if sigmas is not None and (sigmas.ndim != 1 or sigmas.shape[0] < 2):
            raise ValueError(f"sigmas must be [steps + 1] noise levels, got {tuple(sigmas.shape)}")
        node = str(cls.hidden_value("unique_id") or DIRECT_CALL)
        key = (prompt, sentence_set, int(width), int(height), start, _fingerprint(frames))
        previous = _previous(node, model, key) if continue_walk else None
        if continue_walk and previous is None:
            log.warning("UnityVideo Explore: no earlier walk with this model, prompt, size and start image in memory; "
                        "starting a new walk from the image")
        # a Yume-5B walk samples through core, which loads the MODEL per segment (after UMT5 and the VAE ran)
        pipe = host.pipeline(model, codec, text_encoder, "UnityVideo Explore", vae=vae, clip=clip,
                               tiled_decode=bool(tiled_decode), load=not yume)
        live = _LiveWalk(pipe.codec, node if node != DIRECT_CALL else None, len(parsed))
        core = None
        if yume:
            core = _CoreSegments(model, node, len(parsed), sampler, sigmas, int(steps), int(seed))
        try:
            new_walk = previous is None  # a continuation keeps its own start and size
            result = pipe.explore(frames if new_walk else None, parsed, prompt,
                                  steps=None if int(steps) == STEPS_MODEL_DEFAULT else int(steps), seed=seed,
                                  sentence_set=None if sentence_set == MODEL_DEFAULT else sentence_set,
                                  size=(height, width) if new_walk else None, history=previous,
                                  history_mode=history_mode or "all",
                                  callback=None if yume else host.progress(len(parsed) * max(int(steps), 1), model),
                                  should_interrupt=host.should_interrupt,
                                  segment_sampler=core, on_segment=live)
        except SamplingInterrupted as err:
            raise host.interrupted_error(err) from None
        if core is not None:
            result.info.update(core.info())
        _remember(node, _Walk(weakref.ref(model), key, result))
        return io.NodeOutput(result.frames, format_script(result.actions))


# -- each segment through core, and on screen as it lands -------------------------------------------

class _CoreSegments:
    """The Yume-5B walk's segment sampler (:data:`unity_core.explore.samplers.SegmentSampler`):
    core's sampling of the MODEL (:func:`nodes.yume.sample_segment`) with core's latent previews and
    progress bar per segment, and "segment k/n" as the bar's text."""

    def __init__(self, model, node: str, segments: int, sampler, sigmas, steps: int, seed: int):
        import comfy.samplers

        from .yume import YUME_SAMPLER, YUME_SCHEDULER, YUME_STEPS

        self.model, self.node, self.segments, self.seed = model, node, segments, seed
        self.sampler = sampler if sampler is not None else comfy.samplers.sampler_object(YUME_SAMPLER)
        if sigmas is None:
            sampling = model.get_model_object("model_sampling")
            sigmas = comfy.samplers.calculate_sigmas(sampling, YUME_SCHEDULER, steps or YUME_STEPS).cpu()
        self.sigmas = sigmas

    def info(self) -> dict:
        """What the segments were sampled with (for the walk's ``info``)."""
        sampling = self.model.get_model_object("model_sampling")
        return {"sampling": "comfyui core", "steps": int(self.sigmas.shape[0]) - 1,
                "shift": float(getattr(sampling, "shift", float("nan"))), "sigmas": [float(s) for s in self.sigmas]}

    def __call__(self, k, history, noise, context):
        import comfy.utils
        import latent_preview

        from .common import make_conditioning
        from .yume import sample_segment

        if host.should_interrupt():
            raise host.interrupted_error(None)
        host.progress_text(f"segment {k + 1}/{self.segments}", self.node)
        cond = make_conditioning(context.cpu())
        steps, n = int(self.sigmas.shape[0]) - 1, 0 if history is None else history.shape[2]
        previewer = latent_preview.get_previewer(self.model.load_device, self.model.model.latent_format)
        bar = comfy.utils.ProgressBar(steps)

        def callback(step, x0, x, total):  # core's preview callback, on the new frames (not the history's first)
            image = None if previewer is None else previewer.decode_latent_to_preview_image("JPEG", x0[:, :, n:])
            bar.update_absolute(step + 1, total, image)

        return sample_segment(self.model, cond, cond, history, noise, sigmas=self.sigmas, sampler=self.sampler,
                              seed=self.seed + k, callback=callback)


class _LiveWalk:
    """``on_segment`` of the walk: decode the segment that just landed (with the latent before it,
    whose frame is dropped) and send its frames to the browser as an animated WEBP
    (``unityvideo.explore.segment``: node, segment, segments, images), so the widget shows the walk
    while it renders. Off outside ComfyUI's server (no node id or no PromptServer)."""

    def __init__(self, codec, node: Optional[str], segments: int):
        self.codec, self.node, self.segments = codec, node, segments

    def __call__(self, k, latent, new):
        if self.node is None or not host.server_running():
            return
        from unity_core.codec import video_to_frames
        from unity_core.explore.start import codec_device

        tail = latent[:, :, -min(latent.shape[2], new + 1):]
        frames = video_to_frames(self.codec.decode(tail.to(codec_device(self.codec))))[0].cpu()
        if tail.shape[2] > new:
            frames = frames[1:]  # the frame of the latent before the segment
        image = host.save_temp_animation(frames, f"unityvideo_walk_{self.node}_{k}")
        host.send_to_browser("unityvideo.explore.segment",
                               {"node": self.node, "segment": k, "segments": self.segments, "images": [image]})


# -- the walk kept between runs -------------------------------------------------------------------

def _previous(node: str, model, key) -> Optional[ExploreResult]:
    walk = _WALKS.get(node)
    if walk is None or walk.model() is not model or walk.key != key:
        return None
    return walk.result


def _remember(node: str, walk: _Walk) -> None:
    _WALKS[node] = walk
    _WALKS.move_to_end(node)
    while len(_WALKS) > MAX_WALKS:
        _WALKS.popitem(last=False)
