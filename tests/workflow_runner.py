"""Run the shipped API workflows inside a real ComfyUI (``tests/comfy_env.py``), with ComfyUI's own
prompt validation and executor, and compare the default graphs with the pipeline the CLI runs.

:func:`run_workflows` is what ``tests/test_workflows.py`` checks; it returns plain figures (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable

from tests.comfy_env import run_in_comfy

_CHILD = r'''
import json, shutil, time, torch
import execution, asyncio, uuid
load_extras("nodes_custom_sampler", "nodes_model_advanced")
from unity_core.pipeline import UnityVideoPipeline

CFG = json.loads(CONFIG)
shutil.copy(CFG["video"], BASE / "input" / "carphone_pristine.mp4")
for folder, name in CFG["model_files"].items():  # empty stand-ins, so the 5B graphs' file lists validate
    (BASE / "models" / folder).mkdir(parents=True, exist_ok=True)
    (BASE / "models" / folder / name).write_bytes(b"")

res = {"validate_5b": {}, "runs": {}, "match": {}}
for path in CFG["five_b"]:
    prompt = json.loads(open(path).read())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
    res["validate_5b"][path.split("/")[-1]] = {"valid": bool(valid), "error": str(error)[:300] if not valid else None,
                                               "outputs": sorted(outputs)}

executor = None
runs = {}
for path in CFG["default"]:
    name = path.split("/")[-1][:-len("_api.json")]
    prompt = json.loads(open(path).read())
    for node in prompt.values():
        for key in ("steps",):
            if key in node["inputs"]:
                node["inputs"][key] = CFG["steps"]
        if node["class_type"] == "UnityVideoLoadVideo" and CFG["frames"] and not node["inputs"]["frame_load_cap"]:
            node["inputs"]["frame_load_cap"] = CFG["frames"]
    before = {p for p in (BASE / "output").rglob("*") if p.is_file()}
    start = time.time()
    run = run_prompt(prompt, executor)
    executor = run.executor
    saved = sorted(str(p.relative_to(BASE / "output")) for p in (BASE / "output").rglob("*") if p.is_file() and p not in before)
    res["runs"][name] = {"success": bool(run.success), "error": (run.error or {}).get("exception_message"),
                         "seconds": round(time.time() - start, 2), "saved": saved,
                         "savers": sum(n["class_type"] in ("UnityVideoSaveVideo", "UnityVideoSaveValues") for n in prompt.values())}
    runs[name] = run


def err(a, b):
    return float((a.float() - b.float()).abs().max())


pipe = UnityVideoPipeline.from_pretrained("default")
steps, seed = CFG["steps"], 42
if "estimate_depth" in runs and runs["estimate_depth"].success:
    r = runs["estimate_depth"]
    out = pipe.estimate(r.outputs("2")[0], "depth", steps=steps, seed=seed)  # the whole clip, in windows
    vis, values = r.outputs("6")
    res["match"]["estimate_depth"] = {"modality": err(vis, out.modality_frames),
                                      "modality_mean": float((vis - out.modality_frames).abs().mean()),
                                      "values_mean": float((values["values"] - out.values).abs().mean())}
if "control_pose" in runs and runs["control_pose"].success:
    r = runs["control_pose"]
    out = pipe.control(r.outputs("3")[0], "skeleton", CFG["prompt_car"], steps=steps, seed=seed)
    res["match"]["control_pose"] = {"rgb": err(r.outputs("8")[0], out.rgb), "control_cfg": pipe.defaults["control_cfg"]}
if "joint_depth" in runs and runs["joint_depth"].success:
    r = runs["joint_depth"]
    out = pipe.generate(CFG["prompt_room"], "depth", num_frames=17, height=64, width=64, steps=steps, seed=seed)
    res["match"]["joint_depth"] = {"rgb": err(r.outputs("7")[0], out.rgb), "modality": err(r.outputs("8")[0], out.modality_frames)}
emit(res)
'''


def run_workflows(default: Iterable[Path], five_b: Iterable[Path], video: Path, steps: int = 4,
                  frames: int = 0) -> Dict:
    """Validate the 5B API workflows and run the default ones (``steps`` overridden) in one ComfyUI
    process; compare estimate_depth / control_pose / joint_depth with ``UnityVideoPipeline``'s
    estimate / control / generate (what ``unityvideo estimate/control/generate`` call) at the same
    seed and steps. ``frames``: a frame_load_cap for the graphs' Load Video nodes that read the whole
    clip (0: all of it).

    Returns:
        ``{"validate_5b": {file: {valid, error, outputs}}, "runs": {name: {success, error, seconds,
        saved, savers}}, "match": {name: {stream: max abs difference of the frames}}}``.
    """
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_workflows import FIVE_B_FILES, PROMPT_CAR, PROMPT_ROOM

    config = {"default": [str(Path(p).resolve()) for p in default], "five_b": [str(Path(p).resolve()) for p in five_b],
              "video": str(Path(video).resolve()),
              "steps": steps, "frames": int(frames), "model_files": FIVE_B_FILES, "prompt_car": PROMPT_CAR, "prompt_room": PROMPT_ROOM}
    return run_in_comfy(f"CONFIG = {json.dumps(json.dumps(config))}\n" + _CHILD, timeout=1500)
