"""How far the latent codec alone limits each estimation metric (the "codec floor").

Ground-truth modality values of held-out synthworld clips are drawn as UnityVideo visualisations,
passed through the codec (encode, decode) and turned back into values, then scored as
``bench/eval_default.py`` scores the model. A model that predicted the latent of the true
visualisation exactly would score this, so no model on this codec can do better.

    python bench/codec_floor.py [--clips 8] [--checkpoint default]

Prints one JSON object last: per metric the codec round trip beside the constant-per-clip
baseline, and the ``*_x_better`` ratio eval_default uses (baseline error over codec error).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.eval_default import (  # noqa: E402
    HELD_OUT, add_scores, add_x_better, mean_rows, score_depth, score_flow, score_segmentation, score_skeleton,
)
from unity_core.data.synthworld import held_actions, modality_values, render_clip  # noqa: E402
from unity_core.modalities import decode, encode  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402


@torch.no_grad()
def round_trip(pipe: UnityVideoPipeline, frames: torch.Tensor) -> torch.Tensor:
    """Visualisation frames ``[F, H, W, 3]`` in [0, 1] -> the same after codec encode + decode."""
    video = pipe.prepare_frames(frames)
    return pipe.decode_latent(pipe.encode_frames(video))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--checkpoint", default="default")
    args = ap.parse_args()
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    rows: Dict[str, List[float]] = defaultdict(list)
    start = time.time()
    for i in range(args.clips):
        clip = render_clip(HELD_OUT + i, 17, 64, 64, actions=held_actions(HELD_OUT + i, 17))
        size = clip.rgb.shape[1:3]

        def back(modality: str):
            return decode(modality, round_trip(pipe, encode(modality, modality_values(clip, modality), size=size)))

        add_scores(rows, score_depth(back("depth"), clip), score_flow(back("raft"), clip),
                   score_segmentation(back("segmentation"), clip), score_skeleton(back("skeleton"), clip),
                   {"flow_speed_p95": float(clip.flow[clip.flow_valid].norm(dim=-1).quantile(0.95))})
    result = mean_rows(rows)
    add_x_better(result)
    result.update(clips=args.clips, checkpoint=args.checkpoint, seconds=round(time.time() - start, 1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
