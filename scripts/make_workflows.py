"""Write the example workflows in both ComfyUI formats from one description per job.

    COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py

writes each job twice: the API format (``workflows/{default,5b,yume}/<job>_api.json``), what
``/prompt``, ``unityvideo queue`` and the tests take, and the UI format, flat in
``example_workflows/<name>.json`` (``estimate_depth``, ``5b_estimate_depth``, ``yume_explore``), what
ComfyUI's template browser lists and the frontend opens. Thumbnails beside them (``<name>.jpg``):
``scripts/make_thumbnails.py``. Sockets, widget order and widget defaults come from the node
classes as a real ComfyUI reports them (``INPUT_TYPES`` of core's nodes and of this pack, loaded as
a custom node in a ComfyUI process, ``tests/comfy_env.py``), so the files follow the node code.

The graphs use core nodes wherever core has one: ``KSampler`` / ``SamplerCustomAdvanced`` (with
``RandomNoise``, ``KSamplerSelect``, ``BasicScheduler``) sample the UnityVideo MODEL; for the 5B,
``CLIPLoader`` (type wan, UMT5-XXL), ``CLIPTextEncode``, ``VAELoader`` (Wan2.2 VAE), ``VAEEncode`` and
``VAEDecode``. Ours: the loader, the task and split nodes, the control guider, the default's codec
and text nodes, modality pre/post-processing, video files and the explorer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIDEO = "carphone_pristine.mp4"
PROMPT_ROOM = "A first-person view of a room with a wooden floor, where a person is walking near a red box."
PROMPT_CAR = "A person talking on a phone in a car."

# In the ComfyUI child: for each class, its inputs [(name, "WIDGET" or socket type, control_after_generate,
# default)] in the order the frontend lays them out, and its outputs [(name, type)].
_SPEC_CODE = r'''
import nodes
load_extras("nodes_custom_sampler", "nodes_model_advanced")
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
specs = {}
for name in NAMES:
    cls = nodes.NODE_CLASS_MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    ins = []
    for section in ("required", "optional"):
        for key, entry in spec.get(section, {}).items():
            typ, opts = entry[0], (entry[1] if len(entry) > 1 else {})
            widget = isinstance(typ, list) or typ in WIDGETS
            default = opts.get("default", typ[0] if isinstance(typ, list) and typ else None)
            ins.append([key, "WIDGET" if widget else typ, bool(opts.get("control_after_generate")), default])
    names = list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)
    specs[name] = {"inputs": ins, "outputs": [[n, t] for n, t in zip(names, cls.RETURN_TYPES)]}
emit(specs)
'''


def fetch_specs(class_names) -> dict:
    """Node specs from a ComfyUI process with the pack loaded (needs ``COMFYUI_PATH``)."""
    from tests.comfy_env import run_in_comfy

    return run_in_comfy(f"NAMES = {sorted(class_names)!r}\n" + _SPEC_CODE)


def complete(graph, specs):
    """Fill every widget a job leaves out with the node's default (what the frontend would send)."""
    full = {}
    for nid, (cls_name, inputs) in graph.items():
        inputs = dict(inputs)
        for name, kind, _, default in specs[cls_name]["inputs"]:
            if kind == "WIDGET" and name not in inputs and default is not None:
                inputs[name] = default
        full[nid] = (cls_name, inputs)
    return full


def to_api(graph):
    api = {}
    for nid, (cls_name, inputs) in graph.items():
        api[nid] = {"class_type": cls_name, "inputs": {
            k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()}}
    return api


