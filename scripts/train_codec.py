"""Train the default latent codec on synthworld (reproduces unity_core/weights/default/codec).

    python scripts/train_codec.py --pool /tmp/pool.safetensors --out OUT_DIR [--steps 4000] [--init CODEC_DIR]

The pool is rendered (seeds 0..N-1) and cached at --pool when missing. Prints the compute used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_core.codec import LatentCodec, small_vae_config  # noqa: E402
from unity_core.train.codec import set_latent_statistics, train_codec  # noqa: E402
from unity_core.train.pool import load_or_render_pool  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, default=Path("/tmp/unityvideo_pool.safetensors"))
    ap.add_argument("--clips", type=int, default=240)
    ap.add_argument("--frames", type=int, default=17, help="frames per clip when the pool is rendered (4k+1)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None, help="fine-tune this codec folder instead of a fresh VAE")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--crop-size", type=int, default=32)
    ap.add_argument("--crop-frames", type=int, default=None,
                    help="frames per crop (4k+1; default the whole clip, which the VAE's chunk cache needs)")
    ap.add_argument("--rgb-share", type=float, default=0.4, help="share of crops drawn from RGB (the rest: modalities)")
    ap.add_argument("--decoder-only", action="store_true",
                    help="with --init: train only the decoder; latents (and transformers trained on them) stay valid")
    ap.add_argument("--spatial-ratio", type=int, choices=(4, 8), default=8, help="space compression of a fresh codec")
    ap.add_argument("--base-dim", type=int, default=16, help="channel width of a fresh codec's first stage")
    ap.add_argument("--encode-window", type=int, default=None,
                    help="with --decoder-only: encode longer crops in windows of this many frames (the encoder's "
                         "trained clip length, e.g. 17), so the decoder learns long runs of in-regime latents")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.decoder_only and not args.init:
        raise SystemExit("--decoder-only fine-tunes an existing codec: give --init CODEC_DIR")
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty; pick a new --out folder")
    torch.manual_seed(args.seed)
    pool = load_or_render_pool(args.pool, args.clips, num_frames=args.frames)
    codec = LatentCodec.from_pretrained(args.init) if args.init else LatentCodec.from_config(
        small_vae_config(args.spatial_ratio, args.base_dim))
    stats = train_codec(codec, pool, args.steps, seed=args.seed, time_limit_s=args.time_limit, lr=args.lr,
                        crop_size=args.crop_size, crop_frames=args.crop_frames, rgb_share=args.rgb_share,
                        decoder_only=args.decoder_only, encode_window=args.encode_window)
    if not args.decoder_only:  # a frozen encoder keeps the latent statistics
        set_latent_statistics(codec, pool)
    codec.save_pretrained(args.out)
    stats.update(init=str(args.init) if args.init else None, decoder_only=args.decoder_only,
                 encode_window=args.encode_window, pool=str(args.pool), clips=len(pool),
                 threads=torch.get_num_threads(), params_m=round(sum(p.numel() for p in codec.parameters()) / 1e6, 2))
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
