"""The host's services: what the nodes take from ComfyUI, in one place (the node layer's service
module; nodes import it as ``from . import host``): model and input/output folders, progress bars,
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
    """Add ComfyUI's ``models/unityvideo`` folder (beside ``diffusion_models``). Where
    ``extra_model_paths.yaml`` already named ``unityvideo`` folders (ComfyUI reads it before loading
    custom nodes), the default folder is added to those instead of being left out."""
    path = os.path.join(_folder_paths.models_dir, "unityvideo")
    if "unityvideo" not in _folder_paths.folder_names_and_paths:
        _folder_paths.folder_names_and_paths["unityvideo"] = ([path], set(_SUFFIXES))
    else:
        _folder_paths.add_model_folder_path("unityvideo", path)  # a no-op once it is there


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


#: The README section that says which model files go where.
MODELS_README = "README.md, section 'The 5B checkpoint'"


def missing_model_message(name: str) -> str:
    """Why ``name`` cannot be loaded, naming the folders it is looked for in (ComfyUI's
    ``models/unityvideo`` and ``models/diffusion_models``, plus their ``extra_model_paths.yaml``
    entries) and the README section; empty when the file is there (or is the embedded default)."""
    if name == EMBEDDED:
        return ""
    register_model_folder()
    try:
        if any(_folder_paths.get_full_path(folder, name) for folder in MODEL_FOLDERS):
            return ""
    except Exception:  # a name ComfyUI's lookup refuses (absolute, '..'): model_path says why at run time
        return ""
    folders = [p for folder in MODEL_FOLDERS for p in _folder_paths.get_folder_paths(folder)]
    return (f"model file {name!r} not found: put it in one of {folders} (ComfyUI's models/unityvideo or "
            f"models/diffusion_models, or a path from extra_model_paths.yaml), then press R in ComfyUI to "
            f"refresh the list; see {MODELS_README} for the files and where they come from")


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
    raise ValueError(missing_model_message(name) or f"model {name!r} not found")


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


def progress(total: int, model=None) -> Callable:
    """A sampler callback ``(step, total_steps, rgb, modality)`` that drives ComfyUI's progress bar,
    with a latent preview of ``rgb`` (the latent after the step, ``[B, C, F, H, W]``) when a MODEL is
    given and the server has a preview method (``--preview-method``), as core's samplers send one."""
    bar = _utils.ProgressBar(total)
    previewer = None
    if model is not None:
        import latent_preview

        previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)

    def callback(step, total_steps, rgb, modality):
        image = None
        if previewer is not None and rgb is not None:
            image = previewer.decode_latent_to_preview_image("JPEG", rgb)
        bar.update_absolute(step, total_steps, image)

    return callback


def _server():
    """ComfyUI's running ``PromptServer`` (None outside the server, e.g. in-process tests)."""
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def server_running() -> bool:
    """Whether a ComfyUI server is there to send messages to the browser."""
    return _server() is not None


def progress_text(text: str, node) -> None:
    """Text on the node's progress bar (core's ``send_progress_text``); nothing without a server."""
    server = _server()
    if server is not None and node is not None:
        server.send_progress_text(text, str(node))


def send_to_browser(event: str, data: dict) -> None:
    """A JSON message to the browser over ComfyUI's websocket (``PromptServer.send_sync``), e.g.
    ``unityvideo.explore.segment``; nothing without a server."""
    server = _server()
    if server is not None:
        server.send_sync(event, data, getattr(server, "client_id", None))


def save_temp_animation(frames, name: str, fps: float = 8.0) -> dict:
    """Frames ``[F, H, W, 3]`` in [0, 1] as an animated WEBP in ComfyUI's temp folder (as core's
    preview nodes write previews there); returns ``{"filename", "subfolder", "type": "temp"}`` for
    the browser's ``/view``. An existing file of that name is replaced (temp files are ComfyUI's)."""
    import numpy as np
    import torch
    from PIL import Image

    folder = Path(_folder_paths.get_temp_directory()) / "unityvideo"
    folder.mkdir(parents=True, exist_ok=True)
    pixels = (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in pixels]
    filename = f"{name}.webp"
    images[0].save(folder / filename, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                   lossless=False, quality=80)
    return {"filename": filename, "subfolder": "unityvideo", "type": "temp"}


def should_interrupt() -> bool:
    """True when the user pressed Cancel in ComfyUI."""
    return bool(_mm.processing_interrupted())


def interrupted_error(err: Exception) -> Exception:
    """ComfyUI's own interruption exception, for our ``SamplingInterrupted``."""
    return _mm.InterruptProcessingException()


