"""Write the example workflows in both ComfyUI formats from one description per job.

    python scripts/make_workflows.py        # rewrites workflows/*.json and workflows/5b/*.json

API format (``*_api.json``) is what ``/prompt`` and ``unityvideo queue`` take; UI format
(``*.json``) opens in the frontend. Widget order comes from each node's INPUT_TYPES, so the two
stay consistent with the node code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nodes import NODE_CLASS_MAPPINGS  # noqa: E402

# Core ComfyUI nodes used by the 5B workflows: (inputs as (name, type or "WIDGET")), outputs.
CORE_NODES = {
    "CLIPLoader": ([("clip_name", "WIDGET"), ("type", "WIDGET"), ("device", "WIDGET")], [("CLIP", "CLIP")]),
    "VAELoader": ([("vae_name", "WIDGET")], [("VAE", "VAE")]),
    "CLIPTextEncode": ([("text", "WIDGET"), ("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
VIDEO = "carphone_pristine.mp4"


def node_io(cls_name):
    """[(input name, type or WIDGET, has_control_after_generate)], [(output name, type)]."""
    if cls_name in CORE_NODES:
        ins, outs = CORE_NODES[cls_name]
        return [(n, t, False) for n, t in ins], outs
    cls = NODE_CLASS_MAPPINGS[cls_name]
    spec = cls.INPUT_TYPES()
    ins = []
    for section in ("required", "optional"):
        for name, (typ, *rest) in spec.get(section, {}).items():
            opts = rest[0] if rest else {}
            widget = isinstance(typ, list) or typ in WIDGET_TYPES
            ins.append((name, "WIDGET" if widget else typ, bool(opts.get("control_after_generate"))))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    return ins, list(zip(names, cls.RETURN_TYPES))


def to_api(graph):
    api = {}
    for nid, (cls_name, inputs) in graph.items():
        api[nid] = {"class_type": cls_name, "inputs": {
            k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()}}
    return api


def to_ui(graph):
    nodes, links = [], []
    ids = {nid: i + 1 for i, nid in enumerate(graph)}
    out_links = {}
    for nid, (cls_name, inputs) in graph.items():
        ins, outs = node_io(cls_name)
        for name, value in inputs.items():
            if isinstance(value, tuple):
                src, slot = value
                src_outs = node_io(graph[src][0])[1]
                link_id = len(links) + 1
                dst_slot = [n for n, t, _ in ins if t != "WIDGET"].index(name)
                links.append([link_id, ids[src], slot, ids[nid], dst_slot, src_outs[slot][1]])
                out_links.setdefault((src, slot), []).append(link_id)
    for col, (nid, (cls_name, inputs)) in enumerate(graph.items()):
        ins, outs = node_io(cls_name)
        ui_inputs, widgets = [], []
        for name, typ, control in ins:
            if typ == "WIDGET":
                if name in inputs:
                    widgets.append(inputs[name])
                    if control:
                        widgets.append("fixed")
                continue
            link = None
            if isinstance(inputs.get(name), tuple):
                src, slot = inputs[name]
                link = next(l[0] for l in links if l[1] == ids[src] and l[2] == slot and l[3] == ids[nid] and
                            l[4] == [n for n, t, _ in ins if t != "WIDGET"].index(name))
            ui_inputs.append({"name": name, "type": typ, "link": link})
        nodes.append({
            "id": ids[nid], "type": cls_name, "pos": [40 + 320 * (col % 5), 60 + 260 * (col // 5)], "size": [300, 200],
            "flags": {}, "order": col, "mode": 0, "inputs": ui_inputs,
            "outputs": [{"name": n, "type": t, "links": out_links.get((nid, i), []), "slot_index": i} for i, (n, t) in enumerate(outs)],
            "properties": {"Node name for S&R": cls_name}, "widgets_values": widgets,
        })
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def default_jobs():
    loader = ("UnityVideoLoader", {"checkpoint": "(embedded default)", "dtype": "fp32", "device": "auto"})
    video = ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 17, "width": 64, "height": 64, "sampling": "uniform", "stride": 1})
    # every widget the frontend shows, the optional control_cfg too, so that its API export matches ours
    sampler = dict(seed=42, steps=20, cfg=1.0, shift=1.0, scheduler="euler", control_cfg=1.0)
    jobs = {}
    jobs["joint_depth"] = {
        "1": loader,
        "2": ("UnityVideoTextEncode", {"model": ("1", 0), "text": "A first-person view of a room with a wooden floor, where a person is walking near a red box."}),
        "3": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": "depth"}),
        "4": ("UnityVideoTaskSelect", {"task": "text2all"}),
        "5": ("UnityVideoEmptyLatent", {"model": ("1", 0), "num_frames": 17, "width": 64, "height": 64, "batch_size": 1}),
        "6": ("UnityVideoSampler", {"model": ("1", 0), "task": ("4", 0), "modality": ("3", 0), "positive": ("2", 0),
                                    "rgb_latent": ("5", 0), **sampler}),
        "7": ("UnityVideoDecode", {"model": ("1", 0), "latent": ("6", 0)}),
        "8": ("UnityVideoDecode", {"model": ("1", 0), "latent": ("6", 1)}),
        "9": ("UnityVideoSaveVideo", {"frames": ("7", 0), "filename_prefix": "unityvideo/joint_rgb", "fps": 8.0, "format": "webp"}),
        "10": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": "unityvideo/joint_depth", "fps": 8.0, "format": "webp"}),
    }
    for modality, name in (("skeleton", "control_pose"), ("raft", "control_flow")):
        jobs[name] = {
            "1": loader, "2": video,
            "3": ("UnityVideoPreprocess", {"frames": ("2", 0), "modality": modality}),
            "4": ("UnityVideoEncode", {"model": ("1", 0), "frames": ("3", 0)}),
            "5": ("UnityVideoTextEncode", {"model": ("1", 0), "text": "A person talking on a phone in a car."}),
            "6": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": modality}),
            "7": ("UnityVideoTaskSelect", {"task": "flow2video"}),
            # control guidance 8: the embedded default's pipeline.json default (measured in its MODEL_CARD)
            "8": ("UnityVideoSampler", {"model": ("1", 0), "task": ("7", 0), "modality": ("6", 0), "positive": ("5", 0),
                                        "rgb_latent": ("4", 0), "modality_latent": ("4", 0),
                                        **{**sampler, "control_cfg": 8.0}}),
            "9": ("UnityVideoDecode", {"model": ("1", 0), "latent": ("8", 0)}),
            "10": ("UnityVideoSaveVideo", {"frames": ("9", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "webp"}),
            "11": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": f"unityvideo/{name}_control", "fps": 8.0, "format": "webp"}),
        }
    # depth: the modular chain; the other estimations use the one-shot node
    jobs["estimate_depth"] = {
        "1": loader, "2": video,
        "3": ("UnityVideoEncode", {"model": ("1", 0), "frames": ("2", 0)}),
        "4": ("UnityVideoTextEncode", {"model": ("1", 0), "text": ""}),
        "5": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": "depth"}),
        "6": ("UnityVideoTaskSelect", {"task": "video2flow"}),
        "7": ("UnityVideoSampler", {"model": ("1", 0), "task": ("6", 0), "modality": ("5", 0), "positive": ("4", 0),
                                    "rgb_latent": ("3", 0), **sampler}),
        "8": ("UnityVideoDecode", {"model": ("1", 0), "latent": ("7", 1)}),
        "9": ("UnityVideoModalityDecode", {"frames": ("8", 0), "modality": "depth"}),
        "10": ("UnityVideoSaveVideo", {"frames": ("8", 0), "filename_prefix": "unityvideo/estimate_depth", "fps": 8.0, "format": "webp"}),
        "11": ("UnityVideoSaveValues", {"values": ("9", 0), "filename_prefix": "unityvideo/estimate"}),
    }
    for modality in ("raft", "skeleton", "segmentation"):
        jobs[f"estimate_{'flow' if modality == 'raft' else modality}"] = {
            "1": loader, "2": video,
            "3": ("UnityVideoEstimate", {"model": ("1", 0), "frames": ("2", 0), "modality": modality, "seed": 42, "steps": 20}),
            "4": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": f"unityvideo/estimate_{modality}", "fps": 8.0, "format": "webp"}),
            "5": ("UnityVideoSaveValues", {"values": ("3", 1), "filename_prefix": "unityvideo/estimate"}),
        }
    # exploration: the clip's first frame is the start image; the keyboard widget fills `actions`
    jobs["explore_walk"] = {
        "1": loader,
        "2": ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 1, "width": 64, "height": 64, "sampling": "uniform", "stride": 1}),
        "3": ("UnityVideoExplore", {"model": ("1", 0), "image": ("2", 0), "actions": "W W+A",
                                    "prompt": "A first-person view of a room with a wooden floor.", "start": "last frame",
                                    "width": 64, "height": 64, "steps": 20, "seed": 42, "sentence_set": "v1",
                                    "continue_walk": False}),
        "4": ("UnityVideoSaveVideo", {"frames": ("3", 0), "filename_prefix": "unityvideo/explore_walk", "fps": 8.0, "format": "webp"}),
    }
    return jobs


def five_b_jobs():
    loaders = {
        "1": ("UnityVideoLoader", {"checkpoint": "unityvideo_wan22_ti2v_5b_step15000_ema.safetensors", "dtype": "bf16", "device": "auto"}),
        "2": ("CLIPLoader", {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}),
        "3": ("VAELoader", {"vae_name": "wan2.2_vae.safetensors"}),
    }
    video = ("UnityVideoLoadVideo", {"video": VIDEO, "num_frames": 33, "width": 256, "height": 256, "sampling": "uniform", "stride": 1})
    # every widget the frontend shows, the optional control_cfg too, so that its API export matches ours
    sampler = dict(seed=42, steps=20, cfg=1.0, shift=1.0, scheduler="euler", control_cfg=1.0)
    jobs = {}
    jobs["joint_depth_5b"] = {**loaders,
        "4": ("CLIPTextEncode", {"clip": ("2", 0), "text": "A woman walks through a sunny park."}),
        "5": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": "depth", "clip": ("2", 0)}),
        "6": ("UnityVideoTaskSelect", {"task": "text2all"}),
        "7": ("UnityVideoEmptyLatent", {"model": ("1", 0), "num_frames": 33, "width": 256, "height": 256, "batch_size": 1}),
        "8": ("UnityVideoSampler", {"model": ("1", 0), "task": ("6", 0), "modality": ("5", 0), "positive": ("4", 0), "rgb_latent": ("7", 0), **sampler}),
        "9": ("VAEDecode", {"samples": ("8", 0), "vae": ("3", 0)}),
        "10": ("VAEDecode", {"samples": ("8", 1), "vae": ("3", 0)}),
        "11": ("UnityVideoSaveVideo", {"frames": ("9", 0), "filename_prefix": "unityvideo/5b_joint_rgb", "fps": 8.0, "format": "mp4"}),
        "12": ("UnityVideoSaveVideo", {"frames": ("10", 0), "filename_prefix": "unityvideo/5b_joint_depth", "fps": 8.0, "format": "mp4"}),
    }
    for modality, name in (("depth", "estimate_depth_5b"), ("raft", "estimate_flow_5b"), ("skeleton", "estimate_skeleton_5b"),
                           ("segmentation", "estimate_segmentation_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("VAEEncode", {"pixels": ("4", 0), "vae": ("3", 0)}),
            "6": ("CLIPTextEncode", {"clip": ("2", 0), "text": ""}),
            "7": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": modality, "clip": ("2", 0)}),
            "8": ("UnityVideoTaskSelect", {"task": "video2flow"}),
            "9": ("UnityVideoSampler", {"model": ("1", 0), "task": ("8", 0), "modality": ("7", 0), "positive": ("6", 0), "rgb_latent": ("5", 0), **sampler}),
            "10": ("VAEDecode", {"samples": ("9", 1), "vae": ("3", 0)}),
            "11": ("UnityVideoModalityDecode", {"frames": ("10", 0), "modality": modality}),
            "12": ("UnityVideoSaveVideo", {"frames": ("10", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "mp4"}),
            "13": ("UnityVideoSaveValues", {"values": ("11", 0), "filename_prefix": f"unityvideo/{name}"}),
        }
    for modality, name in (("skeleton", "control_pose_5b"), ("raft", "control_flow_5b")):
        jobs[name] = {**loaders, "4": video,
            "5": ("UnityVideoPreprocess", {"frames": ("4", 0), "modality": modality}),
            "6": ("VAEEncode", {"pixels": ("5", 0), "vae": ("3", 0)}),
            "7": ("CLIPTextEncode", {"clip": ("2", 0), "text": "A person talking on a phone in a car."}),
            "8": ("UnityVideoModalitySwitch", {"model": ("1", 0), "modality": modality, "clip": ("2", 0)}),
            "9": ("UnityVideoTaskSelect", {"task": "flow2video"}),
            "10": ("UnityVideoSampler", {"model": ("1", 0), "task": ("9", 0), "modality": ("8", 0), "positive": ("7", 0),
                                         "rgb_latent": ("6", 0), "modality_latent": ("6", 0), **sampler}),
            "11": ("VAEDecode", {"samples": ("10", 0), "vae": ("3", 0)}),
            "12": ("UnityVideoSaveVideo", {"frames": ("11", 0), "filename_prefix": f"unityvideo/{name}", "fps": 8.0, "format": "mp4"}),
        }
    return jobs


def main() -> None:
    for folder, jobs in ((ROOT / "workflows", default_jobs()), (ROOT / "workflows" / "5b", five_b_jobs())):
        folder.mkdir(parents=True, exist_ok=True)
        for name, graph in jobs.items():
            (folder / f"{name}_api.json").write_text(json.dumps(to_api(graph), indent=1) + "\n")
            (folder / f"{name}.json").write_text(json.dumps(to_ui(graph), indent=1) + "\n")
            print(f"wrote {folder.name}/{name}.json and {name}_api.json")


if __name__ == "__main__":
    main()
