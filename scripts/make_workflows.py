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

    def sockets(cls_name, inputs=None):
        """Input slots in the frontend's order: the sockets, then widgets fed by a link (the
        frontend gives those a slot too, e.g. Save Video's fps from Load Video)."""
        linked = [n for n, t, _, _ in specs[cls_name]["inputs"]
                  if t == "WIDGET" and isinstance((inputs or {}).get(n), tuple)]
        return [n for n, t, _, _ in specs[cls_name]["inputs"] if t != "WIDGET"] + linked

    for nid, (cls_name, inputs) in graph.items():
        for name, value in inputs.items():
            if isinstance(value, tuple):
                src, slot = value
                link_id = len(links) + 1
                links.append([link_id, ids[src], slot, ids[nid], sockets(cls_name, inputs).index(name),
                              specs[graph[src][0]]["outputs"][slot][1]])
                out_links.setdefault((src, slot), []).append(link_id)
    for col, (nid, (cls_name, inputs)) in enumerate(graph.items()):
        ui_inputs, widgets, linked_widgets = [], [], []

        def link_of(name):
            src, slot = inputs[name]
            return next(li[0] for li in links if li[1] == ids[src] and li[2] == slot and li[3] == ids[nid]
                        and li[4] == sockets(cls_name, inputs).index(name))

        for name, typ, control, default in specs[cls_name]["inputs"]:
            if typ == "WIDGET":
                if name in inputs:
                    linked = isinstance(inputs[name], tuple)
                    widgets.append(default if linked else inputs[name])
                    if control:
                        widgets.append("fixed")
                    if linked:
                        src, slot = inputs[name]
                        linked_widgets.append({"name": name, "type": specs[graph[src][0]]["outputs"][slot][1],
                                               "widget": {"name": name}, "link": link_of(name)})
                continue
            link = link_of(name) if isinstance(inputs.get(name), tuple) else None
            ui_inputs.append({"name": name, "type": typ, "link": link})
        ui_inputs += linked_widgets
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


def load_video(**options):
    """UnityVideo Load Video: the whole clip at its own size (every frame, no size cap) unless
    ``options`` set a range, stride, frame cap or size cap."""
    inputs = {"video": VIDEO, "skip_first_frames": 0, "end_frame": 0, "select_every_nth": 1, "frame_load_cap": 0,
              "max_side": 0}
    inputs.update(options)
    return ("UnityVideoLoadVideo", inputs)


def windowed(model, positive, negative, frames, task, modality, sampler, sigmas, control_cfg=1.0, window=17,
             short_side=64, **coders):
    """UnityVideo Windowed Sampling over a whole clip with core's SAMPLER and SIGMAS (KSamplerSelect,
    BasicScheduler): Euler / simple / cfg 1, as the release samples."""
    return ("UnityVideoWindowedSampling", {"model": model, "positive": positive, "negative": negative, "frames": frames,
                                           "task": task, "modality": modality, "sampler": sampler, "sigmas": sigmas,
                                           "noise_seed": 42, "cfg": 1.0, "control_cfg": control_cfg, "window": window,
                                           "short_side": short_side, **coders})


