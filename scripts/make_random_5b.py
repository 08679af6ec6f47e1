"""Write random-weight files in the real layouts of the UnityVideo-5B stack (tests and benches
of the full-size path without the 30 GB of real downloads).

    python scripts/make_random_5b.py DIR            # full size: about 21 GB, 2-4 minutes of CPU
    python scripts/make_random_5b.py DIR --tiny     # same layouts and key names, tiny dims (~40 MB)

What lands in DIR (never put it inside the repository):

- ``unityvideo_wan22_ti2v_5b_random.safetensors``: the release's single file (KlingTeam/UnityVideo,
  ``base.*`` + additions), bf16, key names from ``tests/fixtures/unityvideo_5b_keys.json``, no
  metadata, tensors in safetensors' own order (by name): 10,020,954,352 bytes at full size, the
  release's size to the byte.
- ``comfyui/models/vae/wan2.2_vae.safetensors``: the Wan2.2 VAE in Wan's original names, bf16,
  the file ComfyUI's ``VAELoader`` reads.
- ``comfyui/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors``: UMT5-XXL's encoder
  as ComfyUI's ``*_fp8_e4m3fn_scaled`` files hold it: linear weights fp8 e4m3fn each with a
  float32 scalar ``scale_weight``, a ``scaled_fp8`` marker tensor, embedding / norms / relative
  attention bias bf16, and a ``spiece_model`` uint8 tensor holding a sentencepiece model trained
  here on a few hundred made-up sentences (the ids only need to be in range of the embedding).
- ``comfyui/models/diffusion_models/``: a symlink to the transformer file (ComfyUI's folder).
- ``diffusers/vae/``: the same VAE weights (float32) as a diffusers ``AutoencoderKLWan`` folder.
- ``pipeline/``: a library pipeline folder (``pipeline.json`` + symlinks to the files above)
  that ``UnityVideoPipeline.from_pretrained`` loads.
- with ``--yume``: ``yume_5b_random.safetensors``, Yume-5B (stdstu12/YUME, Yume 1.5) as the release
  ships it: stock Wan2.2-TI2V-5B in original Wan names plus the five history patch embeddings
  (``tests/fixtures/yume_5b_keys.json``, 5,200,377,072 parameters, bf16, about 10.4 GB), linked
  into ``comfyui/models/diffusion_models/``, and ``pipeline_yume/`` beside ``pipeline/``.
- ``MANIFEST.json``: what was written, sizes, the seed, and how to delete it all.

Every tensor is drawn from its own seeded generator and written straight to disk (large ones in
row chunks), so RAM never holds more than one chunk. Each file is written as ``NAME.partial``
and renamed when complete.

DIR must be empty or absent. ``--resume`` keeps the files already complete (a run that stopped)
and writes the rest; ``--force`` deletes the files this script writes (names from its own list,
nothing else) and writes them again. Free disk space is checked first. To delete:
``rm -rf DIR`` (printed at the end).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
MANIFEST_5B = REPO / "tests" / "fixtures" / "unityvideo_5b_keys.json"
TRANSFORMER_FILE = "unityvideo_wan22_ti2v_5b_random.safetensors"
MANIFEST_YUME = REPO / "tests" / "fixtures" / "yume_5b_keys.json"
YUME_FILE = "yume_5b_random.safetensors"
COMFY_VAE = "comfyui/models/vae/wan2.2_vae.safetensors"
COMFY_TE = "comfyui/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"
COMFY_DIT = "comfyui/models/diffusion_models/" + TRANSFORMER_FILE
DIFFUSERS_VAE = "diffusers/vae"
PIPELINE = "pipeline"
CHUNK_BYTES = 64 << 20  # fp32 bytes generated at once

_ST_DTYPE = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.uint8: "U8",
             torch.float8_e4m3fn: "F8_E4M3"}

# UMT5-XXL (google/umt5-xxl, as Wan2.2 uses it) and the tiny variant: d_model stays 4096 (the
# DiT's text width, and what ComfyUI's detection reads off ``wi_1``) and so do the 24 layers
# (ComfyUI looks for ``encoder.block.23``); the rest shrinks.
UMT5_FULL = dict(vocab_size=256384, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24)
UMT5_TINY = dict(vocab_size=384, d_model=4096, d_kv=8, num_heads=2, d_ff=32, num_layers=24)
SPM_VOCAB = 300
# the tiny DiT: width 256 with the shipped default's 4 heads, a known width, so the loader infers
# the heads from the shapes as it does for the real 5B files (which carry no config either)
DIT_TINY = dict(dim=256, num_layers=2, num_heads=4, ffn_dim=512, in_channels=48, out_channels=48, text_dim=4096)
VAE_TINY = dict(base_dim=16, decoder_base_dim=32)


@dataclass
class TensorSpec:
    """One tensor to write: ``fill(generator, rows) -> tensor [rows, *shape[1:]]`` in ``dtype``
    (rows of the first dim, in order; called once per chunk)."""

    name: str
    shape: Tuple[int, ...]
    dtype: torch.dtype
    fill: Callable[[torch.Generator, int], torch.Tensor]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


# ----------------------------------------------------------------------------------------------
# Value recipes (random weights that keep activations finite through the full-size networks)
# ----------------------------------------------------------------------------------------------


def _normal(shape, std, dtype):
    def fill(g, rows):
        return (torch.randn((rows, *shape[1:]), generator=g) * std).to(dtype)
    return fill


def _const(shape, value, dtype):
    def fill(g, rows):
        return torch.full((rows, *shape[1:]), float(value), dtype=dtype)
    return fill


def _fan_in(shape) -> int:
    return max(1, math.prod(shape[1:]))


def dit_fill(name: str, shape: Sequence[int], dtype=torch.bfloat16):
    """Recipe for a release-layout DiT tensor: norms 1, biases N(0, 0.01), modulation tables and
    modality embeddings N(0, 0.02) (zero ``flow_in``, as the release initialises it, would hide
    a wrong load), matrices and convs N(0, 1/fan_in)."""
    shape = tuple(shape)
    if "norm" in name and name.endswith(".weight") and len(shape) == 1:
        return _const(shape, 1.0, dtype)
    if "modulation" in name or name.startswith("modality_embeddings."):
        return _normal(shape, 0.02, dtype)
    if name.endswith(".bias") or len(shape) == 1:
        return _normal(shape, 0.01, dtype)
    return _normal(shape, _fan_in(shape) ** -0.5, dtype)


def vae_fill(name: str, shape: Sequence[int], dtype):
    """VAE (diffusers names): RMS-norm gammas 1, biases 0, convs N(0, 1/fan_in)."""
    shape = tuple(shape)
    if name.endswith(".gamma"):
        return _const(shape, 1.0, dtype)
    if name.endswith(".bias"):
        return _const(shape, 0.0, dtype)
    return _normal(shape, _fan_in(shape) ** -0.5, dtype)


def _fp8_scaled(shape, std):
    """fp8 e4m3fn values of N(0, 1) clipped at 4 sigma, times 100 (inside e4m3fn's +-448);
    the matching ``scale_weight`` is ``std / 100``."""
    def fill(g, rows):
        return (torch.randn((rows, *shape[1:]), generator=g).clamp_(-4, 4) * 100).to(torch.float8_e4m3fn)
    return fill


# ----------------------------------------------------------------------------------------------
# Specs per file
# ----------------------------------------------------------------------------------------------


def dit_keys(tiny: bool) -> List[Tuple[str, Tuple[int, ...]]]:
    """(release name, shape) of the transformer file, in the release's order. Full size: the key
    manifest, checked against our model built on the meta device; tiny: that model's own keys."""
    from unity_core.model import UnityVideoTransformer, get_config
    from unity_core.model.keys import ours_to_official_key

    cfg = get_config(dict(DIT_TINY) if tiny else "wan2.2-ti2v-5b")
    with torch.device("meta"):
        model = UnityVideoTransformer.from_config(cfg)
    ours = [(ours_to_official_key(k), tuple(v.shape)) for k, v in model.state_dict().items()]
    if tiny:
        return ours
    manifest = [(k, tuple(s)) for k, s in json.loads(MANIFEST_5B.read_text())["keys"]]
    if sorted(manifest) != sorted(ours):
        diff = sorted(set(manifest) ^ set(ours))[:10]
        raise SystemExit(f"the key manifest {MANIFEST_5B} and the 5B model disagree (first: {diff})")
    return manifest


def yume_keys(tiny: bool) -> List[Tuple[str, Tuple[int, ...]]]:
    """(original Wan name, shape) of a Yume-5B file: stock Wan2.2 names plus the history convs.
    Full size: the key set recorded from the official class, checked against our model; tiny:
    that model's own keys."""
    from unity_core.model import UnityVideoTransformer, get_config
    from unity_core.model.keys import ours_to_wan_key

    cfg = get_config({**DIT_TINY, "modality_stream": False, "history_embeddings": True} if tiny else "yume-5b")
    with torch.device("meta"):
        model = UnityVideoTransformer.from_config(cfg)
    ours = [(ours_to_wan_key(k), tuple(v.shape)) for k, v in model.state_dict().items()]
    if tiny:
        return ours
    data = json.loads(MANIFEST_YUME.read_text())
    recorded = [(k, tuple(v)) for part in ("stock_wan22_ti2v_5b_keys", "yume_extra_keys") for k, v in data[part].items()]
    if sorted(recorded) != sorted(ours):
        diff = sorted(set(recorded) ^ set(ours))[:10]
        raise SystemExit(f"the Yume key set {MANIFEST_YUME} and the yume-5b model disagree (first: {diff})")
    return recorded


def dit_specs(tiny: bool) -> List[TensorSpec]:
    """The transformer file's tensors (bf16, :func:`dit_fill` values)."""
    return [TensorSpec(k, s, torch.bfloat16, dit_fill(k, s)) for k, s in dit_keys(tiny)]


def vae_config(tiny: bool) -> dict:
    """The Wan2.2 VAE's ``AutoencoderKLWan`` config, full size or tiny (``VAE_TINY`` widths)."""
    from unity_core.codec import wan22_vae_config

    return wan22_vae_config(**(VAE_TINY if tiny else {}))


def vae_specs(tiny: bool, layout: str) -> List[TensorSpec]:
    """``layout`` "comfy" (Wan's names, bf16) or "diffusers" (float32). Both draw the same values
    per tensor (seeded by the diffusers name), so the two files hold one VAE."""
    from diffusers import AutoencoderKLWan

    from unity_core.codec import wan_vae_key_to_original

    cfg = vae_config(tiny)
    with torch.device("meta"):
        vae = AutoencoderKLWan(**cfg)
    dtype = torch.bfloat16 if layout == "comfy" else torch.float32
    out = []
    for k, v in vae.state_dict().items():
        name = wan_vae_key_to_original(k, cfg["num_res_blocks"]) if layout == "comfy" else k
        spec = TensorSpec(name, tuple(v.shape), dtype, vae_fill(k, v.shape, dtype))
        spec.seed_name = k
        out.append(spec)
    return out


def umt5_specs(tiny: bool, spiece: bytes) -> List[TensorSpec]:
    """ComfyUI's fp8-scaled UMT5 encoder file (transformers' key names, which ComfyUI's T5 uses)."""
    c = UMT5_TINY if tiny else UMT5_FULL
    d, inner, ff, bf16 = c["d_model"], c["d_kv"] * c["num_heads"], c["d_ff"], torch.bfloat16
    specs = [TensorSpec("shared.weight", (c["vocab_size"], d), bf16, _normal((c["vocab_size"], d), 1.0, bf16))]

    def linear(name, shape):
        std = shape[1] ** -0.5
        specs.append(TensorSpec(name + ".weight", shape, torch.float8_e4m3fn, _fp8_scaled(shape, std)))
        specs.append(TensorSpec(name + ".scale_weight", (), torch.float32,
                                lambda g, rows, s=std: torch.tensor(s / 100, dtype=torch.float32)))

    for i in range(c["num_layers"]):
        p = f"encoder.block.{i}.layer."
        for m in "qkv":
            linear(f"{p}0.SelfAttention.{m}", (inner, d))
        linear(f"{p}0.SelfAttention.o", (d, inner))
        specs.append(TensorSpec(f"{p}0.SelfAttention.relative_attention_bias.weight", (32, c["num_heads"]), bf16,
                                _normal((32, c["num_heads"]), 0.1, bf16)))
        specs.append(TensorSpec(f"{p}0.layer_norm.weight", (d,), bf16, _const((d,), 1.0, bf16)))
        linear(f"{p}1.DenseReluDense.wi_0", (ff, d))
        linear(f"{p}1.DenseReluDense.wi_1", (ff, d))
        linear(f"{p}1.DenseReluDense.wo", (d, ff))
        specs.append(TensorSpec(f"{p}1.layer_norm.weight", (d,), bf16, _const((d,), 1.0, bf16)))
    specs.append(TensorSpec("encoder.final_layer_norm.weight", (d,), bf16, _const((d,), 1.0, bf16)))
    specs.append(TensorSpec("scaled_fp8", (0,), torch.float8_e4m3fn,
                            lambda g, rows: torch.empty(0, dtype=torch.float8_e4m3fn)))
    raw = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    specs.append(TensorSpec("spiece_model", (len(spiece),), torch.uint8, lambda g, rows: raw[:rows].clone()))
    return specs


def train_spiece(vocab_size: int = SPM_VOCAB, seed: int = 0) -> bytes:
    """A sentencepiece unigram model with T5's special ids (pad 0, eos 1, unk 2, no bos), trained
    on made-up sentences from the modality prompts' words. Only the ids' range matters here."""
    import random

    import sentencepiece as spm

    from unity_core.constants import MODALITY_PROMPTS

    words = sorted({w.strip(".,").lower() for p in MODALITY_PROMPTS.values() for w in p.split()} |
                   set("a person walks runs jumps in the park city street room dog cat car tree sky water "
                       "red blue green light dark fast slow camera moves left right forward back".split()))
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) for _ in range(3000)]
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("\n".join(lines))
        spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(Path(tmp) / "m"), vocab_size=vocab_size,
                                       model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                       hard_vocab_limit=False, minloglevel=2, num_threads=1)
        return (Path(tmp) / "m.model").read_bytes()