def unity_transformer(model, node: str = ""):
    """The :class:`unity_core.model.UnityVideoTransformer` inside a core MODEL, without loading it
    (for checks before any heavy work; :func:`transformer_of` loads it).

    Raises:
        ValueError: ``model`` is not a UnityVideo MODEL; for a plain Wan MODEL (core's Load Diffusion
            Model / ``UNETLoader`` on a Yume or UnityVideo file, which drops Yume's history patch
            embeddings and UnityVideo's modality stream) the message names UnityVideo Loader.
    """
    from unity_core.model import UnityVideoTransformer

    inner = getattr(getattr(model, "model", None), "diffusion_model", None)
    if isinstance(inner, UnityVideoTransformer):
        return inner
    message = (f"{node + ': ' if node else ''}expected the MODEL output of UnityVideo Loader, got "
               f"{type(model).__name__}"
               + (f" around {type(inner).__name__}" if inner is not None else ""))
    if inner is not None and type(inner).__module__.startswith("comfy.ldm.wan"):
        message += ("; this is core's plain Wan model (Load Diffusion Model / UNETLoader drops the extra layers of "
                    "a Yume-5B or UnityVideo checkpoint, e.g. Yume's history patch embeddings patch_embedding_2x "
                    "... _2x_f): load the checkpoint with UnityVideo Loader instead")
    else:
        message += "; other model families cannot run UnityVideo's tasks"
    raise ValueError(message)


def transformer_of(model):
    """The :class:`unity_core.model.UnityVideoTransformer` inside a core MODEL (a ``ModelPatcher``
    from UnityVideo Loader), after ComfyUI's memory manager has loaded it onto its device
    (``comfy.model_management.load_models_gpu``: other models are unloaded to make room, LoRA and
    other weight patches are applied, and ComfyUI may offload it again after the node).

    Raises:
        ValueError: ``model`` is not a UnityVideo MODEL (:func:`unity_transformer`).
    """
    inner = unity_transformer(model)
    _mm.load_models_gpu([model])
    return inner


def pipeline(model, codec, text_encoder, node: str, vae=None, clip=None, tiled_decode: bool = False,
             load: bool = True):
    """A :class:`unity_core.pipeline.UnityVideoPipeline` over a core MODEL, for the nodes that run a
    whole UnityVideo task in one call (estimation, exploration). Codec and text encoder: the
    loader's built-in ones (the embedded default), or core's ``vae`` (Wan2.2 VAE) and ``clip``
    (UMT5-XXL) through :mod:`nodes.adapters` (latents in the MODEL's ``latent_format``). The
    transformer is loaded by ComfyUI's memory manager (:func:`transformer_of`); a built-in codec
    follows it to its device, core's VAE and CLIP are placed by the memory manager.

    Args:
        tiled_decode: decode with core's tiled VAE decode (only with ``vae``).
        load: load the transformer now (False: the caller samples through core, which loads the
            MODEL itself before every sampling run, after the VAE and CLIP have run).

    Raises:
        ValueError: not exactly one of codec / vae, or of text_encoder / clip, connected;
            ``tiled_decode`` without ``vae``; a VAE whose latent channels differ from the MODEL's;
            ``model`` is not a UnityVideo MODEL. All checked before the model is loaded.
    """
    from unity_core.pipeline import UnityVideoPipeline

    from .adapters import ComfyClipTextEncoder, ComfyVaeCodec

    for ours, core, what in ((codec, vae, ("codec", "vae", "VAELoader with the Wan2.2 VAE")),
                             (text_encoder, clip, ("text_encoder", "clip", "CLIPLoader type wan with UMT5-XXL"))):
        if (ours is None) == (core is None):
            state = "both are" if ours is not None else "neither is"
            raise ValueError(f"{node} needs exactly one of '{what[0]}' and '{what[1]}' ({state} connected): connect "
                             f"'{what[0]}' from UnityVideo Loader with the '(embedded default)', or '{what[1]}' from "
                             f"{what[2]} for a 5B checkpoint (which has no built-in codec or text encoder)")
    if tiled_decode and vae is None:
        raise ValueError(f"{node}: tiled_decode is core's tiled VAE decode; connect 'vae' (VAELoader) or turn it off")
    channels = unity_transformer(model, node).config["in_channels"]
    if vae is not None and getattr(vae, "latent_channels", channels) != channels:
        raise ValueError(f"{node}: the VAE makes {vae.latent_channels}-channel latents but this MODEL takes {channels}; "
                         "connect the Wan2.2 VAE (wan2.2_vae.safetensors) for a 5B checkpoint, or 'codec' from "
                         "UnityVideo Loader for the embedded default")
    if vae is not None:
        codec = ComfyVaeCodec(vae, model.model.latent_format, tiled=tiled_decode)
    if clip is not None:
        text_encoder = ComfyClipTextEncoder(clip)
    transformer = transformer_of(model) if load else unity_transformer(model, node)
    if vae is None:
        codec.to(next(transformer.parameters()).device)
    return UnityVideoPipeline(transformer, codec, text_encoder, {"source": "ComfyUI MODEL"})
