"""The few ComfyUI services the nodes use, with plain fallbacks when ComfyUI is absent (CI,
scripts): model folders, progress bars, interruption and the output folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, List

try:  # inside ComfyUI
    import comfy.model_management as _mm
    import comfy.utils as _utils
    import folder_paths as _folder_paths

    HAS_COMFY = True
except ImportError:  # plain Python: CI, tests, scripts
    _mm = _utils = _folder_paths = None
    HAS_COMFY = False

EMBEDDED = "(embedded default)"
MODEL_FOLDERS = ("unityvideo", "diffusion_models")
_SUFFIXES = (".safetensors", ".sft")


def register_model_folder() -> None:
    """Add ComfyUI's ``models/unityvideo`` folder (beside ``diffusion_models``)."""
    if HAS_COMFY and "unityvideo" not in _folder_paths.folder_names_and_paths:
        path = os.path.join(_folder_paths.models_dir, "unityvideo")
        _folder_paths.folder_names_and_paths["unityvideo"] = ([path], set(_SUFFIXES))


def _fallback_dirs() -> List[Path]:
    env = os.environ.get("UNITYVIDEO_MODELS_DIR")
    return [Path(env)] if env else []


def model_choices() -> List[str]:
    """The loader's list: the embedded default, then checkpoints in the model folders."""
    names: List[str] = []
    if HAS_COMFY:
        register_model_folder()
        for folder in MODEL_FOLDERS:
            names += [n for n in _folder_paths.get_filename_list(folder) if n.endswith(_SUFFIXES)]
    else:
        for d in _fallback_dirs():  # only files that model_path() accepts (links out of the folder are not)
            names += sorted(str(p.relative_to(d)) for p in d.rglob("*")
                            if p.suffix in _SUFFIXES and p.resolve().is_file() and d.resolve() in p.resolve().parents)
    return [EMBEDDED] + sorted(set(names))


def model_path(name: str) -> Path:
    """Absolute path of a listed checkpoint.

    Raises:
        ValueError: the name escapes the model folders (``..``, absolute paths) or is unknown.
    """
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ValueError(f"model name {name!r} escapes the model folders; pick a file listed by the loader")
    if HAS_COMFY:
        register_model_folder()
        for folder in MODEL_FOLDERS:
            full = _folder_paths.get_full_path(folder, name)
            if full:
                return Path(full)
    for d in _fallback_dirs():
        full = (d / name).resolve()
        if full.is_file() and d.resolve() in full.parents:
            return full
    raise ValueError(f"model {name!r} not found in the {' or '.join(MODEL_FOLDERS)} folders")


def input_path(name: str) -> Path:
    """A file in ComfyUI's input folder (or a path as given outside ComfyUI); rejects escapes."""
    if HAS_COMFY:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{name!r} escapes the input folder")
        return Path(_folder_paths.get_annotated_filepath(name))
    return Path(name)


def output_dir() -> Path:
    return Path(_folder_paths.get_output_directory()) if HAS_COMFY else Path(os.environ.get("UNITYVIDEO_OUTPUT_DIR", "output"))


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


def input_videos() -> List[str]:
    """Video files in ComfyUI's input folder (for the video loader's list)."""
    if not HAS_COMFY:
        return []
    folder = Path(_folder_paths.get_input_directory())
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in {".mp4", ".webm", ".gif", ".webp", ".mov", ".mkv"})


def progress(total: int) -> Callable:
    """A sampler callback that drives ComfyUI's progress bar (no-op outside ComfyUI)."""
    bar = _utils.ProgressBar(total) if HAS_COMFY else None

    def callback(step, total_steps, rgb, modality):
        if bar is not None:
            bar.update_absolute(step, total_steps)

    return callback


def should_interrupt() -> bool:
    """True when the user pressed Cancel in ComfyUI."""
    return bool(HAS_COMFY and _mm.processing_interrupted())


def interrupted_error(err: Exception) -> Exception:
    """Map our SamplingInterrupted to ComfyUI's own interruption exception."""
    if HAS_COMFY:
        return _mm.InterruptProcessingException()
    return err


def torch_device(name: str):
    import torch

    if name == "auto":
        return _mm.get_torch_device() if HAS_COMFY else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