def default_jobs():
    loader = ("UnityVideoLoader", {"checkpoint": "(embedded default)", "weight_dtype": "default"})
    model, codec, text = ("1", 0), ("1", 1), ("1", 2)
    video = load_video()
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
        # the whole clip at its size and fps: its control extracted, the RGB generated window by window;
        # control guidance 8: the embedded default's pipeline.json default (measured in its MODEL_CARD)
        jobs[name] = {
            "1": loader, "2": video,
            "3": ("UnityVideoPreprocess", {"frames": ("2", 0), "modality": modality}),
            "4": ("UnityVideoTextEncode", {"text_encoder": text, "text": PROMPT_CAR}),
            "5": ("UnityVideoTextEncode", {"text_encoder": text, "text": ""}),
            "6": ("KSamplerSelect", {"sampler_name": "euler"}),
            "7": ("BasicScheduler", {"model": model, "scheduler": "simple", "steps": 20, "denoise": 1.0}),
            "8": windowed(model, ("4", 0), ("5", 0), ("3", 0), "flow2video", modality, ("6", 0), ("7", 0),
                          control_cfg=8.0, codec=codec, text_encoder=text),
            "9": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": f"unityvideo/{name}", "fps": ("2", 1),
                                          "format": "mp4"}),
            "10": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": f"unityvideo/{name}_control",
                                           "fps": ("2", 1), "format": "mp4"}),
        }
    for modality in ("depth", "raft", "skeleton", "segmentation"):
        name = f"estimate_{'flow' if modality == 'raft' else modality}"
        # the whole clip at its size and fps, estimated window by window (UnityVideo Windowed Sampling)
        jobs[name] = {
            "1": loader, "2": video,
            "3": ("UnityVideoTextEncode", {"text_encoder": text, "text": ""}),
            "4": ("KSamplerSelect", {"sampler_name": "euler"}),
            "5": ("BasicScheduler", {"model": model, "scheduler": "simple", "steps": 20, "denoise": 1.0}),
            "6": windowed(model, ("3", 0), ("3", 0), ("2", 0), "video2flow", modality, ("4", 0), ("5", 0), codec=codec,
                          text_encoder=text),
            "7": ("UnityVideoSaveVideo", {"frames": ("6", 0), "filename_prefix": f"unityvideo/{name}", "fps": ("2", 1),
                                          "format": "mp4"}),
            "8": ("UnityVideoSaveValues", {"values": ("6", 1), "filename_prefix": "unityvideo/estimate"}),
        }
    # exploration: the clip's first frame is the start image; the keyboard widget fills `actions`
    jobs["explore_walk"] = {
        "1": loader,
        "2": load_video(frame_load_cap=1),
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
    video = load_video()
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
    # the whole clip at its size and fps, in the 5B's native 33-frame windows at a 256-pixel short side
    for modality, name in (("depth", "estimate_depth_5b"), ("raft", "estimate_flow_5b"), ("skeleton", "estimate_skeleton_5b"),
                           ("segmentation", "estimate_segmentation_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("CLIPTextEncode", {"clip": clip, "text": ""}),
            "6": ("KSamplerSelect", {"sampler_name": "euler"}),
            "7": ("BasicScheduler", {"model": model, "scheduler": "simple", "steps": 20, "denoise": 1.0}),
            "8": windowed(model, ("5", 0), ("5", 0), ("4", 0), "video2flow", modality, ("6", 0), ("7", 0), window=33,
                          short_side=256, vae=vae, clip=clip),
            "9": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": f"unityvideo/{name}", "fps": ("4", 1), "format": "mp4"}),
            "10": ("UnityVideoSaveValues", {"values": ("8", 1), "filename_prefix": f"unityvideo/{name}"}),
        }
    for modality, name in (("skeleton", "control_pose_5b"), ("raft", "control_flow_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("UnityVideoPreprocess", {"frames": ("4", 0), "modality": modality}),
            "6": ("CLIPTextEncode", {"clip": clip, "text": PROMPT_CAR}),
            "7": ("CLIPTextEncode", {"clip": clip, "text": ""}),
            "8": ("KSamplerSelect", {"sampler_name": "euler"}),
            "9": ("BasicScheduler", {"model": model, "scheduler": "simple", "steps": 20, "denoise": 1.0}),
            "10": windowed(model, ("6", 0), ("7", 0), ("5", 0), "flow2video", modality, ("8", 0), ("9", 0), window=33,
                           short_side=256, vae=vae, clip=clip),
            "11": ("UnityVideoSaveVideo", {"frames": ("10", 0), "filename_prefix": f"unityvideo/{name}", "fps": ("4", 1), "format": "mp4"}),
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
        "4": load_video(frame_load_cap=1),
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
