"""The ``unityvideo`` command line: estimation, joint and controllable generation on the
embedded default (or a pipeline folder), and batch queueing of workflows on a ComfyUI server.

    unityvideo estimate --modality depth --video clip.mp4 --out depth.mp4
    unityvideo generate --prompt "a person walks in a room" --modality depth --out gen.mp4
    unityvideo control  --modality skeleton --control person.mp4 --preprocess --prompt "..." --out ctl.mp4
    unityvideo explore  --image start.png --actions "W W W+A ←" --prompt "..." --out walk.mp4
    unityvideo queue workflows/estimate_depth_api.json --server http://127.0.0.1:8188 --set 7.seed=3 --repeat 4

Outputs are never overwritten: an existing name gets a ``_1``, ``_2``, ... suffix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np


def _progress(desc: str):
    from tqdm import tqdm

    bar = {"bar": None}

    def callback(step, total, *_):
        if bar["bar"] is None:
            bar["bar"] = tqdm(total=total, desc=desc, unit="step", file=sys.stderr)
        bar["bar"].update(step - bar["bar"].n)
        if step == total:
            bar["bar"].close()

    return callback


def parse_size(text: str) -> Tuple[int, int]:
    """``"HxW"`` -> (height, width); an argparse type (raises ``ArgumentTypeError`` otherwise)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size takes HxW, e.g. 64x64, got {text!r}") from None
    return h, w


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output video (.mp4 or .webp); never overwritten")
    p.add_argument("--frames", type=int, default=None, help="frames, 4k+1 (default: the model's, 17 for the default)")
    p.add_argument("--size", type=parse_size, default=None, help="HxW, multiples of 16 (default: the model's, 64x64)")
    p.add_argument("--steps", type=int, default=20, help="sampling steps (default 20, as the release)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance (1 = off)")
    p.add_argument("--scheduler", default="euler", help="euler, flow_euler, unipc or dpmpp_2m")
    p.add_argument("--checkpoint", default="default", help="a pipeline folder (default: the embedded model)")


def _save_values(out: Path, modality: str, values) -> Path:
    from unity_core.io import unique_path

    path = unique_path(out.with_suffix(".npz"))
    np.savez_compressed(path, values=np.asarray(values), modality=modality)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    from unity_core.constants import EXPLORE_DEFAULT_PROMPT, EXPLORE_START_CHOICES

    ap = argparse.ArgumentParser(prog="unityvideo", description="UnityVideo estimation and generation, and ComfyUI queueing")
    sub = ap.add_subparsers(dest="command", required=True)
    est = sub.add_parser("estimate", help="RGB video -> modality video + values (.npz)")
    est.add_argument("--modality", required=True)
    est.add_argument("--video", required=True, type=Path)
    _common(est)
    gen = sub.add_parser("generate", help="text -> RGB video + modality video (joint generation)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--modality", required=True)
    _common(gen)
    ctl = sub.add_parser("control", help="modality video -> RGB video (controllable generation)")
    ctl.add_argument("--modality", required=True)
    ctl.add_argument("--control", required=True, type=Path, help="a modality visualisation video, or RGB with --preprocess")
    ctl.add_argument("--preprocess", action="store_true", help="extract the control from an RGB video first (raft, skeleton, segmentation)")
    ctl.add_argument("--prompt", required=True)
    ctl.add_argument("--control-cfg", type=float, default=None,
                     help="control guidance, 1 = off (default: the model's; 8 for the embedded default)")
    _common(ctl)
    exp = sub.add_parser("explore", help="start image + camera actions -> a walk through the world (Yume-style)")
    exp.add_argument("--image", required=True, type=Path, help="start image (png, jpg, ...) or a video (see --start)")
    exp.add_argument("--start", default="first", choices=list(EXPLORE_START_CHOICES),
                     help="for a video: start from its first or last frame, or the whole 4k+1-frame clip (default first)")
    exp.add_argument("--actions", required=True, help="one action per segment, e.g. 'W W W+A ←' (W/A/S/D move, arrows or < > ^ v turn, · none)")
    exp.add_argument("--prompt", default=EXPLORE_DEFAULT_PROMPT,
                     help=f"what the world looks like; each segment adds its action's sentence (default {EXPLORE_DEFAULT_PROMPT!r})")
    exp.add_argument("--out", required=True, type=Path, help="output video (.mp4 or .webp) and a .json beside it; never overwritten")
    exp.add_argument("--size", type=parse_size, default=None, help="HxW, multiples of 16 (default: the model's, 64x64)")
    exp.add_argument("--steps", type=int, default=20, help="sampling steps per segment (default 20)")
    exp.add_argument("--seed", type=int, default=42)
    exp.add_argument("--sentence-set", default="v1", choices=["v1", "v1_5"], help="Yume's action sentences (default v1)")
    exp.add_argument("--checkpoint", default="default", help="a pipeline folder (default: the embedded model)")
    q = sub.add_parser("queue", help="queue an API-format workflow on a running ComfyUI")
    q.add_argument("workflow", type=Path)
    q.add_argument("--server", default="http://127.0.0.1:8188")
    q.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="override an input (JSON value or text)")
    q.add_argument("--repeat", type=int, default=1,
                   help="queue N prompts; repeat i adds i to every 'seed' input (ComfyUI would serve an identical prompt from its cache)")
    args = ap.parse_args(argv)
    try:
        commands = {"estimate": _estimate, "generate": _generate, "control": _control, "explore": _explore, "queue": _queue}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"unityvideo {args.command}: error: {err}", file=sys.stderr)
        return 2


