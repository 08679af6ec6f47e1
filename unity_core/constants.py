"""Names and tables shared by the whole suite, loaded once from ``unity_core/tables/*.json``.

One home for each constant: the modality list, the fixed modality prompts (UnityVideo's
in-context learner), the task table, the training weights, the inference defaults (the
release's, and the embedded default's through :func:`embedded_defaults`), the Wan VAE's temporal
ratio and Yume's quantized-camera-motion sentences. Every other module imports them from here.

Optical flow's names (the one place that says which name goes where):

- ``raft`` is the release's name of the modality and stays wherever the release fixes it: the
  modality's key in the tables and checkpoints (``modality_embeddings.raft``), its entry in
  :data:`MODALITY_PROMPTS` and the training weights, the modality value stored in workflows,
  the CSV column and the ``.npz`` values files. Code keys on :data:`MODALITIES`, so ``raft``.
- ``optical_flow`` is our name wherever we choose one: the modules
  :mod:`unity_core.modalities.optical_flow` and :mod:`unity_core.preprocess.optical_flow`, prose
  and docs. ``flow`` / ``optical_flow`` are accepted as aliases (:func:`resolve_modality`).
- Names are resolved at the edges: the command line, the nodes, the pipeline's public methods and
  the public functions a user calls (``modalities.encode``, ``save_values``, ...) call
  :func:`resolve_modality`; everything inside (the transformer's forward, the sampler, the
  window runner and stitcher) takes the release's name, checked by
  :func:`check_release_modality`.
- The UI shows :data:`MODALITY_LABELS` ("optical flow (raft)"); :func:`resolve_modality`
  accepts those labels too, so a saved workflow loads whichever of them it holds.
- The release calls the modality *stream* "flow": the checkpoint's ``flow_patch_embedding``,
  ``flow_in`` and ``flow_head`` and the task names ``video2flow`` / ``flow2video`` keep it;
  our own names for that stream say ``modality`` (``modality_latent``).

Sources: UnityVideo public code (commit e79e9b6: ``data.py`` MODALITY_PROMPTS,
``flow_matching.py`` TASKS, ``train.py`` defaults) and Yume (arXiv 2507.17744, public code).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional, Tuple


def load_table(name: str) -> Dict[str, Any]:
    """Read one JSON table shipped in ``unity_core/tables`` (e.g. ``"yume_qcm.json"``).

    Raises:
        FileNotFoundError: the package was installed without its data files.
    """
    with resources.files("unity_core.tables").joinpath(name).open("r", encoding="utf-8") as fh:
        return json.load(fh)


_UNITY = load_table("unityvideo_prompts.json")
YUME_QCM: Dict[str, Any] = load_table("yume_qcm.json")

#: The five auxiliary modalities, by the release's names ("raft" is optical flow).
MODALITIES: Tuple[str, ...] = tuple(_UNITY["modalities"])
#: Friendlier names accepted wherever a user names a modality (command line, nodes, pipeline
#: methods, public functions: the edges that call :func:`resolve_modality`).
MODALITY_ALIASES: Dict[str, str] = dict(_UNITY["modality_aliases"])
#: What a user interface shows for each modality (release name -> label); resolvable back by
#: :func:`resolve_modality`.
MODALITY_LABELS: Dict[str, str] = {
    "depth": "depth", "raft": "optical flow (raft)", "segmentation": "segmentation", "skeleton": "skeleton",
    "densepose": "densepose",
}
#: The fixed prompt each modality stream cross-attends to (in-context learner).
MODALITY_PROMPTS: Dict[str, str] = dict(_UNITY["modality_prompts"])
#: Task name -> {"paper_name", "noised", "clean"}; release names text2all / video2flow / flow2video.
TASKS: Dict[str, Dict[str, Any]] = dict(_UNITY["tasks"])
#: Paper names and short aliases accepted for tasks.
TASK_ALIASES: Dict[str, str] = {
    "joint": "text2all",
    "joint generation": "text2all",
    "estimation": "video2flow",
    "estimate": "video2flow",
    "controllable generation": "flow2video",
    "control": "flow2video",
}
TRAIN_TASK_WEIGHTS: Dict[str, float] = dict(_UNITY["train_task_weights"])
TRAIN_MODALITY_WEIGHTS: Dict[str, float] = dict(_UNITY["train_modality_weights"])
#: The release's inference defaults (the 5B's size and length, 20 steps, seed 42, ...); a
#: pipeline's ``pipeline.json`` "defaults" override them (:func:`pipeline_defaults`).
INFERENCE_DEFAULTS: Dict[str, Any] = dict(_UNITY["inference_defaults"])
#: Frames per latent frame after the first in every Wan VAE (the default's codec and the
#: Wan2.2 VAE): a clip of ``TEMPORAL_RATIO * k + 1`` frames (the "4k+1" rule) encodes to
#: ``k + 1`` latent frames (:func:`unity_core.io.video.check_frame_count`).
TEMPORAL_RATIO = 4
#: The embedded default pipeline's folder (``UnityVideoPipeline.from_pretrained("default")``).
DEFAULT_DIR = Path(__file__).resolve().parent / "weights" / "default"
#: How an exploration walk starts from a clip: its first or last frame, or the whole 4k+1 clip
#: (:func:`unity_core.explore.start.start_frames`).
EXPLORE_START_CHOICES: Tuple[str, ...] = ("first", "last", "clip")
#: Content prompt of an exploration when none is given (command line, node): the kind of scene
#: synthworld renders, which the default model was trained on.
EXPLORE_DEFAULT_PROMPT = "A first-person view of a room with a wooden floor."


def pipeline_defaults(config: Optional[dict] = None) -> Dict[str, Any]:
    """A pipeline's inference defaults (``UnityVideoPipeline.defaults``): :data:`INFERENCE_DEFAULTS`
    with the ``"defaults"`` of its ``pipeline.json`` (``config``) over them. Keys: ``num_frames``
    (4k+1), ``height`` / ``width`` (pixels), ``steps``, ``cfg``, ``shift``, ``fps``, ``seed``, and
    those a pipeline adds (``control_cfg``)."""
    return {**INFERENCE_DEFAULTS, **(config or {}).get("defaults", {})}


@lru_cache(maxsize=None)
def _embedded_config() -> Dict[str, Any]:
    return json.loads((DEFAULT_DIR / "pipeline.json").read_text(encoding="utf-8"))


def embedded_defaults() -> Dict[str, Any]:
    """The embedded default's inference defaults (what
    ``UnityVideoPipeline.from_pretrained("default").defaults`` holds: 17 frames at 64x64, 8 fps,
    20 steps, ...), read from its ``pipeline.json`` without loading any weights: the one source
    of the defaults and help texts of the command line and the nodes. A fresh dict each call.

    Raises:
        FileNotFoundError: the package was installed without the default's weights folder.
    """
    return pipeline_defaults(_embedded_config())


_LABEL_NAMES = {label.lower(): name for name, label in MODALITY_LABELS.items()}


def modality_label(name: str) -> str:
    """The UI label of a modality given by any name :func:`resolve_modality` accepts
    (``"raft"`` -> ``"optical flow (raft)"``).

    Raises:
        ValueError: unknown name (from :func:`resolve_modality`).
    """
    return MODALITY_LABELS[resolve_modality(name)]


def resolve_modality(name: str) -> str:
    """Map a user-facing modality name to the release's name.

    Accepts the five release names, the aliases ``flow`` / ``optical_flow`` (-> ``raft``) and
    the UI labels of :data:`MODALITY_LABELS` (``"optical flow (raft)"`` -> ``raft``),
    case-insensitively: whichever of them a saved workflow or command line holds.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise ValueError(f"modality must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = MODALITY_ALIASES.get(key, _LABEL_NAMES.get(key, key))
    if key not in MODALITIES:
        valid = ", ".join(list(MODALITIES) + sorted(MODALITY_ALIASES))
        raise ValueError(f"unknown modality {name!r}; use one of: {valid}")
    return key


def check_release_modality(name: str, extra: Tuple[str, ...] = ()) -> str:
    """Refuse anything but a release modality name (or one of ``extra``, e.g. ``"rgb"``) and
    return it unchanged: the check of the library's inner functions, which take the names the
    edges (command line, nodes, pipeline methods) resolved with :func:`resolve_modality`; no
    aliases or labels are mapped here.

    Raises:
        ValueError: any other name; the message lists the release's names.
    """
    if name in MODALITIES or name in extra:
        return name
    valid = ", ".join(list(MODALITIES) + list(extra))
    raise ValueError(f"unknown modality {name!r}; use one of the release's names: {valid} "
                     "(resolve_modality maps aliases and labels to them)")


def resolve_task(name: str) -> str:
    """Map a task name (release or paper name) to the release's name.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    key = str(name).strip().lower()
    key = TASK_ALIASES.get(key, key)
    if key not in TASKS:
        valid = ", ".join(list(TASKS) + sorted(TASK_ALIASES))
        raise ValueError(f"unknown task {name!r}; use one of: {valid}")
    return key
