"""The ``unityvideo`` command line: estimation, joint and controllable generation on the
embedded default (or a pipeline folder), and batch queueing of workflows on a ComfyUI server.

    unityvideo estimate --modality depth --video clip.mp4 --out depth.mp4
    unityvideo generate --prompt "a person walks in a room" --modality depth --out gen.mp4
    unityvideo control  --modality skeleton --control person.mp4 --preprocess --prompt "..." --out ctl.mp4
    unityvideo explore  --image start.png --actions "W W W+A ←" --prompt "..." --out walk.mp4
    unityvideo queue workflows/default/estimate_depth_api.json --server http://127.0.0.1:8188 --set 7.seed=3 --repeat 4

Outputs are never overwritten: an existing name gets a ``_1``, ``_2``, ... suffix.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import List, Optional, Tuple

from unity_core.comfy_client import apply_overrides, with_seed_offset  # noqa: F401  (the queue command's edits)

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


def finite_float(text: str) -> float:
    """A finite number; an argparse type (``nan`` / ``inf`` raise ``ArgumentTypeError``: a NaN
    guidance scale samples NaN latents, which decode to an all-zero video without an error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    from unity_core.constants import INFERENCE_DEFAULTS, embedded_defaults

    model = embedded_defaults()  # the help names the embedded default's values
    p.add_argument("--out", required=True, type=Path, help="output video (.mp4 or .webp); never overwritten")
    p.add_argument("--frames", type=int, default=None, help=f"generate: frames, 4k+1 (default: the model's, {model['num_frames']}); "
                   "estimate / control: at most N frames from --start (more than the clip holds is an error; default: all)")
    p.add_argument("--size", type=parse_size, default=None, help="HxW, multiples of 16: generate's size (default "
                   f"{model['height']}x{model['width']}); estimate / control: the size the model sees (default: the short "
                   f"side at the model's {min(model['height'], model['width'])}, aspect kept)")
    p.add_argument("--steps", type=int, default=INFERENCE_DEFAULTS["steps"],
                   help=f"sampling steps (default {INFERENCE_DEFAULTS['steps']}, as the release)")
    p.add_argument("--seed", type=int, default=INFERENCE_DEFAULTS["seed"])
    p.add_argument("--cfg", type=finite_float, default=INFERENCE_DEFAULTS["cfg"], help="classifier-free guidance (1 = off)")
    p.add_argument("--scheduler", default="euler", help="euler, flow_euler, unipc or dpmpp_2m")
    p.add_argument("--cache", default=None, metavar="NAME[:VALUES]",
                   help="a diffusers step cache: first-block:0.05, mag, taylorseer:5, pab:2 or faster:2 "
                        "(see unity_core.sampling.caches; default off)")
    p.add_argument("--checkpoint", default=LOAD_DEFAULTS["checkpoint"], help="a pipeline folder (default: the embedded model)")
    memory_options(p)


_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_OFFLOAD = ("none", "group", "group-stream", "leaf")
#: What :func:`load_pipeline` takes for an option that is neither in ``args`` nor a keyword: the
#: command line's defaults (:func:`memory_options`, ``--checkpoint``).
LOAD_DEFAULTS = dict(checkpoint="default", device="cpu", dtype="fp32", offload="none", fp8_storage=False,
                     vae_tiling=False, text_encoder_device=None, free_text_encoder=False, compile=False, parallel=1)


def clip_options(p: argparse.ArgumentParser) -> None:
    """Whole-clip options of ``estimate`` and ``control`` (windows over the whole clip)."""
    from unity_core.constants import embedded_defaults

    window = embedded_defaults()["num_frames"]
    g = p.add_argument_group("whole clip (default: every frame at the source size and fps)")
    g.add_argument("--start", type=int, default=0, help="first source frame (default 0)")
    g.add_argument("--end", type=int, default=None, help="source frame to stop before (default: the clip's end)")
    g.add_argument("--stride", type=int, default=1, help="take every N-th frame (default 1; the output fps is divided by N)")
    g.add_argument("--window", type=int, default=None, help=f"frames per window, 4k+1 (default: the model's, {window})")
    g.add_argument("--overlap", type=int, default=None,
                   help="frames shared by consecutive windows, < window (default: about a quarter, 5 for 17)")
    g.add_argument("--conditioning", default="noised", choices=["noised", "clean", "none"],
                   help="how a window sees the previous window's output on the shared frames: noised to each step's "
                        "level (default), clean, or none (independent windows)")
    g.add_argument("--fps", type=float, default=None, help="output fps (default: the source's / stride)")


def memory_options(p: argparse.ArgumentParser) -> None:
    """Device, dtype and memory flags (diffusers' tools, see ``UnityVideoPipeline``)."""
    g = p.add_argument_group("device and memory")
    g.add_argument("--device", default=LOAD_DEFAULTS["device"],
                   help=f"where the model runs: cpu, cuda, cuda:1, ... (default {LOAD_DEFAULTS['device']})")
    g.add_argument("--dtype", default=LOAD_DEFAULTS["dtype"], choices=list(_DTYPES), help="transformer dtype (the 5B ships in bf16)")
    g.add_argument("--offload", default=LOAD_DEFAULTS["offload"], choices=_OFFLOAD,
                   help="group offloading of the DiT to the CPU: 'group' one block at a time, 'group-stream' "
                        "with CUDA-stream prefetch, 'leaf' layer by layer (needs --device cuda)")
    g.add_argument("--fp8-storage", action="store_true",
                   help="store the DiT's linear weights in fp8 (e4m3) and compute in --dtype (layerwise casting)")
    g.add_argument("--vae-tiling", action="store_true", help="decode/encode in spatial tiles (large frames)")
    g.add_argument("--text-encoder-device", default=LOAD_DEFAULTS["text_encoder_device"], help="where the text encoder runs (default: --device)")
    g.add_argument("--free-text-encoder", action="store_true", help="free the text encoder once the prompts are encoded")
    g.add_argument("--compile", action="store_true", help="torch.compile the repeated DiT blocks (regional)")
    g.add_argument("--parallel", type=int, default=LOAD_DEFAULTS["parallel"], metavar="N",
                   help="context parallelism over N processes: run under `torchrun --nproc_per_node N` "
                        "(Ulysses attention; rank 0 writes the outputs)")


def load_pipeline(args=None, **options):
    """The command line's pipeline: a pipeline folder (or ``"default"``) through
    ``UnityVideoPipeline.from_pretrained``, or a bare transformer checkpoint with a VAE folder and a
    text encoder through ``UnityVideoPipeline.from_files``, then the memory and speed tools of
    :func:`memory_options`. Scripts call it with keywords, e.g.
    ``load_pipeline(checkpoint="yume.safetensors", vae="Wan2.2_VAE", text_encoder="umt5-xxl")``.

    Args:
        args: parsed flags (an ``argparse.Namespace`` of a subcommand), or None.
        options: the same options as keywords, over ``args``: ``checkpoint``, ``vae``,
            ``text_encoder`` and those of :func:`memory_options` (``device``, ``dtype`` "fp32" /
            "bf16" / "fp16", ``offload``, ``fp8_storage``, ``vae_tiling``, ``text_encoder_device``,
            ``free_text_encoder``, ``compile``, ``parallel``); an option given neither way takes
            the command line's default (:data:`LOAD_DEFAULTS`). The bare-checkpoint form is
            offered where ``vae`` or ``text_encoder`` is among the options (the explore command,
            scripts); elsewhere the checkpoint must be a pipeline folder.

    Raises:
        TypeError: a keyword that is not one of these options.
        FileNotFoundError: no such checkpoint, or a folder without pipeline.json where no bare
            checkpoint is offered.
        ValueError: a bare checkpoint without ``--vae`` / ``--text-encoder``, or those with a
            pipeline folder (which names its own); offloading without an accelerator device, or
            fp8 storage with fp32.
    """
    import torch

    from unity_core.pipeline import UnityVideoPipeline

    unknown = sorted(set(options) - set(LOAD_DEFAULTS) - {"vae", "text_encoder"})
    if unknown:
        raise TypeError(f"load_pipeline() got unknown options {unknown}; it takes {sorted(LOAD_DEFAULTS)}, vae and text_encoder")
    given = {**(vars(args) if args is not None else {}), **options}
    args = argparse.Namespace(**{**LOAD_DEFAULTS, "vae": None, "text_encoder": None, **given})
    bare = _bare_checkpoint(args) if "vae" in given or "text_encoder" in given else None
    device = torch.device(args.device)
    dtype = getattr(torch, _DTYPES[args.dtype])
    if args.offload != "none" and device.type == "cpu":
        raise ValueError("--offload moves the DiT between the CPU and an accelerator: use it with --device cuda")
    if args.fp8_storage and dtype == torch.float32:
        raise ValueError("--fp8-storage computes in --dtype: use --dtype bf16 (or fp16)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device is available here; use --device cpu")
    if args.parallel > 1:
        device = _init_parallel(args.parallel, device)
    load_device = "cpu" if args.offload != "none" else device
    if bare is None:
        pipe = UnityVideoPipeline.from_pretrained(args.checkpoint, dtype=dtype, device=load_device,
                                                  text_encoder_device=args.text_encoder_device)
    else:
        pipe = UnityVideoPipeline.from_files(bare["transformer"], bare["codec"], bare["text_encoder"], config=bare,
                                             dtype=dtype, device=load_device,
                                             text_encoder_device=args.text_encoder_device)
    if args.fp8_storage:
        pipe.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if args.offload != "none":
        kind = "leaf_level" if args.offload == "leaf" else "block_level"
        pipe.enable_group_offload(device, "cpu", offload_type=kind, num_blocks_per_group=1 if kind == "block_level" else None,
                                  use_stream=args.offload == "group-stream")
    if args.vae_tiling:
        pipe.enable_vae_tiling()
    if args.compile:
        pipe.compile_transformer()
    pipe.free_text_encoder_after_encoding = args.free_text_encoder
    if args.parallel > 1:
        pipe.enable_context_parallel(ulysses_degree=args.parallel)
    return pipe


def _init_parallel(n: int, device):
    """Join the ``torchrun`` process group (gloo on CPU, nccl on CUDA); each rank's device.

    Raises:
        ValueError: not started by torchrun, or a world size other than ``n``.
    """
    import os

    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:
        raise ValueError(f"--parallel {n} runs under torchrun: torchrun --nproc_per_node {n} -m unity_core.cli ...")
    if int(os.environ["WORLD_SIZE"]) != n:
        raise ValueError(f"--parallel {n} but torchrun started {os.environ['WORLD_SIZE']} processes")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def is_main_process() -> bool:
    """False on every rank but 0 of a ``--parallel`` run (those write nothing)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _save_values(out: Path, modality: str, values) -> Path:
    """The values file beside the video ``out`` (same stem, ``.npz``; format in
    :mod:`unity_core.io.values`)."""
    from unity_core.io import save_values

    return save_values(out.with_suffix(".npz"), modality, values)


def main(argv: Optional[List[str]] = None) -> int:
    from unity_core.constants import EXPLORE_DEFAULT_PROMPT, EXPLORE_START_CHOICES, INFERENCE_DEFAULTS, embedded_defaults

    model = embedded_defaults()  # the help names the embedded default's values

    ap = argparse.ArgumentParser(prog="unityvideo", description="UnityVideo estimation and generation, and ComfyUI queueing")
    sub = ap.add_subparsers(dest="command", required=True)
    est = sub.add_parser("estimate", help="RGB video -> modality video + values (.npz)")
    est.add_argument("--modality", required=True)
    est.add_argument("--video", required=True, type=Path)
    est.add_argument("--no-values", action="store_true", help="write the video only (no .npz of values)")
    _common(est)
    clip_options(est)
    gen = sub.add_parser("generate", help="text -> RGB video + modality video (joint generation)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--modality", required=True)
    _common(gen)
    ctl = sub.add_parser("control", help="modality video -> RGB video (controllable generation)")
    ctl.add_argument("--modality", required=True)
    ctl.add_argument("--control", required=True, type=Path, help="a modality visualisation video, or RGB with --preprocess")
    ctl.add_argument("--preprocess", action="store_true", help="extract the control from an RGB video first (raft, skeleton, segmentation)")
    ctl.add_argument("--prompt", required=True)
    ctl.add_argument("--control-cfg", type=finite_float, default=None,
                     help=f"control guidance, 1 = off (default: the model's; {model['control_cfg']:g} for the embedded default)")
    _common(ctl)
    clip_options(ctl)
    exp = sub.add_parser("explore", help="start image + camera actions -> a walk through the world (Yume-style)")
    exp.add_argument("--image", required=True, type=Path, help="start image (png, jpg, ...) or a video (see --start)")
    exp.add_argument("--start", default="first", choices=list(EXPLORE_START_CHOICES),
                     help="for a video: start from its first or last frame, or the whole 4k+1-frame clip (default first)")
    exp.add_argument("--actions", required=True, help="one action per segment, e.g. 'W W W+A ←' (W/A/S/D move, arrows or < > ^ v turn, · none)")
    exp.add_argument("--prompt", default=EXPLORE_DEFAULT_PROMPT,
                     help=f"what the world looks like; each segment adds its action's sentence (default {EXPLORE_DEFAULT_PROMPT!r})")
    exp.add_argument("--out", required=True, type=Path, help="output video (.mp4 or .webp) and a .json beside it; never overwritten")
    exp.add_argument("--size", type=parse_size, default=None,
                     help=f"HxW, multiples of 16 (default model) or 32 (Wan2.2 VAE); default: the pipeline's, "
                          f"{model['height']}x{model['width']}")
    exp.add_argument("--steps", type=int, default=None,
                     help=f"sampling steps per segment (default: 4 for Yume-5B, else {INFERENCE_DEFAULTS['steps']})")
    exp.add_argument("--shift", type=finite_float, default=None, help="timestep shift (default: 7 for Yume-5B, else 1)")
    exp.add_argument("--cfg", type=finite_float, default=None, help="classifier-free guidance, 1 = off (the default)")
    exp.add_argument("--seed", type=int, default=INFERENCE_DEFAULTS["seed"])
    exp.add_argument("--sentence-set", default=None, choices=["v1", "v1_5"],
                     help="Yume's action sentences (default: v1_5 for Yume-5B, else v1)")
    exp.add_argument("--event", default="", help="free text appended to every segment's prompt (a text-controlled event)")
    exp.add_argument("--speed", default=None, metavar="DISTANCE,TURN,ROTATION",
                     help="add Yume's speed sentence with these values ('default': the v1 table's values; v1_5 has none)")
    exp.add_argument("--history", default="all", choices=["all", "start+last"],
                     help="Yume-5B: keep every latent (compressed by the tiers) or only the start image's and the last segment's")
    exp.add_argument("--time-travel", default="off", choices=["off", "tts", "tts-sde"],
                     help="Yume-5B: time-travel sampling (interval 2, look-ahead 2; tts-sde adds the SDE's noise, eta 0.3)")
    exp.add_argument("--cache-blocks", default="", help="Yume-5B: blocks whose residual is reused every other "
                     "evaluation, e.g. '10,11,12' (default none)")
    exp.add_argument("--checkpoint", default=LOAD_DEFAULTS["checkpoint"],
                     help="a pipeline folder (default: the embedded model), or a bare transformer checkpoint (the Yume-5B "
                          "file or folder) with --vae and --text-encoder")
    exp.add_argument("--vae", default=None, help="with a bare checkpoint: the Wan2.2 VAE folder (diffusers layout)")
    exp.add_argument("--text-encoder", default=None, help="with a bare checkpoint: the UMT5-XXL folder (or 'minilm')")
    memory_options(exp)
    q = sub.add_parser("queue", help="queue an API-format workflow on a running ComfyUI")
    q.add_argument("workflow", type=Path)
    q.add_argument("--server", default="http://127.0.0.1:8188")
    q.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE", help="override an input (JSON value or text)")
    q.add_argument("--repeat", type=int, default=1,
                   help="queue N prompts; repeat i adds i to every 'seed' input (ComfyUI would serve an identical prompt from its cache)")
    q.add_argument("--wait", action="store_true",
                   help="run the prompts one after another, each waited for (GET /history), and report how many "
                        "succeeded; exit 1 unless all did")
    q.add_argument("--timeout", type=float, default=900.0, help="with --wait: seconds allowed per prompt (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        commands = {"estimate": _estimate, "generate": _generate, "control": _control, "explore": _explore, "queue": _queue}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"unityvideo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unityvideo {args.command}: cancelled; nothing was written under the output name", file=sys.stderr)
        return 130


def _pipeline(args):
    from unity_core.constants import resolve_modality

    if hasattr(args, "modality"):
        args.modality = resolve_modality(args.modality)
    if args.command == "generate" and args.frames is not None:
        from unity_core.io import check_frame_count

        check_frame_count(args.frames)
    return load_pipeline(args)


def _check_outputs(args, *names: Path) -> None:
    """Refuse output names with a suffix we cannot write before loading or sampling anything."""
    from unity_core.io import check_output_suffix

    for name in names:
        check_output_suffix(name)


def _clip_kwargs(args) -> dict:
    """The whole-clip options as :func:`unity_core.video.clip.run_clip` takes them."""
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    return dict(start=args.start, end=args.end, stride=args.stride, max_frames=args.frames, window=args.window,
                overlap=args.overlap, size=args.size, conditioning=args.conditioning, fps=args.fps, progress=True,
                steps=args.steps, seed=args.seed, cfg=args.cfg, scheduler=args.scheduler,
                **({} if args.cache is None else {"cache": args.cache}))


def _sampler_kwargs(args, desc):
    step_cache = {} if args.cache is None else {"cache": args.cache}
    return dict(steps=args.steps, seed=args.seed, cfg=args.cfg, scheduler=args.scheduler, callback=_progress(desc),
                **step_cache)


def _estimate(args) -> int:
    start = time.time()
    _check_outputs(args, args.out)
    if not args.video.exists():
        raise FileNotFoundError(f"video {args.video} does not exist")
    pipe = _pipeline(args)
    main_rank = is_main_process()  # the other ranks of --parallel write nothing
    out = pipe.estimate(args.video, args.modality, out=args.out if main_rank else None,
                        values_out=args.out.with_suffix(".npz") if main_rank and not args.no_values else None,
                        **_clip_kwargs(args))
    if not main_rank:
        return 0
    info = out.info
    written = " ".join(str(p) for p in (info["video"], info["values"]) if p is not None)
    h, w = info["size"]
    print(f"estimate {args.modality}: {written} ({info['num_frames']} frames, {w}x{h}, {out.fps:.3f} fps, "
          f"{info['windows']} windows, {time.time() - start:.1f}s)")
    return 0


def _generate(args) -> int:
    from unity_core.io import write_video

    start = time.time()
    _check_outputs(args, args.out)
    pipe = _pipeline(args)
    h, w = args.size or (None, None)
    out = pipe.generate(args.prompt, args.modality, num_frames=args.frames, height=h, width=w, **_sampler_kwargs(args, "generate"))
    if not is_main_process():
        return 0
    rgb = write_video(args.out, out.rgb, out.fps)
    mod = write_video(rgb.with_name(f"{rgb.stem}_{args.modality}{rgb.suffix}"), out.modality_frames, out.fps)
    values = _save_values(mod, args.modality, out.values)
    print(f"generate: {rgb} {mod} {values} ({time.time() - start:.1f}s)")
    return 0


def _control(args) -> int:
    from unity_core import modalities as M
    from unity_core.preprocess import extract_control

    start = time.time()
    _check_outputs(args, args.out)
    if not args.control.exists():
        raise FileNotFoundError(f"control video {args.control} does not exist")
    pipe = _pipeline(args)
    preprocess = None
    if args.preprocess:
        def preprocess(frames):
            return M.encode(args.modality, extract_control(args.modality, frames), size=frames.shape[1:3])
    guidance = {} if args.control_cfg is None else {"control_cfg": args.control_cfg}
    main_rank = is_main_process()
    out = pipe.control(args.control, args.modality, args.prompt, preprocess=preprocess,
                       out=args.out if main_rank else None,
                       control_out=args.out.with_name(f"{args.out.stem}_control{args.out.suffix}") if main_rank else None,
                       **_clip_kwargs(args), **guidance)
    if not main_rank:
        return 0
    info = out.info
    h, w = info["size"]
    print(f"control {args.modality}: {info['video']} {info['control']} ({info['num_frames']} frames, {w}x{h}, "
          f"{out.fps:.3f} fps, {time.time() - start:.1f}s)")
    return 0


def _bare_checkpoint(args) -> Optional[dict]:
    """None for a pipeline folder (or ``"default"``); for a bare transformer checkpoint, the
    pipeline config naming its three parts (absolute paths, as a pipeline.json would), for
    ``UnityVideoPipeline.from_files``.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: a bare checkpoint without ``--vae`` / ``--text-encoder``, or those with a
            pipeline folder (which names its own).
    """
    ckpt = Path(args.checkpoint)
    if args.checkpoint == "default" or (ckpt / "pipeline.json").is_file():
        if args.vae or args.text_encoder:
            raise ValueError("--vae and --text-encoder go with a bare transformer checkpoint; a pipeline folder names its own")
        return None
    if not ckpt.exists():
        raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
    if args.vae is None or args.text_encoder is None:
        raise ValueError(f"{ckpt} is a bare transformer checkpoint (no pipeline.json): give --vae (the Wan2.2 VAE folder, "
                         "diffusers layout) and --text-encoder (a UMT5-XXL folder), or a pipeline folder")
    text = args.text_encoder if args.text_encoder == "minilm" else str(Path(args.text_encoder).resolve())
    return {"transformer": str(ckpt.resolve()), "codec": str(Path(args.vae).resolve()), "text_encoder": text}


def _explore_pipeline(args):
    """The explore command's pipeline: :func:`load_pipeline` with its ``--checkpoint``, ``--vae``
    and ``--text-encoder`` (a pipeline folder, the default, or a bare transformer checkpoint).

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: a bare checkpoint without ``--vae`` / ``--text-encoder``, or those with a
            pipeline folder (which names its own).
    """
    return load_pipeline(args, vae=getattr(args, "vae", None), text_encoder=getattr(args, "text_encoder", None))


def _explore_addons(args):
    """(time_travel, cache) of the explore command's Yume-5B options (None = off)."""
    from unity_core.sampling.yume import BlockCache, TimeTravel

    travel = None if args.time_travel == "off" else TimeTravel(2, 2, sde=args.time_travel == "tts-sde")
    try:
        blocks = [int(b) for b in args.cache_blocks.replace(" ", "").split(",") if b]
    except ValueError:
        raise ValueError(f"--cache-blocks takes block numbers like '10,11,12', got {args.cache_blocks!r}") from None
    return travel, (BlockCache(blocks, interval=2) if blocks else None)


def _speed(text: Optional[str]) -> Optional[dict]:
    """``--speed``: None (no speed sentence), ``default`` ({}: the v1 table's values) or
    ``DISTANCE,TURN,ROTATION`` (:func:`unity_core.explore.qcm.speed_sentence`'s values)."""
    if text is None:
        return None
    if text == "default":
        return {}
    try:
        distance, turn, rotation = (finite_float(v) for v in text.split(","))
    except (ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"--speed takes DISTANCE,TURN,ROTATION (e.g. 4.4,1,2) or 'default', got {text!r}") from None
    return {"distance": distance, "turn": turn, "rotation": rotation}


def _explore(args) -> int:
    from unity_core.explore.start import start_frames
    from unity_core.explore.qcm import format_script, parse_script
    from unity_core.io import read_video, write_new_text, write_video

    start = time.time()
    _check_outputs(args, args.out)
    try:
        actions = parse_script(args.actions)
    except ValueError as err:
        raise ValueError(f"--actions: {err}") from None
    if not args.image.exists():
        raise FileNotFoundError(f"start image {args.image} does not exist")
    travel, cache = _explore_addons(args)
    speed = _speed(args.speed)
    image = start_frames(read_video(args.image)[0], args.start)
    pipe = _explore_pipeline(args)
    res = pipe.explore(image, actions, args.prompt, steps=args.steps, shift=args.shift, cfg=args.cfg, seed=args.seed,
                       sentence_set=args.sentence_set, event=args.event, speed=speed, size=args.size,
                       history_mode=args.history, time_travel=travel, cache=cache,
                       callback=_progress(f"explore {len(actions)} actions"))
    if not is_main_process():  # under torchrun every rank holds the same walk; rank 0 writes it
        return 0
    video = write_video(args.out, res.frames, res.fps)
    info = res.info
    record = {
        "actions": format_script(res.actions), "prompt": args.prompt, "event": args.event, "image": str(args.image),
        "start": args.start, "size": list(res.frames.shape[1:3]), "frames": int(res.frames.shape[0]), "fps": res.fps,
        "sampler": info["sampler"], "steps": info["steps"], "shift": info["shift"], "cfg": info["cfg"], "seed": args.seed,
        "sentence_set": info["sentence_set"], "speed": speed, "history": info["history_mode"],
        "checkpoint": str(args.checkpoint),
        "segments": [{"action": format_script([a]), "prompt": p, "frames": list(f), "seconds": round(s, 3)}
                     for a, p, f, s in zip(res.actions, res.prompts, res.segment_frames, res.seconds_per_segment)],
    }
    meta = write_new_text(video.with_suffix(".json"), json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"explore {record['actions']}: {video} {meta} ({record['frames']} frames, {time.time() - start:.1f}s)")
    return 0


def _queue(args) -> int:
    """``unityvideo queue``: queue ``--repeat`` prompts (seed + i each); with ``--wait``, one after
    another, each waited for; exit 1 unless all succeeded."""
    from unity_core.comfy_client import ComfyClient, ComfyError, PromptRefused, execution_errors, load_api_workflow

    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    workflow = apply_overrides(load_api_workflow(args.workflow), args.set)
    name = args.workflow.name
    client, client_id = ComfyClient(args.server), uuid.uuid4().hex
    succeeded = 0
    try:
        for i in range(args.repeat):
            try:
                prompt_id = client.queue(with_seed_offset(workflow, i), client_id)
            except PromptRefused as err:  # ComfyUI explains a refused prompt in the body
                raise ValueError(f"the server refused {name} (HTTP {err.status}): {err.detail}") from None
            print(f"queued {name} [{i + 1}/{args.repeat}]: prompt_id {prompt_id}")
            if not args.wait:
                continue
            start = time.monotonic()
            try:
                entry = client.wait(prompt_id, timeout=args.timeout)
            except TimeoutError as err:
                print(f"failed {name} [{i + 1}/{args.repeat}]: {err}", flush=True)
                continue
            state = entry["status"]["status_str"]
            succeeded += state == "success"
            detail = "" if state == "success" else f": {json.dumps(execution_errors(entry))}"
            print(f"{state} {name} [{i + 1}/{args.repeat}] in {time.monotonic() - start:.1f}s{detail}", flush=True)
    except ComfyError as err:
        raise ValueError(str(err)) from None
    if args.wait:
        print(f"{name}: {succeeded}/{args.repeat} succeeded")
        return 0 if succeeded == args.repeat else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