def _pipeline(args):
    from unity_core.constants import resolve_modality
    from unity_core.pipeline import UnityVideoPipeline

    if hasattr(args, "modality"):
        args.modality = resolve_modality(args.modality)
    if args.frames is not None:
        from unity_core.io import check_frame_count

        check_frame_count(args.frames)
    return UnityVideoPipeline.from_pretrained(args.checkpoint)


def _sampler_kwargs(args, desc):
    return dict(steps=args.steps, seed=args.seed, cfg=args.cfg, scheduler=args.scheduler, callback=_progress(desc))


def _estimate(args) -> int:
    from unity_core.io import read_video, write_video

    start = time.time()
    if not args.video.exists():
        raise FileNotFoundError(f"video {args.video} does not exist")
    pipe = _pipeline(args)
    frames, _ = read_video(args.video)
    out = pipe.estimate(frames, args.modality, num_frames=args.frames, size=args.size, **_sampler_kwargs(args, f"estimate {args.modality}"))
    video = write_video(args.out, out.modality_frames, out.fps)
    values = _save_values(video, args.modality, out.values)
    print(f"estimate {args.modality}: {video} {values} ({time.time() - start:.1f}s)")
    return 0


def _generate(args) -> int:
    from unity_core.io import write_video

    start = time.time()
    pipe = _pipeline(args)
    h, w = args.size or (None, None)
    out = pipe.generate(args.prompt, args.modality, num_frames=args.frames, height=h, width=w, **_sampler_kwargs(args, "generate"))
    rgb = write_video(args.out, out.rgb, out.fps)
    mod = write_video(rgb.with_name(f"{rgb.stem}_{args.modality}{rgb.suffix}"), out.modality_frames, out.fps)
    values = _save_values(mod, args.modality, out.values)
    print(f"generate: {rgb} {mod} {values} ({time.time() - start:.1f}s)")
    return 0


def _control(args) -> int:
    from unity_core import modalities as M
    from unity_core.io import read_video, write_video
    from unity_core.preprocess import extract_control

    start = time.time()
    if not args.control.exists():
        raise FileNotFoundError(f"control video {args.control} does not exist")
    pipe = _pipeline(args)
    frames, _ = read_video(args.control)
    frames = pipe.prepare_frames(frames, args.frames, args.size)
    if args.preprocess:
        values = extract_control(args.modality, frames)
        frames = M.encode(args.modality, values, size=frames.shape[1:3])
    guidance = {} if args.control_cfg is None else {"control_cfg": args.control_cfg}
    out = pipe.control(frames, args.modality, args.prompt, **_sampler_kwargs(args, "control"), **guidance)
    rgb = write_video(args.out, out.rgb, out.fps)
    ctrl = write_video(rgb.with_name(f"{rgb.stem}_control{rgb.suffix}"), out.modality_frames, out.fps)
    print(f"control {args.modality}: {rgb} {ctrl} ({time.time() - start:.1f}s)")
    return 0