def to_ui(graph, specs):
    nodes, links = [], []
    ids = {nid: i + 1 for i, nid in enumerate(graph)}
    out_links = {}

    def sockets(cls_name):
        return [n for n, t, _, _ in specs[cls_name]["inputs"] if t != "WIDGET"]

    for nid, (cls_name, inputs) in graph.items():
        for name, value in inputs.items():
            if isinstance(value, tuple):
                src, slot = value
                link_id = len(links) + 1
                links.append([link_id, ids[src], slot, ids[nid], sockets(cls_name).index(name),
                              specs[graph[src][0]]["outputs"][slot][1]])
                out_links.setdefault((src, slot), []).append(link_id)
    for col, (nid, (cls_name, inputs)) in enumerate(graph.items()):
        ui_inputs, widgets = [], []
        for name, typ, control, _ in specs[cls_name]["inputs"]:
            if typ == "WIDGET":
                if name in inputs:
                    widgets.append(inputs[name])
                    if control:
                        widgets.append("fixed")
                continue
            link = None
            if isinstance(inputs.get(name), tuple):
                src, slot = inputs[name]
                link = next(li[0] for li in links if li[1] == ids[src] and li[2] == slot and li[3] == ids[nid]
                            and li[4] == sockets(cls_name).index(name))
            ui_inputs.append({"name": name, "type": typ, "link": link})
        nodes.append({
            "id": ids[nid], "type": cls_name, "pos": [40 + 360 * (col % 5), 60 + 560 * (col // 5)], "size": [320, 200],
            "flags": {}, "order": col, "mode": 0, "inputs": ui_inputs,
            "outputs": [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i}
                        for i, (n, t) in enumerate(specs[cls_name]["outputs"])],
            "properties": {"Node name for S&R": cls_name}, "widgets_values": widgets,
        })
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def ksampler(model, positive, negative, latent, seed=42, steps=20):
    """Core KSampler as the release samples: Euler, ComfyUI's simple schedule (= linspace for 20
    steps), cfg 1."""
    return ("KSampler", {"model": model, "seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
                         "scheduler": "simple", "positive": positive, "negative": negative, "latent_image": latent,
                         "denoise": 1.0})


def default_jobs():
    loader = ("UnityVideoLoader", {"checkpoint": "(embedded default)", "weight_dtype": "default"})
    model, codec, text = ("1", 0), ("1", 1), ("1", 2)
    video = ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 17, "width": 64, "height": 64,
                                     "sampling": "uniform", "stride": 1})
    jobs = {}
    jobs["joint_depth"] = {
        "1": loader,
        "2": ("UnityVideoTextEncode", {"text_encoder": text, "text": PROMPT_ROOM}),
        "3": ("UnityVideoTextEncode", {"text_encoder": text, "text": ""}),
        "4": ("UnityVideoTask", {"positive": ("2", 0), "negative": ("3", 0), "task": "text2all", "modality": "depth",
                                 "text_encoder": text, "codec": codec, "width": 64, "height": 64, "length": 17,
                                 "batch_size": 1}),
        "5": ksampler(model, ("4", 0), ("4", 1), ("4", 2)),
        "6": ("UnityVideoSplit", {"samples": ("5", 0)}),
        "7": ("UnityVideoDecode", {"codec": codec, "latent": ("6", 0)}),
        "8": ("UnityVideoDecode", {"codec": codec, "latent": ("6", 1)}),
        "9": ("UnityVideoSaveVideo", {"frames": ("7", 0), "filename_prefix": "unityvideo/joint_rgb", "fps": 8.0, "format": "webp"}),
        "10": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": "unityvideo/joint_depth", "fps": 8.0, "format": "webp"}),
    }
    for modality, name in (("skeleton", "control_pose"), ("raft", "control_flow")):
        jobs[name] = {
            "1": loader, "2": video,
            "3": ("UnityVideoPreprocess", {"frames": ("2", 0), "modality": modality}),
            "4": ("UnityVideoEncode", {"codec": codec, "frames": ("3", 0)}),
            "5": ("UnityVideoTextEncode", {"text_encoder": text, "text": PROMPT_CAR}),
            "6": ("UnityVideoTextEncode", {"text_encoder": text, "text": ""}),
            "7": ("UnityVideoTask", {"positive": ("5", 0), "negative": ("6", 0), "task": "flow2video", "modality": modality,
                                     "text_encoder": text, "modality_latent": ("4", 0)}),
            # control guidance 8: the embedded default's pipeline.json default (measured in its MODEL_CARD)
            "8": ("UnityVideoControlGuider", {"model": model, "positive": ("7", 0), "negative": ("7", 1), "cfg": 1.0,
                                              "control_cfg": 8.0}),
            "9": ("RandomNoise", {"noise_seed": 42}),
            "10": ("KSamplerSelect", {"sampler_name": "euler"}),
            "11": ("BasicScheduler", {"model": model, "scheduler": "simple", "steps": 20, "denoise": 1.0}),
            "12": ("SamplerCustomAdvanced", {"noise": ("9", 0), "guider": ("8", 0), "sampler": ("10", 0),
                                             "sigmas": ("11", 0), "latent_image": ("7", 2)}),
            "13": ("UnityVideoSplit", {"samples": ("12", 0)}),
            "14": ("UnityVideoDecode", {"codec": codec, "latent": ("13", 0)}),
            "15": ("UnityVideoSaveVideo", {"frames": ("14", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "webp"}),
            "16": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": f"unityvideo/{name}_control", "fps": 8.0, "format": "webp"}),
        }
    for modality in ("depth", "raft", "skeleton", "segmentation"):
        name = f"estimate_{'flow' if modality == 'raft' else modality}"
        jobs[name] = {
            "1": loader, "2": video,
            "3": ("UnityVideoEncode", {"codec": codec, "frames": ("2", 0)}),
            "4": ("UnityVideoTextEncode", {"text_encoder": text, "text": ""}),
            "5": ("UnityVideoTask", {"positive": ("4", 0), "negative": ("4", 0), "task": "video2flow", "modality": modality,
                                     "text_encoder": text, "rgb_latent": ("3", 0)}),
            "6": ksampler(model, ("5", 0), ("5", 1), ("5", 2)),
            "7": ("UnityVideoSplit", {"samples": ("6", 0)}),
            "8": ("UnityVideoDecode", {"codec": codec, "latent": ("7", 1)}),
            "9": ("UnityVideoModalityDecode", {"frames": ("8", 0), "modality": modality}),
            "10": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "webp"}),
            "11": ("UnityVideoSaveValues", {"values": ("9", 0), "filename_prefix": "unityvideo/estimate"}),
        }
    # exploration: the clip's first frame is the start image; the keyboard widget fills `actions`
    jobs["explore_walk"] = {
        "1": loader,
        "2": ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 1, "width": 64, "height": 64, "sampling": "uniform", "stride": 1}),
        "3": ("UnityVideoExplore", {"model": model, "codec": codec, "text_encoder": text, "image": ("2", 0),
                                    "actions": "W W+A", "prompt": "A first-person view of a room with a wooden floor.",
                                    "start": "last frame", "width": 64, "height": 64, "steps": 20, "seed": 42,
                                    "sentence_set": "v1", "continue_walk": False, "tiled_decode": False,
                                    "history_mode": "all"}),
        "4": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": "unityvideo/explore_walk", "fps": 8.0, "format": "webp"}),
    }
    return jobs


