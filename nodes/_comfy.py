"""The ComfyUI services the nodes use, in one place: model and input/output folders, progress bars,
interruption, and the core MODEL -> our transformer, loaded by ComfyUI's memory manager.

The node layer runs inside ComfyUI (``comfy``, ``folder_paths`` and ``comfy_api`` importable); the
library it wraps, :mod:`unity_core`, runs without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List

import comfy.model_management as _mm
import comfy.utils as _utils
import folder_paths as _folder_paths

EMBEDDED = "(embedded default)"
MODEL_FOLDERS = ("unityvideo", "diffusion_models")
_SUFFIXES = (".safetensors", ".sft")
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".webp", ".mov", ".mkv")


def register_model_folder() -> None:
    """Add ComfyUI's ``models/unityvideo`` folder (beside ``diffusion_models``)."""
    if "unityvideo" not in _folder_paths.folder_names_and_paths:
        path = os.path.join(_folder_paths.models_dir, "unityvideo")
        _folder_paths.folder_names_and_paths["unityvideo"] = ([path], set(_SUFFIXES))


def model_choices() -> List[str]:
    """The loader's list: the embedded default, then checkpoints in the model folders."""
    register_model_folder()
    names: List[str] = []
    for folder in MODEL_FOLDERS:
        names += [n for n in _folder_paths.get_filename_list(folder) if n.endswith(_SUFFIXES)]
    return [EMBEDDED] + sorted(set(names))


def _refuse_escape(name: str, where: str) -> None:
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"{name!r} escapes the {where}; pick a file listed by the node")


def model_path(name: str) -> Path:
    """Absolute path of a listed checkpoint.

    Raises:
        ValueError: the name escapes the model folders (``..``, absolute paths) or is unknown.
    """
    _refuse_escape(name, "model folders")
    register_model_folder()
    for folder in MODEL_FOLDERS:
        full = _folder_paths.get_full_path(folder, name)
        if full:
            return Path(full)
    raise ValueError(f"model {name!r} not found in the {' or '.join(MODEL_FOLDERS)} folders")


def input_path(name: str) -> Path:
    """A file in ComfyUI's input folder (``name`` may carry ComfyUI's ``[input]`` annotation).

    Raises:
        ValueError: the name escapes the input folder, or no such file exists.
    """
    _refuse_escape(name, "input folder")
    path = Path(_folder_paths.get_annotated_filepath(name))
    if not path.exists():
        raise ValueError(f"{name!r} is not in ComfyUI's input folder {_folder_paths.get_input_directory()}; "
                         "upload it there (the node's list shows what is)")
    return path


def input_videos() -> List[str]:
    """Video and animated-image files in ComfyUI's input folder, for the video loader's list (read
    each time ComfyUI asks for the node's schema, so uploads show up)."""
    folder = Path(_folder_paths.get_input_directory())
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def output_dir() -> Path:
    """ComfyUI's output folder."""
    return Path(_folder_paths.get_output_directory())


def output_path(filename_prefix: str, suffix: str) -> Path:
    """``<output folder>/<filename_prefix><suffix>``, refused when the prefix leads outside the
    output folder (``..`` or an absolute path), as ComfyUI's own save nodes refuse it.

    Raises:
        ValueError: the path is not inside the output folder.
    """
    out = output_dir().resolve()
    path = (out / f"{filename_prefix}{suffix}").resolve()
    if out not in path.parents:
        raise ValueError(f"filename_prefix {filename_prefix!r} leads outside the output folder {out}; "
                         "use a relative path such as 'unityvideo/video'")
    return path


def progress(total: int) -> Callable:
    """A sampler callback ``(step, total_steps, rgb, modality)`` that drives ComfyUI's progress bar."""
    bar = _utils.ProgressBar(total)

    def callback(step, total_steps, rgb, modality):
        bar.update_absolute(step, total_steps)

    return callback


def should_interrupt() -> bool:
    """True when the user pressed Cancel in ComfyUI."""
    return bool(_mm.processing_interrupted())


def interrupted_error(err: Exception) -> Exception:
    """ComfyUI's own interruption exception, for our ``SamplingInterrupted``."""
    return _mm.InterruptProcessingException()


def torch_device(name: str):
    """``"auto"`` -> ComfyUI's device; otherwise ``torch.device(name)``."""
    import torch

    return _mm.get_torch_device() if name == "auto" else torch.device(name)


def transformer_of(model):
    """The :class:`unity_core.model.UnityVideoTransformer` inside a core MODEL (a ``ModelPatcher``
    from UnityVideo Loader), after ComfyUI's memory manager has loaded it onto its device
    (``comfy.model_management.load_models_gpu``: other models are unloaded to make room, LoRA and
    other weight patches are applied, and ComfyUI may offload it again after the node).

    Raises:
        ValueError: ``model`` is not a UnityVideo MODEL.
    """
    from unity_core.model import UnityVideoTransformer

    inner = getattr(getattr(model, "model", None), "diffusion_model", None)
    if not isinstance(inner, UnityVideoTransformer):
        raise ValueError(f"expected the MODEL output of UnityVideo Loader, got {type(model).__name__}"
                         + (f" around {type(inner).__name__}" if inner is not None else "")
                         + "; other model families cannot run UnityVideo's tasks")
    _mm.load_models_gpu([model])
    return inner


def pipeline(model, codec, text_encoder, node: str):
    """A :class:`unity_core.pipeline.UnityVideoPipeline` over a core MODEL and the loader's built-in
    codec and text encoder, for the nodes that run a whole UnityVideo task in one call (estimation,
    exploration). The transformer is loaded by ComfyUI's memory manager (:func:`transformer_of`);
    the codec follows it to its device.

    Raises:
        ValueError: no codec or text encoder connected (a 5B checkpoint has neither), or ``model``
            is not a UnityVideo MODEL.
    """
    from unity_core.pipeline import UnityVideoPipeline

    if codec is None or text_encoder is None:
        raise ValueError(f"{node} needs the built-in codec and text encoder: connect the codec and text_encoder "
                         "outputs of UnityVideo Loader with the '(embedded default)'; a bare 5B checkpoint has neither")
    transformer = transformer_of(model)
    codec.to(next(transformer.parameters()).device)
    return UnityVideoPipeline(transformer, codec, text_encoder, {"source": "ComfyUI MODEL"})
