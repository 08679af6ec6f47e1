"""World exploration bench (Yume on the shared core): instruction following, drift and time per
segment for a pipeline walking through held-out synthworld starts.

1. Instruction following: each start image (a synthworld scene, seeds from 200000, never used
   for training) is walked with a random action script (one action per segment); the
   generated video is scored by :mod:`unity_core.metrics.camera_motion` (per action and overall). The
   same scorer on the ground-truth synthworld clip of the same script gives the ceiling, and on
   that clip passed through the pipeline's codec (encode, decode) the codec's ceiling: no
   transformer on this codec can show more motion than its decoder draws.
2. Drift over the walk: frame-to-frame consistency (colour-histogram correlation) in the first
   two and the last two segments, the first-vs-last segment similarity and the sharpness ratio
   last / first, beside the same figures on the ground-truth clips.
3. Latent action following (independent of the codec's decoder): from the history of a
   held-out walk (13 ground-truth frames), the next segment is generated under each of the nine
   single-key actions, and each generated latent frame is matched to the nearest of the nine
   ground-truth continuations rendered from the same state (mean squared error of normalised
   latents). The share matched to its own action is the accuracy; chance is 1/9.
4. Time per segment as the walk grows: compressed history (the sequence stops growing once the
   schedule is full) against uncompressed history (every past latent at full resolution).

    python bench/explore.py [--checkpoint default|random-small|random-tiny|random-yume-tiny|PATH]
                            [--vae WAN_VAE --text-encoder UMT5] [--starts 6] [--segments 8]
                            [--steps N] [--timing-segments 30] [--latent-starts 16]
                            [--cfg 1.0 [--action-guidance]]

``--cfg`` applies to the scored walks and the latent check (the timed walk keeps the default).
Steps, latent frames per segment and the sentence set default to the model's (pipe.explore()'s):
20 / 1 / v1 for the default model, 4 / 8 / v1_5 for Yume-5B.

A Yume-5B checkpoint (a model with Yume's history embeddings) is a pipeline folder, or the bare
release file / folder with ``--vae`` (Wan2.2 VAE, diffusers layout) and ``--text-encoder``
(UMT5-XXL). Its walks run the release's sampler (8 latent frames per segment, clean packed
history), and the timing part compares its two history modes, ``all`` (the tiers compress every
latent) and ``start+last`` (the release's web app), instead of compressed / uncompressed.

``random-small`` / ``random-tiny`` / ``random-yume-tiny`` are untrained models (for checking the
bench itself): their instruction following is chance level. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.data.synthworld import random_actions, render_clip  # noqa: E402
from unity_core.explore.history import PAPER_SCHEDULE, HistorySchedule  # noqa: E402
from unity_core.explore.samplers import is_yume_model  # noqa: E402
from unity_core.explore.qcm import format_script  # noqa: E402
from unity_core.metrics.camera_motion import merge_scores, score_video  # noqa: E402

HELD_OUT = 200000


def load(checkpoint: str, vae: Optional[str] = None, text_encoder: Optional[str] = None):
    """(pipeline, is_random) for a checkpoint name; random ones are built in memory. A bare
    transformer checkpoint (no pipeline.json, e.g. the Yume-5B release) needs ``vae`` and
    ``text_encoder`` (:meth:`UnityVideoPipeline.from_files`); all load in float32 on the CPU.

    Raises:
        FileNotFoundError: no such checkpoint, or a part's file is missing.
        ValueError: a bare checkpoint without ``vae`` / ``text_encoder``.
    """
    from unity_core.pipeline import UnityVideoPipeline

    if not checkpoint.startswith("random"):
        ckpt = Path(checkpoint)
        if checkpoint == "default" or (ckpt / "pipeline.json").is_file():
            return UnityVideoPipeline.from_pretrained(checkpoint), False
        if not ckpt.exists():
            raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
        if vae is None or text_encoder is None:
            raise ValueError(f"{ckpt} is a bare transformer checkpoint (no pipeline.json): give --vae (the Wan2.2 VAE "
                             "folder, diffusers layout) and --text-encoder (a UMT5-XXL folder), or a pipeline folder")
        return UnityVideoPipeline.from_files(ckpt, vae, text_encoder, dtype=torch.float32, device="cpu"), False
    from unity_core.codec import LatentCodec
    from unity_core.model import UnityVideoTransformer, get_config
    from unity_core.text import MiniLMTextEncoder

    torch.manual_seed(0)
    cfg = get_config("unityvideo-small")
    if checkpoint in ("random-tiny", "random-yume-tiny"):
        cfg = get_config({**cfg.to_dict(), "dim": 64, "num_layers": 2, "num_heads": 2, "ffn_dim": 128})
    if checkpoint == "random-yume-tiny":  # Yume-5B's layout at the default codec's 16 channels and MiniLM's 384
        cfg = get_config({**cfg.to_dict(), "modality_stream": False, "history_embeddings": True})
    pipe = UnityVideoPipeline(UnityVideoTransformer.from_config(cfg), LatentCodec.from_config().eval(), MiniLMTextEncoder(),
                              {"defaults": {"num_frames": 17, "height": 64, "width": 64, "fps": 8.0}})
    return pipe, True


def held_out_walk(index: int, segments: int, size: int = 64, latent_frames: int = 1):
    """(actions, ground-truth clip) of held-out walk ``index``: seed ``HELD_OUT + index``, one
    random action per segment, each held for ``4 * latent_frames`` frames after the start frame."""
    seed = HELD_OUT + index
    actions = random_actions(np.random.default_rng(seed), segments)
    per_action = [a for a in actions for _ in range(latent_frames)]
    return actions, render_clip(seed, num_frames=1 + 4 * len(per_action), height=size, width=size, actions=per_action)


def _hist(frame: np.ndarray) -> np.ndarray:
    img = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
    h = cv2.calcHist([img], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3)
    return cv2.normalize(h, h).flatten()


def _consistency(frames: np.ndarray) -> float:
    """Mean colour-histogram correlation of adjacent frames (1 = identical colours)."""
    hs = [_hist(f) for f in frames]
    return float(np.mean([cv2.compareHist(a, b, cv2.HISTCMP_CORREL) for a, b in zip(hs, hs[1:])]))


def _sharpness(frames: np.ndarray) -> float:
    return float(np.mean([cv2.Laplacian(cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                          for f in frames]))


def drift(frames: np.ndarray, seg_len: int, segments: int) -> dict:
    """Drift figures of a walk whose segment s spans frames [s * seg_len, (s + 1) * seg_len]."""
    seg = lambda s: frames[s * seg_len: (s + 1) * seg_len + 1]  # noqa: E731
    # the first and last two segments as one run of frames each (each shared frame once)
    first, last = frames[: 2 * seg_len + 1], frames[(segments - 2) * seg_len: segments * seg_len + 1]
    h_first = np.mean([_hist(f) for f in seg(0)], 0).astype(np.float32)
    h_last = np.mean([_hist(f) for f in seg(segments - 1)], 0).astype(np.float32)
    return {
        "consistency_first": _consistency(first),
        "consistency_last": _consistency(last),
        "first_last_similarity": float(cv2.compareHist(h_first, h_last, cv2.HISTCMP_CORREL)),
        "sharpness_ratio_last_first": _sharpness(seg(segments - 1)) / max(_sharpness(seg(0)), 1e-9),
    }


def _mean_dicts(ds):
    return {k: float(np.mean([d[k] for d in ds])) for k in ds[0]}


def latent_following(pipe, starts: int, steps: Optional[int], seed: int, size: int = 64, cfg: float = 1.0,
                     action_guidance: bool = False, sentence_set: Optional[str] = None,
                     latent_frames: int = 1) -> dict:
    """Accuracy of matching generated next-segment latents to their own action's ground truth.
    ``action_guidance``: the caption alone is the negative prompt of CFG, so guidance pushes
    along the action text only. A segment of ``latent_frames`` latents (8 for Yume-5B) is
    compared as a whole (mean squared error over its latents)."""
    from unity_core.data.synthworld import held_actions
    from unity_core.explore.actions import CameraAction

    candidates = [CameraAction(m, "·") for m in ("W", "S", "A", "D", "·")] + [CameraAction("·", r) for r in "←→↑↓"]
    hits = []
    for i in range(starts):
        start = HELD_OUT + 500 + i
        history = held_actions(start, 13)
        truth, generated = [], []
        for action in candidates:
            clip = render_clip(start, num_frames=13 + 4 * latent_frames, height=size, width=size,
                               actions=history + [action] * latent_frames)
            truth.append(pipe.encode_frames(clip.rgb)[0, :, -latent_frames:])
            walk = pipe.explore(clip.rgb[:13], [action], clip.caption, steps=steps, seed=seed + i, decode=False,
                                size=(size, size), cfg=cfg, negative_prompt=clip.caption if action_guidance else "",
                                sentence_set=sentence_set)
            generated.append(walk.latent[0, :, -latent_frames:])
        d = ((torch.stack(generated)[:, None] - torch.stack(truth)[None]) ** 2).flatten(2).mean(-1)
        hits += (d.argmin(1) == torch.arange(len(candidates))).tolist()
    return {"accuracy": float(np.mean(hits)), "chance": 1 / len(candidates), "starts": starts,
            "actions": [format_script([a]) for a in candidates]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="default",
                    help="pipeline folder, bare checkpoint (with --vae, --text-encoder), 'default', 'random-small', "
                         "'random-tiny' or 'random-yume-tiny'")
    ap.add_argument("--vae", default=None, help="with a bare checkpoint: the Wan2.2 VAE folder (diffusers layout)")
    ap.add_argument("--text-encoder", default=None, help="with a bare checkpoint: the UMT5-XXL folder")
    ap.add_argument("--starts", type=int, default=6, help="held-out synthworld start images")
    ap.add_argument("--segments", type=int, default=8, help="segments (actions) per walk")
    ap.add_argument("--latent-frames", type=int, default=None,
                    help="latent frames per segment, 4 video frames each (default: the model's, 1; Yume-5B 8)")
    ap.add_argument("--steps", type=int, default=None, help="steps per segment (default: the model's, 20; Yume-5B 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sentence-set", default=None, help="v1 or v1_5 (default: the model's, v1; Yume-5B v1_5)")
    ap.add_argument("--timing-segments", type=int, default=30, help="length of the walk timed per segment")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--latent-starts", type=int, default=16,
                    help="held-out starts of the latent action-following check (9 actions each)")
    ap.add_argument("--cfg", type=float, default=1.0, help="CFG scale of the scored walks and the latent check")
    ap.add_argument("--action-guidance", action="store_true",
                    help="with --cfg: the caption alone is the negative prompt, so guidance pushes along the action text")
    args = ap.parse_args()
    if args.segments < 2:
        ap.error("--segments must be >= 2 (drift compares the first and last segments)")

    torch.manual_seed(args.seed)
    pipe, random_model = load(args.checkpoint, args.vae, args.text_encoder)
    yume = is_yume_model(pipe.transformer)
    if yume and args.latent_frames not in (None, 8):
        ap.error("Yume-5B generates 8 latent frames per segment; leave --latent-frames unset")
    latent_frames = args.latent_frames or (8 if yume else 1)
    seg_frames = 4 * latent_frames
    scores, gt_scores, codec_scores, drifts, gt_drifts, walks = [], [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(args.starts):
        seed = HELD_OUT + i
        # ground truth: the same scene walked by the same actions
        actions, gt = held_out_walk(i, args.segments, args.size, latent_frames)
        K = gt.intrinsics.numpy()
        res = pipe.explore(gt.rgb[0], actions, gt.caption, steps=args.steps, seed=args.seed + i,
                           latent_frames_per_segment=args.latent_frames, sentence_set=args.sentence_set,
                           size=(args.size, args.size), cfg=args.cfg,
                           negative_prompt=gt.caption if args.action_guidance else "")
        frames = res.frames.numpy()
        scores.append(score_video(frames, actions, frames_per_segment=seg_frames, K=K))
        gt_scores.append(score_video(gt.rgb, actions, frames_per_segment=seg_frames, K=K))
        coded = pipe.decode_latent(pipe.encode_frames(gt.rgb)).numpy()
        codec_scores.append(score_video(coded, actions, frames_per_segment=seg_frames, K=K))
        drifts.append(drift(frames, seg_frames, args.segments))
        gt_drifts.append(drift(gt.rgb.numpy(), seg_frames, args.segments))
        walks.append({"seed": seed, "actions": format_script(actions), "overall": scores[-1].overall,
                      "seconds_per_segment": float(np.mean(res.seconds_per_segment))})
        print(f"start {seed}: {format_script(actions)} -> instruction following {scores[-1].overall:.3f} "
              f"(ground truth {gt_scores[-1].overall:.3f}, through the codec {codec_scores[-1].overall:.3f}), "
              f"drift {drifts[-1]}", flush=True)
    score, gt_score = merge_scores(scores), merge_scores(gt_scores)
    latent = latent_following(pipe, args.latent_starts, args.steps, args.seed, args.size, args.cfg, args.action_guidance,
                              args.sentence_set, latent_frames)
    print(f"latent action following: {latent['accuracy']:.3f} (chance {latent['chance']:.3f})", flush=True)

    # time per segment along one long walk, with the paper's compressed history and, for
    # comparison, with every history latent at full resolution (no compression, no dropping)
    start = render_clip(HELD_OUT + 999, num_frames=1, height=args.size, width=args.size)
    long_actions = random_actions(np.random.default_rng(HELD_OUT + 999), args.timing_segments)
    timing = {}
    variants = ((("all", {"history_mode": "all"}), ("start+last", {"history_mode": "start+last"})) if yume else
                (("compressed", {"schedule": PAPER_SCHEDULE}), ("uncompressed", {"schedule": HistorySchedule(((10**6, 2),))})))
    for name, option in variants:
        long = pipe.explore(start.rgb[0], long_actions, start.caption, steps=args.steps, seed=args.seed,
                            latent_frames_per_segment=args.latent_frames, decode=False, size=(args.size, args.size),
                            sentence_set=args.sentence_set, **option)
        secs = long.seconds_per_segment
        q = max(1, len(secs) // 4)
        t = {"seconds_per_segment": [round(x, 4) for x in secs], "history_tokens": long.info["history_tokens"],
             "first_quarter_mean_s": float(np.mean(secs[:q])), "last_quarter_mean_s": float(np.mean(secs[-q:]))}
        t["last_over_first"] = t["last_quarter_mean_s"] / max(t["first_quarter_mean_s"], 1e-9)
        timing[name] = t
        print(f"{name} history, {len(secs)}-segment walk: first quarter {t['first_quarter_mean_s']:.3f} s/segment, "
              f"last quarter {t['last_quarter_mean_s']:.3f} s/segment; history tokens {t['history_tokens'][0]} -> "
              f"{t['history_tokens'][-1]}", flush=True)

    result = {
        "checkpoint": args.checkpoint,
        "random_model": random_model,
        "note": "untrained random model: instruction following is at chance level; this run checks the bench"
        if random_model else None,
        "sampler": res.info["sampler"], "starts": args.starts, "segments": args.segments,
        "latent_frames_per_segment": latent_frames, "steps": res.info["steps"], "size": args.size,
        "sentence_set": res.info["sentence_set"], "cfg": args.cfg,
        "action_guidance": args.action_guidance,
        "instruction_following": score.to_dict(),
        "ground_truth_ceiling": gt_score.to_dict(),
        "codec_ceiling": merge_scores(codec_scores).to_dict(),
        "latent_action_following": latent,
        "drift": _mean_dicts(drifts), "drift_ground_truth": _mean_dicts(gt_drifts),
        "timing": timing, "walks": walks,
        "wall_s": time.perf_counter() - t0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