# ----------------------------------------------------------------------------------------------
# The streaming writer
# ----------------------------------------------------------------------------------------------


def safetensors_layout(specs: Sequence[TensorSpec], metadata: Optional[dict] = None) -> Tuple[bytes, List[TensorSpec]]:
    """The file's first bytes (8-byte header length + JSON header, space-padded to 8 bytes as
    safetensors pads it) and the tensors in file order: safetensors' own order, by dtype size
    (largest first) then by name, so the full-size DiT file is 10,020,954,352 bytes, the
    release's size to the byte."""
    specs = sorted(specs, key=lambda s: (-torch.empty((), dtype=s.dtype).element_size(), s.name))
    header, offset = {}, 0
    for s in specs:
        header[s.name] = {"dtype": _ST_DTYPE[s.dtype], "shape": list(s.shape),
                          "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob, specs


def write_safetensors(path: Path, specs: Sequence[TensorSpec], seed: int,
                      metadata: Optional[dict] = None) -> int:
    """Write ``specs`` as one safetensors file (:func:`safetensors_layout`), generating each
    tensor chunk by chunk from a generator seeded by ``seed`` and its name. Written as
    ``path.partial``, renamed when complete. Returns the file size in bytes."""
    head, specs = safetensors_layout(specs, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".partial")
    with open(part, "wb") as f:
        f.write(head)
        for s in specs:
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(getattr(s, "seed_name", s.name).encode()))
            rows_total = s.shape[0] if s.shape else 1
            row_bytes = max(1, math.prod(s.shape[1:]) * 4)
            step = max(1, CHUNK_BYTES // row_bytes)
            written = 0
            for r0 in range(0, rows_total, step):
                rows = min(step, rows_total - r0)
                t = s.fill(g, rows).contiguous()
                if not s.shape:
                    t = t.reshape(())
                f.write(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
                written += t.numel() * t.element_size()
            if written != s.nbytes:
                raise RuntimeError(f"{s.name}: wrote {written} bytes, expected {s.nbytes}")
    os.replace(part, path)
    return path.stat().st_size


def _planned_bytes(specs: Sequence[TensorSpec]) -> int:
    return sum(s.nbytes for s in specs) + 200_000


def _symlink(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def make_random_5b(folder: Path, tiny: bool = False, seed: int = 0, resume: bool = False, force: bool = False,
                   log=print, yume: bool = False) -> dict:
    """Write the files listed in the module docstring into ``folder``; returns the manifest.

    Raises:
        SystemExit: ``folder`` inside the repository, not empty (without resume/force), or too
            little free disk space (the message says how much is needed).
    """
    from diffusers import AutoencoderKLWan

    folder = Path(folder).resolve()
    if folder == REPO or REPO in folder.parents:
        raise SystemExit(f"{folder} is inside the repository; write the random weights elsewhere (e.g. /tmp/random5b)")
    ours = [TRANSFORMER_FILE, COMFY_VAE, COMFY_TE, COMFY_DIT, DIFFUSERS_VAE, PIPELINE, "MANIFEST.json",
            YUME_FILE, "comfyui/models/diffusion_models/" + YUME_FILE, PIPELINE + "_yume"]
    if folder.exists() and any(folder.iterdir()) and not (resume or force):
        raise SystemExit(f"{folder} is not empty: pass --resume to finish an earlier run there, --force to rewrite "
                         "its files, or choose an empty folder")
    if force:
        for name in ours:
            p = folder / name
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
    folder.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    spiece = train_spiece(seed=seed)
    plans = [(TRANSFORMER_FILE, dit_specs(tiny)), (COMFY_VAE, vae_specs(tiny, "comfy")),
             (DIFFUSERS_VAE + "/diffusion_pytorch_model.safetensors", vae_specs(tiny, "diffusers")),
             (COMFY_TE, umt5_specs(tiny, spiece))]
    if yume:
        plans.append((YUME_FILE, [TensorSpec(k, sh, torch.bfloat16, dit_fill(k, sh)) for k, sh in yume_keys(tiny)]))
    todo = {name for name, _ in plans if not (resume and (folder / name).is_file())}
    need = sum(_planned_bytes(specs) for name, specs in plans if name in todo)
    free = shutil.disk_usage(folder).free
    if need + (1 << 30) > free:
        raise SystemExit(f"not enough disk space in {folder}: need {need / 1e9:.1f} GB (+1 GB margin), "
                         f"{free / 1e9:.1f} GB free")
    log(f"writing {need / 1e9:.2f} GB into {folder} ({'tiny' if tiny else 'full size'}, seed {seed})")
    files = {}
    for name, specs in plans:
        path = folder / name
        if name in todo:
            t = time.time()
            size = write_safetensors(path, specs, seed)
            log(f"  {name}: {len(specs)} tensors, {size / 1e9:.3f} GB, {time.time() - t:.0f} s")
        files[name] = {"bytes": path.stat().st_size, "tensors": len(specs)}

    # the diffusers VAE folder's config, written from the same config dict as the weights
    with torch.device("meta"):
        AutoencoderKLWan(**vae_config(tiny)).save_config(folder / DIFFUSERS_VAE)
    _symlink(folder / TRANSFORMER_FILE, folder / COMFY_DIT)
    pipe = folder / PIPELINE
    pipelines = [(pipe, TRANSFORMER_FILE)]
    if yume:
        _symlink(folder / YUME_FILE, folder / "comfyui/models/diffusion_models" / YUME_FILE)
        pipelines.append((folder / (PIPELINE + "_yume"), YUME_FILE))
    for pipe_dir, transformer in pipelines:
        _symlink(folder / transformer, pipe_dir / "transformer.safetensors")
        _symlink(folder / DIFFUSERS_VAE, pipe_dir / "vae")
        _symlink(folder / COMFY_TE, pipe_dir / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
        (pipe_dir / "pipeline.json").write_text(json.dumps({
            "transformer": "transformer.safetensors", "codec": "vae",
            "text_encoder": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
            "defaults": {"num_frames": 33, "height": 256, "width": 256, "fps": 8.0},
            "note": "random weights (scripts/make_random_5b.py): for layout, memory and speed checks only",
        }, indent=1))
    manifest = {"tiny": tiny, "seed": seed, "files": files, "seconds": round(time.time() - t0, 1),
                "delete_with": f"rm -rf {folder}", "comfyui_base_directory": str(folder / "comfyui"),
                "pipeline": str(pipe), "umt5_config": UMT5_TINY if tiny else UMT5_FULL,
                "dit_config": DIT_TINY if tiny else "wan2.2-ti2v-5b", "vae_config": vae_config(tiny)}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=1))
    log(f"done in {manifest['seconds']} s; {sum(f['bytes'] for f in files.values()) / 1e9:.2f} GB. "
        f"To delete: rm -rf {folder}")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path, help="target folder (empty or absent; never inside the repository)")
    ap.add_argument("--tiny", action="store_true", help="tiny dims, same layouts and key names (tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--yume", action="store_true", help="also Yume-5B's file (+10.4 GB) and a pipeline_yume/ folder")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="keep complete files in DIR, write the missing ones")
    group.add_argument("--force", action="store_true", help="delete this script's files in DIR and write them again")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    manifest = make_random_5b(args.dir, tiny=args.tiny, seed=args.seed, resume=args.resume, force=args.force,
                              yume=args.yume)
    print(json.dumps({k: manifest[k] for k in ("tiny", "seed", "seconds", "files", "delete_with")}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
