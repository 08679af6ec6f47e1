"""Train the shipped default UnityVideo (preset unityvideo-small) on synthworld, or fine-tune any
pipeline folder (the 5B included) on a release-format CSV.

    python scripts/train_default.py [--pool POOL.safetensors] --codec CODEC_DIR --out OUT_DIR \\
        [--steps 4000] [--time-limit SECONDS] [--seed 0]

Steps: load the clip pool (rendered by scripts/train_codec.py, seeds 0..N-1), encode every
stream with the trained codec and every prompt with MiniLM, train with dynamic task routing,
and write OUT_DIR/transformer.safetensors (EMA weights, bf16), OUT_DIR/training.json (compute)
and a training checkpoint for resuming. ``--modalities depth`` trains a single-task/
single-modality baseline with the same compute. ``--init FOLDER --csv DATA.csv`` fine-tunes
FOLDER's transformer on the CSV's clips (encoded with FOLDER's own codec and text encoder); on
a GPU machine launch it with ``accelerate launch`` for several GPUs. ``--prepare-only --latents
CACHE`` encodes the data once and stops, so several runs can then share the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.cli import parse_size  # noqa: E402
from unity_core.codec import LatentCodec  # noqa: E402
from unity_core.constants import TRAIN_MODALITY_WEIGHTS, TRAIN_TASK_WEIGHTS, resolve_modality, resolve_task  # noqa: E402
from unity_core.data.csv_dataset import CSVVideoDataset  # noqa: E402
from unity_core.model import UnityVideoTransformer, get_config, save_transformer  # noqa: E402
from unity_core.pipeline import UnityVideoPipeline  # noqa: E402
from unity_core.train.objective import EXPLORE_TASK, RGB_ONLY_TASK  # noqa: E402
from unity_core.text import MiniLMTextEncoder  # noqa: E402
from unity_core.train import LatentData, TrainConfig, Trainer, add_walks, build_latent_data  # noqa: E402
from unity_core.train.pool import WALK_SEED0, load_or_render_pool, render_walks  # noqa: E402


ALL_TASKS = {**TRAIN_TASK_WEIGHTS, RGB_ONLY_TASK: 0.0, EXPLORE_TASK: 0.0}


def _canonical(name: str, defaults, resolve) -> str:
    """A task or modality name as the weight table ``defaults`` spells it; other names go
    through ``resolve`` (``resolve_task`` / ``resolve_modality``: aliases such as ``flow`` or
    ``estimation``).

    Raises:
        SystemExit: an unknown name, listing the valid ones.
    """
    if name in defaults:
        return name
    try:
        return resolve(name)
    except ValueError:
        raise SystemExit(f"unknown name {name!r}: use one of {sorted(defaults)} (or an alias)") from None


def _weights(pairs, defaults, resolve):
    """``["name=w", ...]`` -> dict over the names of ``defaults`` (None keeps ``defaults``)."""
    if not pairs:
        return dict(defaults)
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not value:
            raise SystemExit(f"bad weight {pair!r}: use NAME=W with NAME in {sorted(defaults)}")
        out[_canonical(name, defaults, resolve)] = float(value)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, default=Path("/tmp/unityvideo_pool.safetensors"),
                    help="clip pool; rendered (seeds 0..clips-1) and cached here when missing")
    ap.add_argument("--clips", type=int, default=480)
    ap.add_argument("--csv", type=Path, default=None,
                    help="train on a release-format CSV (video, prompt and modality columns) instead of synthworld")
    ap.add_argument("--frames", type=int, default=17, help="frames per clip read from --csv (4k+1)")
    ap.add_argument("--size", type=parse_size, default=(64, 64), help="HxW of clips read from --csv")
    ap.add_argument("--init", type=Path, default=None,
                    help="fine-tune this pipeline folder (its transformer, codec and text encoder; e.g. a 5B folder)")
    ap.add_argument("--latents", type=Path, default=None,
                    help="cache of the encoded pool (codec latents + prompt embeddings); made when missing")
    ap.add_argument("--codec", type=Path, default=Path(__file__).resolve().parents[1] / "unity_core/weights/default/codec")
    ap.add_argument("--out", type=Path, default=None, help="run folder (transformer, checkpoint, training.json)")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timestep-shift", type=float, default=1.0,
                    help="training timestep shift (1.0 suits the 4x4-token frames of 64x64 clips; the 5B uses 5.0)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    ap.add_argument("--accelerate", action="store_true",
                    help="use Hugging Face Accelerate (run under `accelerate launch` for several GPUs)")
    ap.add_argument("--modalities", nargs="*", default=None, help="train only these modalities")
    ap.add_argument("--tasks", nargs="*", default=None, help="train only these tasks")
    ap.add_argument("--task-weights", nargs="*", default=None, metavar="TASK=W",
                    help="task probabilities (default: the release's text2all=0.5 video2flow=0.25 flow2video=0.25; "
                         f"{RGB_ONLY_TASK}=W adds RGB-only text-to-video, {EXPLORE_TASK}=W (with --walks) one "
                         "exploration segment after a history, as explore() samples it)")
    ap.add_argument("--modality-weights", nargs="*", default=None, metavar="MODALITY=W",
                    help="modality probabilities (default: the release's)")
    ap.add_argument("--modality-embedding-std", type=float, default=None,
                    help="from scratch only: draw the modality embeddings from N(0, std^2) so the modalities "
                         "start apart (default 1.0, near the token scale; 0 keeps the release's zeros, "
                         "which trained 2x worse depth estimation at equal compute, see MODEL_CARD.md)")
    ap.add_argument("--walks", type=int, default=0,
                    help="render this many walk clips (seeds from 300000) for the explore_segment task")
    ap.add_argument("--walk-cache", type=Path, default=None,
                    help="safetensors cache of the encoded walk clips (written when missing)")
    ap.add_argument("--patch-size", type=int, nargs=3, default=None, metavar=("PT", "PH", "PW"),
                    help="from scratch: the transformer's patch (default the preset's 1 2 2); keep codec ratio x patch "
                         "at 16 pixels a token, e.g. 1 4 4 with a 4x codec")
    ap.add_argument("--resume", type=Path, default=None)
    ap.add_argument("--fsdp", action="store_true",
                    help="FSDP2 over the processes of `torchrun --nproc_per_node N` (gloo on CPU, nccl on CUDA); "
                         "--batch is the global batch")
    ap.add_argument("--mixed-precision", default=None, choices=["bf16"], help="with --fsdp: bf16 compute, fp32 reduce")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="recompute block activations in backward")
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw8bit"], help="adamw8bit: bitsandbytes, CUDA")
    ap.add_argument("--stream-latents", action="store_true",
                    help="read --latents rows from disk per batch instead of holding them all in RAM")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only encode the data into the --latents cache and stop (then start several runs on it)")
    args = ap.parse_args(argv)
    if args.prepare_only and not args.latents:
        ap.error("--prepare-only needs --latents (where to write the cache)")
    if not args.prepare_only and args.out is None:
        ap.error("--out is required (a new folder for the run)")
    if args.out is not None and (args.out / "transformer.safetensors").exists():
        raise SystemExit(f"{args.out} already holds a transformer; choose a new --out")
    # names checked before any data is prepared; aliases such as "flow" or "estimation" accepted
    modality_weights = _weights(args.modality_weights, TRAIN_MODALITY_WEIGHTS, resolve_modality)
    task_weights = _weights(args.task_weights, ALL_TASKS, resolve_task)
    if args.modalities:
        wanted = {_canonical(m, TRAIN_MODALITY_WEIGHTS, resolve_modality) for m in args.modalities}
        modality_weights = {m: w for m, w in modality_weights.items() if m in wanted}
    if args.tasks:
        chosen = {_canonical(t, ALL_TASKS, resolve_task) for t in args.tasks}
        silent = sorted(t for t in chosen if not task_weights.get(t))
        if silent:
            ap.error(f"--tasks {' '.join(silent)} would never be drawn (weight 0); give it one with --task-weights")
        task_weights = {t: w for t, w in task_weights.items() if t in chosen}
    task_weights = {t: w for t, w in task_weights.items() if w > 0}
    if args.modality_embedding_std is not None and (args.init or args.resume):
        ap.error("--modality-embedding-std sets the from-scratch initialisation; drop it with --init or --resume")
    if args.patch_size and args.init:
        ap.error("--patch-size shapes a new transformer; --init keeps the folder's own")
    if args.modality_embedding_std is None and not (args.init or args.resume):
        args.modality_embedding_std = 1.0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fsdp:
        args.device = _join_process_group(args.device)
    torch.manual_seed(args.seed)
    start = time.time()
    if args.init:  # fine-tune a pipeline folder's transformer with its own codec and text encoder
        pipe = UnityVideoPipeline.from_pretrained(args.init)
        if pipe.codec is None or pipe.text_encoder is None:
            raise SystemExit(f"{args.init} has no codec or text encoder; training needs both to encode the data")
        model, codec, text_encoder, preset = pipe.transformer.float().train(), pipe.codec, pipe.text_encoder, str(args.init)
    else:
        config = get_config("unityvideo-small")
        if args.patch_size:
            config = get_config({**config.to_kwargs(), "patch_size": tuple(args.patch_size)})
        model, codec, text_encoder, preset = UnityVideoTransformer.from_config(config), None, None, "unityvideo-small"
        if not args.resume:  # a resumed run loads every weight from its checkpoint
            model.reset_unity_parameters(modality_embedding_std=args.modality_embedding_std)
    if args.latents and args.latents.exists():
        data = LatentData.load(args.latents, stream=args.stream_latents)
    else:
        if args.csv:
            videos, prompts = CSVVideoDataset(args.csv, args.frames, args.size, args.modalities).stacked()
        else:
            pool = load_or_render_pool(args.pool, args.clips)
            videos, prompts = pool.videos, pool.prompts
        data = build_latent_data(codec or LatentCodec.from_pretrained(args.codec), text_encoder or MiniLMTextEncoder(),
                                 videos, prompts)
        if args.latents:
            data.save(args.latents)
    if args.walks:
        if args.walk_cache and args.walk_cache.exists():
            walks = LatentData.load(args.walk_cache)
            if walks.walk_rgb.shape[1:] != data.rgb.shape[1:] or len(walks.walk_rgb) != args.walks:
                raise SystemExit(f"{args.walk_cache} holds {len(walks.walk_rgb)} walks of latents "
                                 f"{tuple(walks.walk_rgb.shape[1:])}; this run wants {args.walks} of "
                                 f"{tuple(data.rgb.shape[1:])}: give another --walk-cache or the matching --walks")
            data.walk_rgb, data.walk_prompts = walks.walk_rgb, walks.walk_prompts
        else:
            rgb, walk_prompts = render_walks(range(WALK_SEED0, WALK_SEED0 + args.walks))
            add_walks(data, codec or LatentCodec.from_pretrained(args.codec), text_encoder or MiniLMTextEncoder(),
                      rgb, walk_prompts)
            if args.walk_cache:
                LatentData(data.rgb[:0], {}, data.prompts[:0], {}, data.empty_prompt, data.walk_rgb,
                           data.walk_prompts).save(args.walk_cache)
    prep_s = time.time() - start
    if args.prepare_only:
        print(json.dumps({"latents": str(args.latents), "clips": len(data), "prepare_seconds": round(prep_s, 1)}))
        return

    cfg = TrainConfig(batch_size=args.batch, lr=args.lr, seed=args.seed, modality_weights=modality_weights,
                      task_weights=task_weights, timestep_shift=args.timestep_shift,
                      mixed_precision=args.mixed_precision, gradient_checkpointing=args.gradient_checkpointing,
                      optimizer=args.optimizer)
    trainer = Trainer(model, data, cfg, device=args.device, use_accelerate=args.accelerate, fsdp=args.fsdp)
    if args.resume:
        trainer.resume(args.resume)
    t0 = time.time()
    history = trainer.train(args.steps, time_limit_s=args.time_limit, log_every=100)
    train_s = time.time() - t0
    if args.fsdp:  # every rank writes its shards and joins the EMA gather
        trainer.save(args.out / "trainer_checkpoint")
        ema = trainer.ema_model()
        if trainer.rank != 0:
            return
    if trainer.accelerator is not None and not trainer.accelerator.is_main_process:
        return  # one process writes the files
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.fsdp:
        trainer.save(args.out / "trainer_checkpoint.safetensors")
        ema = trainer.ema_model()
    save_transformer(ema, args.out / "transformer.safetensors", dtype=torch.bfloat16)
    last = history[-200:]
    report = {
        "preset": preset, "steps": trainer.step, "batch_size": args.batch, "lr": args.lr, "seed": args.seed,
        "timestep_shift": args.timestep_shift, "modality_embedding_std": args.modality_embedding_std,
        "clips": len(data), "walks": 0 if data.walk_rgb is None else len(data.walk_rgb), "train_seconds": round(train_s, 1), "prepare_seconds": round(prep_s, 1),
        "threads": torch.get_num_threads(), "device": str(trainer.device), "final_loss_mean_200": round(sum(h["loss"] for h in last) / len(last), 4),
        "modality_weights": modality_weights, "task_weights": task_weights,
        "patch_size": list(model.config.patch_size), "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    # a resumed run, or a fine-tune of a folder with a record: carry the earlier runs' compute
    source = args.resume.parent if args.resume else args.init
    earlier = source / "training.json" if source else None
    if earlier is not None and earlier.is_file():
        prev = json.loads(earlier.read_text())
        report["resumed_from" if args.resume else "initialised_from"] = str(args.resume or args.init)
        phase = ("steps", "train_seconds", "threads", "lr", "modality_embedding_std", "task_weights", "modality_weights")
        report["earlier_runs"] = prev.get("earlier_runs", []) + [{k: prev[k] for k in phase if k in prev}]
    report["train_seconds_total"] = round(train_s + sum(r["train_seconds"] for r in report.get("earlier_runs", [])), 1)
    (args.out / "training.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


def _join_process_group(device: str) -> str:
    """Join torchrun's process group for --fsdp; this rank's device."""
    import os

    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ:
        raise SystemExit("--fsdp runs under torchrun: torchrun --nproc_per_node N scripts/train_default.py --fsdp ...")
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


if __name__ == "__main__":
    main()