def _explore(args) -> int:
    from unity_core.explore.long_video import explore
    from unity_core.explore.qcm import format_script, parse_script
    from unity_core.io import unique_path, write_video
    from unity_core.pipeline import UnityVideoPipeline

    start = time.time()
    try:
        actions = parse_script(args.actions)
    except ValueError as err:
        raise ValueError(f"--actions: {err}") from None
    from unity_core.explore.long_video import start_frames
    from unity_core.io import read_video

    if not args.image.exists():
        raise FileNotFoundError(f"start image {args.image} does not exist")
    image = start_frames(read_video(args.image)[0], args.start)
    pipe = UnityVideoPipeline.from_pretrained(args.checkpoint)
    res = explore(pipe, image, actions, args.prompt, steps=args.steps, seed=args.seed, sentence_set=args.sentence_set,
                  size=args.size, callback=_progress(f"explore {len(actions)} actions"))
    video = write_video(args.out, res.frames, res.fps)
    record = {
        "actions": format_script(res.actions), "prompt": args.prompt, "image": str(args.image), "start": args.start,
        "size": list(res.frames.shape[1:3]), "frames": int(res.frames.shape[0]), "fps": res.fps,
        "steps": args.steps, "seed": args.seed, "sentence_set": args.sentence_set, "checkpoint": str(args.checkpoint),
        "segments": [{"action": format_script([a]), "prompt": p, "frames": list(f), "seconds": round(s, 3)}
                     for a, p, f, s in zip(res.actions, res.prompts, res.segment_frames, res.seconds_per_segment)],
    }
    meta = unique_path(video.with_suffix(".json"))
    meta.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"explore {record['actions']}: {video} {meta} ({record['frames']} frames, {time.time() - start:.1f}s)")
    return 0


def apply_overrides(workflow: dict, overrides: List[str]) -> dict:
    """Apply ``NODE.INPUT=VALUE`` overrides to an API-format workflow (a copy).

    Raises:
        ValueError: malformed override, unknown node id or input name.
    """
    wf = json.loads(json.dumps(workflow))
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--set takes NODE.INPUT=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        node, name = key.split(".", 1)
        if node not in wf:
            raise ValueError(f"--set: no node {node!r} in the workflow (ids: {', '.join(wf)})")
        if name not in wf[node].get("inputs", {}):
            raise ValueError(f"--set: node {node} ({wf[node]['class_type']}) has no input {name!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        wf[node]["inputs"][name] = value
    return wf


def with_seed_offset(workflow: dict, offset: int) -> dict:
    """A copy of an API-format workflow with ``offset`` added to every integer ``seed`` /
    ``noise_seed`` input (what ComfyUI's "increment" seed control does between queued prompts)."""
    wf = json.loads(json.dumps(workflow))
    for node in wf.values():
        inputs = node.get("inputs", {})
        for name in ("seed", "noise_seed"):
            if isinstance(inputs.get(name), int):
                inputs[name] += offset
    return wf


def _queue(args) -> int:
    import urllib.error
    import urllib.request
    import uuid

    if not args.workflow.exists():
        raise FileNotFoundError(f"workflow {args.workflow} does not exist")
    workflow = json.loads(args.workflow.read_text())
    if "nodes" in workflow and "links" in workflow:
        raise ValueError(f"{args.workflow} is a UI-format workflow; queue the *_api.json file (Export (API) in ComfyUI)")
    workflow = apply_overrides(workflow, args.set)
    client = str(uuid.uuid4())
    url = args.server.rstrip("/") + "/prompt"
    for i in range(args.repeat):
        body = json.dumps({"prompt": with_seed_offset(workflow, i), "client_id": client}).encode()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as err:  # ComfyUI explains a refused prompt in the body
            detail = err.read().decode("utf-8", "replace")
            raise ValueError(f"the server refused {args.workflow.name} (HTTP {err.code}): {detail}") from None
        except urllib.error.URLError as err:
            raise ValueError(f"cannot reach ComfyUI at {args.server} ({err.reason}); is it running? (--server URL)") from None
        print(f"queued {args.workflow.name} [{i + 1}/{args.repeat}]: prompt_id {reply.get('prompt_id')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
