"""Run by tests/workflow_runner.py: the shipped API workflows through ComfyUI's executor."""

import asyncio
import json
import shutil
import time
import uuid

import execution

from unity_core.pipeline import UnityVideoPipeline


def main(child, config):
    """Validate the 5B graphs and run the default ones; emit what :func:`tests.workflow_runner.run_workflows`
    returns. ``config``: the dict ``run_workflows`` builds (file lists, video, steps, frames, prompts)."""
    BASE, emit, run_prompt, load_extras = child.BASE, child.emit, child.run_prompt, child.load_extras
    load_extras("nodes_custom_sampler", "nodes_model_advanced")

    CFG = config
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