#: model files the 5B graphs name (the README's download list); the Yume-5B graph's checkpoint is a
#: placeholder name for the release's file (stdstu12/YUME), put in ComfyUI's diffusion_models folder
FIVE_B_FILES = {"unityvideo": "unityvideo_wan22_ti2v_5b_step15000_ema.safetensors",
                "text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "vae": "wan2.2_vae.safetensors",
                "diffusion_models": "yume_5b.safetensors"}


def five_b_jobs():
    loaders = {
        "1": ("UnityVideoLoader", {"checkpoint": FIVE_B_FILES["unityvideo"], "weight_dtype": "default"}),
        "2": ("CLIPLoader", {"clip_name": FIVE_B_FILES["text_encoders"], "type": "wan", "device": "default"}),
        "3": ("VAELoader", {"vae_name": FIVE_B_FILES["vae"]}),
    }
    model, clip, vae = ("1", 0), ("2", 0), ("3", 0)
    video = ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 33, "width": 256, "height": 256, "sampling": "uniform", "stride": 1})
    jobs = {}
    jobs["joint_depth_5b"] = {**loaders,
        "4": ("CLIPTextEncode", {"clip": clip, "text": "A woman walks through a sunny park."}),
        "5": ("CLIPTextEncode", {"clip": clip, "text": ""}),
        "6": ("UnityVideoTask", {"positive": ("4", 0), "negative": ("5", 0), "task": "text2all", "modality": "depth",
                                 "clip": clip, "width": 256, "height": 256, "length": 33, "batch_size": 1}),
        "7": ksampler(model, ("6", 0), ("6", 1), ("6", 2)),
        "8": ("UnityVideoSplit", {"samples": ("7", 0)}),
        "9": ("VAEDecode", {"samples": ("8", 0), "vae": vae}),
        "10": ("VAEDecode", {"samples": ("8", 1), "vae": vae}),
        "11": ("UnityVideoSaveVideo", {"frames": ("9", 0), "filename_prefix": "unityvideo/5b_joint_rgb", "fps": 8.0, "format": "mp4"}),
        "12": ("UnityVideoSaveVideo", {"frames": ("10", 0), "filename_prefix": "unityvideo/5b_joint_depth", "fps": 8.0, "format": "mp4"}),
    }
    for modality, name in (("depth", "estimate_depth_5b"), ("raft", "estimate_flow_5b"), ("skeleton", "estimate_skeleton_5b"),
                           ("segmentation", "estimate_segmentation_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("VAEEncode", {"pixels": ("4", 0), "vae": vae}),
            "6": ("CLIPTextEncode", {"clip": clip, "text": ""}),
            "7": ("UnityVideoTask", {"positive": ("6", 0), "negative": ("6", 0), "task": "video2flow", "modality": modality,
                                     "clip": clip, "rgb_latent": ("5", 0)}),
            "8": ksampler(model, ("7", 0), ("7", 1), ("7", 2)),
            "9": ("UnityVideoSplit", {"samples": ("8", 0)}),
            "10": ("VAEDecode", {"samples": ("9", 1), "vae": vae}),
            "11": ("UnityVideoModalityDecode", {"frames": ("10", 0), "modality": modality}),
            "12": ("UnityVideoSaveVideo", {"frames": ("10", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "mp4"}),
            "13": ("UnityVideoSaveValues", {"values": ("11", 0), "filename_prefix": f"unityvideo/{name}"}),
        }
    for modality, name in (("skeleton", "control_pose_5b"), ("raft", "control_flow_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("UnityVideoPreprocess", {"frames": ("4", 0), "modality": modality}),
            "6": ("VAEEncode", {"pixels": ("5", 0), "vae": vae}),
            "7": ("CLIPTextEncode", {"clip": clip, "text": PROMPT_CAR}),
            "8": ("CLIPTextEncode", {"clip": clip, "text": ""}),
            "9": ("UnityVideoTask", {"positive": ("7", 0), "negative": ("8", 0), "task": "flow2video", "modality": modality,
                                     "clip": clip, "modality_latent": ("6", 0)}),
            "10": ksampler(model, ("9", 0), ("9", 1), ("9", 2)),
            "11": ("UnityVideoSplit", {"samples": ("10", 0)}),
            "12": ("VAEDecode", {"samples": ("11", 0), "vae": vae}),
            "13": ("UnityVideoSaveVideo", {"frames": ("12", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "mp4"}),
        }
    return jobs


def yume_jobs():
    """Yume-5B (Yume 1.5) exploration: our loader (core's Load Diffusion Model drops Yume's history
    layers), core's UMT5-XXL and Wan2.2 VAE, the clip's first frame as the start image at the
    release's 544x960, and the model's own sampler settings (steps 0, sentence set "model default":
    4 steps, v1_5); 32 new frames per action at Yume's 16 fps, decoded with core's tiled decode."""
    return {"explore_yume": {
        "1": ("UnityVideoLoader", {"checkpoint": FIVE_B_FILES["diffusion_models"], "weight_dtype": "default"}),
        "2": ("CLIPLoader", {"clip_name": FIVE_B_FILES["text_encoders"], "type": "wan", "device": "default"}),
        "3": ("VAELoader", {"vae_name": FIVE_B_FILES["vae"]}),
        "4": ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 1, "width": 960, "height": 544, "sampling": "uniform",
                                      "stride": 1}),
        "5": ("UnityVideoExplore", {"model": ("1", 0), "clip": ("2", 0), "vae": ("3", 0), "image": ("4", 0),
                                    "actions": "W W+A", "prompt": PROMPT_CAR, "start": "last frame", "width": 960,
                                    "height": 544, "steps": 0, "seed": 42, "sentence_set": "model default",
                                    "continue_walk": False, "tiled_decode": True, "history_mode": "all"}),
        "6": ("UnityVideoSaveVideo", {"frames": ("5", 0), "filename_prefix": "unityvideo/explore_yume", "fps": 16.0,
                                      "format": "mp4"}),
    }}


#: API-format graphs (``/prompt``, ``unityvideo queue``, the tests): one folder per model family
API_DIR = ROOT / "workflows"
#: UI-format graphs, flat: the folder ComfyUI's template browser lists (``GET /api/workflow_templates``
#: reads ``<pack>/example_workflows/*.json``; also ``workflows/*.json``, so no UI or API file sits there)
UI_DIR = ROOT / "example_workflows"


def ui_name(family: str, name: str) -> str:
    """The flat template name of a job: ``estimate_depth``, ``5b_estimate_depth`` (job
    ``estimate_depth_5b``), ``yume_explore`` (job ``explore_yume``)."""
    if family == "default":
        return name
    return f"{family}_{name.replace(f'_{family}', '')}"


def job_sets():
    """``[(family, {job name: graph})]``: the default model's, the 5B's and Yume-5B's jobs."""
    return [("default", default_jobs()), ("5b", five_b_jobs()), ("yume", yume_jobs())]


def main() -> None:
    sets = job_sets()
    specs = fetch_specs({cls for _, jobs in sets for graph in jobs.values() for cls, _ in graph.values()})
    UI_DIR.mkdir(parents=True, exist_ok=True)
    for family, jobs in sets:
        folder = API_DIR / family
        folder.mkdir(parents=True, exist_ok=True)
        for name, graph in jobs.items():
            graph = complete(graph, specs)
            (folder / f"{name}_api.json").write_text(json.dumps(to_api(graph), indent=1) + "\n")
            ui = UI_DIR / f"{ui_name(family, name)}.json"
            ui.write_text(json.dumps(to_ui(graph, specs), indent=1) + "\n")
            print(f"wrote {folder.relative_to(ROOT)}/{name}_api.json and {ui.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
