"""Training the small latent codec (a Wan-style VAE) on random crops of a clip pool.

The VAE is fully convolutional, so it trains on small spatial crops (32 x 32 by default), but
it must see clips as long as it will code: its causal convolutions carry a feature cache from
one 4-frame chunk to the next, and a VAE trained on 5-frame crops (one first frame and one
chunk) never learns the cache of a second chunk, so every latent frame after the second decodes
to noise. Nine-frame crops are not enough either: a 4x codec trained on them coded frames 0-8 of
17-frame clips at an L1 of about 0.05 and frames 9-16 at 0.15-0.22 (on [0, 1]). Crops therefore
span the pool's whole clip length (17 frames by default). Loss: L1 reconstruction plus a small
KL term; afterwards the per-channel latent mean/std of the pool are
written into the VAE config so the DiT sees normalised latents.

``decoder_only`` fine-tunes the decoder (and ``post_quant_conv``) with the encoder frozen: the
latent space, and so every transformer trained on it, stays valid, while the reconstruction
improves.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch

from unity_core.codec import LatentCodec, frames_to_video
from unity_core.train.pool import ClipPool


def _crop_batch(pool: ClipPool, batch: int, frames: int, size: int, g: torch.Generator, rgb_share: float = 0.4):
    # by name, never by position: a pool loaded from disk holds its streams in another order
    modalities = [s for s in pool.videos if s != "rgb"]
    out = []
    n, f, h, w, _ = pool.videos["rgb"].shape
    for _ in range(batch):
        stream = "rgb" if torch.rand(1, generator=g) < rgb_share else modalities[int(torch.randint(len(modalities), (1,), generator=g))]
        i = int(torch.randint(n, (1,), generator=g))
        t0 = int(torch.randint(f - frames + 1, (1,), generator=g))
        y0, x0 = int(torch.randint(h - size + 1, (1,), generator=g)), int(torch.randint(w - size + 1, (1,), generator=g))
        out.append(pool.videos[stream][i, t0:t0 + frames, y0:y0 + size, x0:x0 + size].float() / 255.0)
    return frames_to_video(torch.stack(out))


def train_codec(codec: LatentCodec, pool: ClipPool, steps: int, batch: int = 8, crop_frames: Optional[int] = None, crop_size: int = 32,
                lr: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0, log: Optional[Callable[[str], None]] = print,
                time_limit_s: Optional[float] = None, rgb_share: float = 0.4, decoder_only: bool = False,
                encode_window: Optional[int] = None) -> dict:
    """Train ``codec`` in place; returns {"steps", "seconds", "final_l1"}. Stops early at
    ``time_limit_s`` (wall clock) if given. ``crop_frames`` (4k+1) defaults to the pool's clip
    length; ``rgb_share`` is the share of crops drawn from RGB, the rest from the modality
    visualisations. ``decoder_only`` freezes the encoder (and ``quant_conv``), so latents, their
    statistics and any transformer trained on them are unchanged. ``encode_window`` (4k+1 frames)
    encodes crops longer than that window by window (:meth:`LatentCodec.posterior`), so a
    decoder-only run on long crops learns to decode long runs of the latents the encoder gives
    in its trained regime."""
    crop_frames = crop_frames or pool.videos["rgb"].shape[1]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = codec.vae.train()
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters()) if decoder_only else list(vae.parameters())
    if decoder_only:
        vae.encoder.eval()
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    start, ema_l1 = time.time(), None
    step = 0
    for step in range(1, steps + 1):
        x = _crop_batch(pool, batch, crop_frames, crop_size, g, rgb_share)
        with torch.set_grad_enabled(not decoder_only):
            dist = codec.posterior(x, encode_window)
        y = vae.decode(dist.sample(g)).sample
        l1 = (y - x).abs().mean()
        loss = l1 if decoder_only else l1 + kl_weight * dist.kl().mean() / x[0].numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema_l1 = l1.item() if ema_l1 is None else 0.98 * ema_l1 + 0.02 * l1.item()
        if log and (step % 100 == 0 or step == 1):
            log(f"codec step {step}/{steps}  l1 {ema_l1:.4f}  {time.time() - start:.0f}s")
        if time_limit_s and time.time() - start > time_limit_s:
            break
    vae.eval()
    vae.requires_grad_(True)
    return {"steps": step, "seconds": round(time.time() - start, 1), "final_l1": round(ema_l1 or 0.0, 5)}


@torch.no_grad()
def set_latent_statistics(codec: LatentCodec, pool: ClipPool, clips: int = 64) -> None:
    """Measure the per-channel latent mean/std over ``clips`` pool clips of every stream and
    store them in the VAE config (``latents_mean`` / ``latents_std``)."""
    cfg = codec.vae.config
    codec.vae.register_to_config(latents_mean=[0.0] * cfg.z_dim, latents_std=[1.0] * cfg.z_dim)
    zs = []
    for stream in pool.videos:
        x = frames_to_video(pool.frames(stream, slice(0, clips)))
        zs.append(codec.encode(x).transpose(0, 1).reshape(cfg.z_dim, -1))
    z = torch.cat(zs, 1)
    codec.vae.register_to_config(latents_mean=z.mean(1).tolist(), latents_std=z.std(1).clamp_min(1e-3).tolist())
