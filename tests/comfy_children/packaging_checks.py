"""Run by tests/test_packaging.py: the pack in ComfyUI without the optional extras
(:func:`without_extras`), and model folders added by an ``extra_model_paths.yaml``
(:func:`extra_model_paths`)."""

import importlib.util
import os
import shutil
import sys

import torch

import folder_paths
import nodes

from unity_core import comfy_client as cc


def without_extras(child, video, graph):
    """With the extras hidden (``hide_extras/sitecustomize.py`` on the child's ``PYTHONPATH``): each
    check under its name (``@record``). ``video``: the carphone clip's path; ``graph``: the default
    estimate_depth API graph (run at 1 step)."""
    BASE, record, error_of, call_node = child.BASE, child.record, child.error_of, child.call_node
    run_prompt, load_extras = child.run_prompt, child.load_extras
    shutil.copy(video, BASE / "input" / "carphone_pristine.mp4")
    load_extras("nodes_custom_sampler")  # the estimate graph's KSamplerSelect and BasicScheduler
    graph = cc.set_steps(graph, 1)

    @record("hidden")
    def _():
        return [m for m in ("mediapipe", "peft", "accelerate") if m in sys.modules]

    @record("registered")
    def _():
        return sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("UnityVideo"))

    @record("estimate")
    def _():
        run = run_prompt(graph)
        return {"success": run.success, "error": run.error}

    @record("preprocess")
    def _():
        return error_of(call_node, "UnityVideoPreprocess", frames=torch.rand(3, 32, 32, 3), modality="skeleton")

    @record("missing_checkpoint")
    def _():
        bad = dict(graph)
        bad["1"] = {"class_type": "UnityVideoLoader", "inputs": {"checkpoint": "unityvideo_5b_missing.safetensors",
                                                                "weight_dtype": "default"}}
        return error_of(run_prompt, bad)


def extra_model_paths(child, yaml, extra):
    """Read ``yaml`` (an ``extra_model_paths.yaml`` adding ``<extra>/uv_extra`` for unityvideo and
    ``<extra>/dm_extra`` for diffusion_models) with ComfyUI's own reader, put one empty checkpoint in
    each of the four folders and record under ``"listed"`` what the loader lists and resolves."""
    pack, COMFY, BASE, record = child.pack, child.COMFY, child.BASE, child.record
    # ComfyUI's own yaml reader (by file: another top-level `utils` module shadows ComfyUI's package here)
    spec = importlib.util.spec_from_file_location("comfy_extra_config", COMFY / "utils" / "extra_config.py")
    extra_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extra_config)
    load_extra_path_config = extra_config.load_extra_path_config
    host = pack.nodes.host
    folder_paths.folder_names_and_paths.pop("unityvideo", None)  # as at start-up, before the pack registers it
    load_extra_path_config(yaml)
    for folder, name in ((f"{extra}/uv_extra", "a.safetensors"), (f"{extra}/dm_extra", "b.safetensors"),
                         (str(BASE / "models" / "unityvideo"), "c.safetensors"),
                         (str(BASE / "models" / "diffusion_models"), "d.safetensors")):
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, name), "wb").close()

    @record("listed")
    def _():
        return {"choices": host.model_choices(),
                "paths": {n: str(host.model_path(n)) for n in ("a.safetensors", "b.safetensors", "c.safetensors",
                                                                 "d.safetensors")}}
