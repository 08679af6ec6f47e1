"""Synthworld rendering speed: clips per second at 64x64x17 and 128x128x33 on this machine.

    python bench/synthworld.py [--clips 5]

Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.data.synthworld import render_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=5)
    args = ap.parse_args()
    result = {"threads": torch.get_num_threads(), "clips": args.clips}
    for frames, size in ((17, 64), (33, 128)):
        render_clip(0, frames, size, size)  # warm-up
        start = time.perf_counter()
        for seed in range(1, args.clips + 1):
            render_clip(seed, frames, size, size)
        rate = args.clips / (time.perf_counter() - start)
        result[f"clips_per_s_{size}x{size}x{frames}"] = round(rate, 3)
        print(f"{size}x{size}x{frames}: {rate:.2f} clips/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
