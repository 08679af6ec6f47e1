"""World exploration node: Yume-style keyboard camera control (one camera action per segment)
over :func:`unity_core.explore.explore`, with the walk kept in memory so it can be continued.

The frontend widget (``web/explore_widget.js``) writes the queued keys into ``actions`` and sets
``continue_walk`` after the first run, so each press of "continue" extends the same walk.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch

from unity_core.constants import EXPLORE_DEFAULT_PROMPT
from unity_core.explore.long_video import ExploreResult, explore, start_frames
from unity_core.explore.qcm import SENTENCE_SETS, format_script, parse_script

from . import _comfy
from .common import MODEL, SEED_INPUT, STEPS_INPUT

log = logging.getLogger(__name__)

#: The node's start choices (saved in workflows) -> :func:`unity_core.explore.long_video.start_frames`'s.
START_CHOICES = {"last frame": "last", "first frame": "first", "whole clip": "clip"}
#: Walks kept in memory across runs, by ComfyUI node id (a few; each holds latents and frames).
MAX_WALKS = 4
_WALKS: "OrderedDict[str, _Walk]" = OrderedDict()


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


class UnityVideoExplore:
    """Walk through a generated world from a start image, one camera action per segment
    (Yume's keyboard control: W/A/S/D move, arrows turn; 4 new frames per action on the
    default model). Outputs the frames of the whole walk so far and the actions walked.

    continue_walk: when True and this node (same node id) already made a walk with the same
    model, prompt, sentence set, size, start choice and start image, the new actions continue
    that walk from its last segment (Yume's compressed history); otherwise a new walk starts
    from the image. The last few walks (``MAX_WALKS`` nodes) are kept in memory, never on
    disk, and are lost when ComfyUI restarts. Needs a model with a built-in codec and text
    encoder (the embedded default or a pipeline folder)."""

    CATEGORY = "UnityVideo/explore"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("frames", "actions_done")
    FUNCTION = "walk"
    DESCRIPTION = __doc__

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "A model with a built-in codec and text encoder (the embedded default)."}),
                "image": ("IMAGE", {"tooltip": "Start of the walk: an image, or frames of which the last (or the whole 4k+1 clip, see 'start') is used; resized and centre-cropped to width x height."}),
                "actions": ("STRING", {"default": "W W+A", "tooltip": "One camera action per segment, separated by spaces: W/A/S/D move (pairs like W+A), arrows ← → ↑ ↓ (or < > ^ v) turn, W→ does both, · stands still, W*3 repeats. The keyboard widget below fills this in."}),
                "prompt": ("STRING", {"default": EXPLORE_DEFAULT_PROMPT, "multiline": True, "tooltip": "What the world looks like; each segment's prompt is this followed by Yume's sentence for its action."}),
                "start": (list(START_CHOICES), {"default": "last frame", "tooltip": "last frame / first frame: start from that frame of the image batch; whole clip: a 4k+1-frame clip is the walk's first history, as it is."}),
                "width": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Walk width; a multiple of 16 (codec x patch) for the default model."}),
                "height": ("INT", {"default": 64, "min": 16, "max": 4096, "step": 16, "tooltip": "Walk height; a multiple of 16 for the default model."}),
                "steps": STEPS_INPUT,
                "seed": SEED_INPUT,
                "sentence_set": (list(SENTENCE_SETS), {"default": "v1", "tooltip": "Yume's action sentences: v1 (Yume 1.0, what the default model is trained on) or v1_5."}),
            },
            "optional": {
                "continue_walk": ("BOOLEAN", {"default": False, "tooltip": "Continue this node's previous walk with the new actions (same model, prompt, size and start image); off, or nothing to continue, starts a new walk from the image."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, continue_walk=False, **kwargs):
        # a continuation depends on the walk in memory, not only on the inputs: always run it
        return float("nan") if continue_walk else ""

    def walk(self, model, image, actions, prompt, start, width, height, steps, seed, sentence_set,
             continue_walk=False, unique_id=None):
        """Run the walk.

        Args:
            model: a UnityVideo pipeline with codec and text encoder.
            image: IMAGE ``[F, H, W, 3]`` in [0, 1].
            actions: the action script (grammar in :mod:`unity_core.explore.qcm`).

        Returns:
            (frames ``[N, height, width, 3]`` in [0, 1]: the whole walk from the start frame,
            actions_done: the whole walk's actions in canonical spelling, e.g. ``"W W+A ←"``).

        Raises:
            ValueError: a model without codec/text encoder, a bad action script (``actions:
                entry N: ...``), image or size.
        """
        from unity_core.sampling import SamplingInterrupted

        if getattr(model, "codec", None) is None or getattr(model, "text_encoder", None) is None:
            raise ValueError("UnityVideo Explore needs a model with a built-in codec and text encoder: load the "
                             "'(embedded default)' (or a pipeline folder); a bare 5B checkpoint has neither")
        try:
            parsed = parse_script(actions)
        except ValueError as err:
            raise ValueError(f"actions: {err}") from None
        if start not in START_CHOICES:
            raise ValueError(f"unknown start {start!r}; use one of {list(START_CHOICES)}")
        frames = start_frames(image, START_CHOICES[start])
        key = (prompt, sentence_set, int(width), int(height), start, _fingerprint(frames))
        previous = self._previous(unique_id, model, key) if continue_walk else None
        if continue_walk and previous is None:
            log.warning("UnityVideo Explore: no earlier walk with this model, prompt, size and start image in memory; "
                        "starting a new walk from the image")
        try:
            new_walk = previous is None  # a continuation keeps its own start and size
            result = explore(model, frames if new_walk else None, parsed, prompt, steps=steps, seed=seed,
                             sentence_set=sentence_set, size=(height, width) if new_walk else None, history=previous,
                             callback=_comfy.progress(len(parsed) * steps), should_interrupt=_comfy.should_interrupt)
        except SamplingInterrupted as err:
            raise _comfy.interrupted_error(err) from None
        self._remember(unique_id, _Walk(weakref.ref(model), key, result))
        return (result.frames, format_script(result.actions))

    # -- the walk kept between runs ---------------------------------------------------------------

    def _previous(self, unique_id, model, key) -> Optional[ExploreResult]:
        walk = _WALKS.get(str(unique_id)) if unique_id is not None else getattr(self, "_walk", None)
        if walk is None or walk.model() is not model or walk.key != key:
            return None
        return walk.result

    def _remember(self, unique_id, walk: _Walk) -> None:
        if unique_id is None:  # outside ComfyUI: this node object holds it
            self._walk = walk
            return
        _WALKS[str(unique_id)] = walk
        _WALKS.move_to_end(str(unique_id))
        while len(_WALKS) > MAX_WALKS:
            _WALKS.popitem(last=False)
