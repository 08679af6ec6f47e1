"""Run the shipped API workflows inside a real ComfyUI (``tests/comfy_env.py``), with ComfyUI's own
prompt validation and executor, and compare the default graphs with the pipeline the CLI runs.

:func:`run_workflows` is what ``tests/test_workflows.py`` checks; it returns plain figures (JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable

from tests.comfy_env import run_child


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
    return run_child("workflows", kwargs={"config": config}, timeout=1500)  # tests/comfy_children/workflows.py
