"""The UnityVideo-5B path at its real size on the CPU, with random weights in the real layouts.

    python bench/full_size_5b.py --make-weights /tmp/random5b/full     # write the files first (~21 GB)
    python bench/full_size_5b.py --weights /tmp/random5b/full          # files already there
    python bench/full_size_5b.py --weights DIR --comfy-layouts COMFY   # ComfyUI's loaders read the files
    python bench/full_size_5b.py --weights DIR --comfy-url http://127.0.0.1:8188   # graphs via /prompt

Library run (the default): depth estimation (``video2flow``) through ``unity_core`` at the
smallest legal size for the Wan2.2 VAE and patch 2 (32x32 pixels, ``--frames`` 1 or 4k+1), 2 Euler
steps, DiT in bf16, in this order so that no two big parts are in RAM together:

1. ``UnityVideoPipeline.from_pretrained`` (timed part by part) loads the DiT (bf16, 10 GB; it
   stays backed by its memory-mapped file until sampling touches it), the Wan2.2 VAE (diffusers
   folder) and UMT5-XXL from ComfyUI's fp8 file (dequantised to bf16: 11.4 GB);
2. encode the prompt and the modality prompt into the pipeline's prompt cache and free UMT5-XXL
   (``UnityVideoPipeline.free_text_encoder``);
3. ``UnityVideoPipeline.estimate`` with the cached prompts (VAE encode, sampling, VAE decode).

The last stdout line is one JSON object: seconds per stage, peak RSS (whole run and per stage,
sampled every 50 ms from ``/proc/self/status``; ``ru_maxrss`` too), latent and output shapes.

``--comfy-layouts COMFY`` (a ComfyUI folder, e.g. ``/tmp/comfyui/ComfyUI``) instead loads the
VAE with core ``VAELoader``'s logic (``comfy.sd.VAE(sd=load_torch_file(...))``) and UMT5 with
``CLIPLoader``'s (``comfy.sd.load_clip(..., clip_type=CLIPType.WAN)``), encodes a prompt
(``[1, L, 4096]``) and decodes a ``[1, 48, 1, 2, 2]`` latent, in-process with ``args.cpu``. With
tiny files it also loads them with the library and prints the differences. ComfyUI is a test
tool here (GPL-3.0): it is imported only in this mode, never by ``unity_core``.

``--comfy-url URL`` (marked part, the ComfyUI half of the issue): queues ``workflows/5b/*_api.json``
through ``POST /prompt`` with the random files' names, 2 steps and 32x32 pixels, and waits for
``/history``. The graphs are being regenerated for the native ComfyUI model; a graph whose node
classes the server does not know is reported and the run exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a person walks in the park"


class RSSMonitor:
    """Samples ``VmRSS`` / ``RssAnon`` of this process every ``interval`` seconds in a thread;
    :meth:`stage` returns the peak (GB) since the previous call."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self.stage_peak, self.peak_anon = interval, 0.0, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def read():
        rss = anon = 0.0
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 2**20
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) / 2**20
        return rss, anon

    def _run(self):
        while not self._stop.is_set():
            rss, anon = self.read()
            self.peak, self.stage_peak = max(self.peak, rss), max(self.stage_peak, rss)
            self.peak_anon = max(self.peak_anon, anon)
            time.sleep(self.interval)

    def stage(self) -> float:
        rss, _ = self.read()
        out = round(max(self.stage_peak, rss), 2)
        self.stage_peak = rss
        return out

    def stop(self):
        self._stop.set()
        self._thread.join()


def _wait_for_memory(need_gb: float, log) -> float:
    """Wait (up to 20 minutes) until ``MemAvailable`` reaches ``need_gb``: others share the machine."""
    for _ in range(240):
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 2**20
        if avail >= need_gb:
            return avail
        log(f"waiting: {avail:.1f} GB available, need {need_gb:.0f} GB")
        time.sleep(5)
    raise SystemExit(f"less than {need_gb} GB of RAM stayed available for 20 minutes; try again later")


@contextlib.contextmanager
def _timed_part_loads(mark):
    """Within the block, each part ``UnityVideoPipeline.from_files`` loads is timed and marked
    (``mark(stage, start)``) as it finishes, in its order: the transformer (``dit_load``), the
    codec (``vae_load``), the text encoder (``text_encoder_load``). The loaders are wrapped for
    the block only, so the bench times the library's own loading, not a copy of it."""
    from unittest import mock

    import unity_core.pipeline as P
    import unity_core.text as T

    def timed(load, stage):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            out = load(*args, **kwargs)
            mark(stage, start)
            return out
        return wrapper

    with mock.patch.object(P, "load_transformer", timed(P.load_transformer, "dit_load")), \
            mock.patch.object(P.LatentCodec, "from_pretrained", timed(P.LatentCodec.from_pretrained, "vae_load")), \
            mock.patch.object(T, "load_text_encoder", timed(T.load_text_encoder, "text_encoder_load")):
        yield


def run_library(weights: Path, frames: int, steps: int, log) -> dict:
    """The library half (see the module docstring); returns the JSON record."""
    import torch

    from unity_core.pipeline import UnityVideoPipeline

    folder = weights / "pipeline"
    mon, stages, rss = RSSMonitor(), {}, {}

    def mark(name, start):
        stages[name] = round(time.perf_counter() - start, 2)
        rss[name] = mon.stage()
        log(f"{name}: {stages[name]} s, peak RSS {rss[name]} GB")

    with _timed_part_loads(mark):  # the library's own loading, timed part by part
        pipe = UnityVideoPipeline.from_pretrained(folder, dtype=torch.bfloat16)
    transformer, codec = pipe.transformer, pipe.codec
    t = time.perf_counter()
    context = pipe.encode_prompt(PROMPT)
    pipe.modality_context("depth")
    mark("text_encoder_encode", t)
    t = time.perf_counter()
    pipe.free_text_encoder()  # the prompts stay cached for estimate()
    mark("text_encoder_free", t)
    shapes = {}

    def timed(fn, key):
        def wrapper(x, *a, **kw):
            start = time.perf_counter()
            out = fn(x, *a, **kw)
            stages[key] = round(stages.get(key, 0.0) + time.perf_counter() - start, 2)
            shapes.setdefault(key + "_in", list(x.shape))
            shapes.setdefault(key + "_out", list(out.shape))
            return out
        return wrapper

    codec.encode = timed(codec.encode, "vae_encode")
    codec.decode = timed(codec.decode, "vae_decode")
    video = torch.rand(frames, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    t = time.perf_counter()
    out = pipe.estimate(video, "depth", prompt=PROMPT, steps=steps, seed=0, num_frames=frames, size=(32, 32))
    total = time.perf_counter() - t
    stages["sample"] = round(total - stages["vae_encode"] - stages["vae_decode"], 2)
    rss["estimate"] = mon.stage()
    mon.stop()
    finite = bool(torch.isfinite(out.modality_frames).all())
    return {
        "bench": "full_size_5b", "mode": "library", "date": time.strftime("%Y-%m-%d"), "task": "video2flow/depth",
        "steps": steps, "size": [frames, 32, 32], "dit_dtype": "bfloat16", "threads": torch.get_num_threads(),
        "seconds": stages, "peak_rss_gb": round(mon.peak, 2), "peak_rss_anon_gb": round(mon.peak_anon, 2),
        "ru_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_rss_by_stage_gb": rss,
        "context_shape": list(context.shape), "latent_shape": shapes["vae_decode_in"],
        "output_shape": list(out.modality_frames.shape), "output_finite": finite,
        "dit_parameters": sum(p.numel() for p in transformer.parameters()),
    }


# ----------------------------------------------------------------------------------------------
# ComfyUI's own loaders on the files (test tool; only in this mode)
# ----------------------------------------------------------------------------------------------


def run_comfy_layouts(weights: Path, comfy: Path, log) -> dict:
    """Load the VAE and UMT5 files with ComfyUI's core loaders (see the module docstring)."""
    sys.path.insert(0, str(comfy))
    from comfy.cli_args import args

    args.cpu = True
    import torch

    import comfy.ldm.wan.vae2_2
    import comfy.sd
    import comfy.utils

    manifest = json.loads((weights / "MANIFEST.json").read_text())
    tiny = bool(manifest["tiny"])
    mon, out = RSSMonitor(), {"bench": "full_size_5b", "mode": "comfy_layouts", "tiny": tiny,
                              "date": time.strftime("%Y-%m-%d"), "seconds": {}}
    vae_path = weights / "comfyui/models/vae/wan2.2_vae.safetensors"
    te_path = weights / "comfyui/models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"
    latent = torch.randn(1, 48, 1, 2, 2, generator=torch.Generator().manual_seed(0))

    # VAELoader: load_torch_file + comfy.sd.VAE(sd=...). ComfyUI hard-codes the Wan2.2 VAE's
    # widths when it detects one; for the tiny file only those widths are set to the tiny ones.
    t = time.perf_counter()
    sd = comfy.utils.load_torch_file(str(vae_path), safe_load=True)
    if tiny:
        full_vae, cfg = comfy.ldm.wan.vae2_2.WanVAE, manifest["vae_config"]
        comfy.ldm.wan.vae2_2.WanVAE = lambda **kw: full_vae(
            **{**kw, "dim": cfg["base_dim"], "dec_dim": cfg["decoder_base_dim"]})
    vae = comfy.sd.VAE(sd=sd)
    keys_model = set(vae.first_stage_model.state_dict())
    out["vae_keys"] = {"file": len(sd), "model": len(keys_model), "missing": sorted(keys_model - set(sd))[:10],
                       "unexpected": sorted(set(sd) - keys_model)[:10], "latent_channels": vae.latent_channels}
    del sd
    out["seconds"]["vae_load"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    images = vae.decode(latent)  # [B, F, H, W, 3] in [0, 1]
    out["seconds"]["vae_decode"] = round(time.perf_counter() - t, 2)
    out["vae_decode_shape"] = list(images.shape)
    out["vae_dtype"] = str(vae.vae_dtype)
    out["rss_after_vae_gb"] = mon.stage()
    if tiny:
        from unity_core.codec import LatentCodec

        with torch.no_grad():
            ours = (LatentCodec.from_single_file(vae_path).decode(latent) + 1) / 2
        ours = ours.permute(0, 2, 3, 4, 1).reshape(images.shape)
        out["vae_max_abs_diff_vs_library"] = float((ours - images.float()).abs().max().detach())
    del vae, images
    gc.collect()

    # CLIPLoader: load_clip(type wan). The tiny file keeps UMT5-XXL's width (4096) and 24 layers,
    # which ComfyUI's detection reads; its smaller sizes go in as ComfyUI's per-model config option.
    t = time.perf_counter()
    options = {}
    if tiny:
        c = manifest["umt5_config"]
        options = {"umt5xxl_model_config": {k: c[k] for k in ("vocab_size", "d_kv", "num_heads", "d_ff")}}
    clip = comfy.sd.load_clip(ckpt_paths=[str(te_path)], clip_type=comfy.sd.CLIPType.WAN, model_options=options)
    out["seconds"]["text_encoder_load"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    tokens = clip.tokenize(PROMPT)
    cond = clip.encode_from_tokens(tokens)  # [1, L, 4096]
    out["seconds"]["text_encode"] = round(time.perf_counter() - t, 2)
    ids = [tok for tok, _w in tokens["umt5xxl"][0]]
    n = sum(1 for tok in ids if tok != 0)
    out.update(context_shape=list(cond.shape), context_finite=bool(torch.isfinite(cond).all()), prompt_tokens=n,
               rss_after_text_gb=mon.stage(), scaled_fp8=str(getattr(clip.cond_stage_model.umt5xxl.transformer,
                                                                        "scaled_fp8", torch.empty(0)).dtype))
    if tiny:
        from unity_core.text import UMT5TextEncoder

        lib = UMT5TextEncoder.from_single_file(te_path, dtype=torch.float32)
        lib_ids = lib.tokenizer([PROMPT], max_length=512)["input_ids"][0, :n].tolist()
        ours = lib.encode([PROMPT])
        out["library_token_ids_equal"] = lib_ids == ids[:n]
        scale = float(cond.float().abs().max())
        out["text_max_abs_diff_vs_library"] = float((ours[:, : cond.shape[1]] - cond.float()).abs().max())
        out["text_max_abs"] = scale
    mon.stop()
    out["peak_rss_gb"], out["peak_rss_anon_gb"] = round(mon.peak, 2), round(mon.peak_anon, 2)
    return out


# ----------------------------------------------------------------------------------------------
# --comfy-url: the workflows/5b graphs through a running ComfyUI server (marked part)
# ----------------------------------------------------------------------------------------------


def run_comfy_url(url: str, weights: Path, frames: int, steps: int, log, weight_dtype: str = "fp8_e4m3fn",
                  sets=("5b",)) -> dict:
    """Queue each ``workflows/5b/*_api.json`` with the random files, ``steps`` steps and 32x32
    pixels; the server's base directory must be ``DIR/comfyui`` (its ``models/`` holds the
    files) and its input folder the graph's video. Exits 2 when the server lacks a node class."""
    import urllib.request

    def call(path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    known = set(call("/object_info"))
    # workflows/5b: the UnityVideo-5B graphs; workflows/yume: Yume-5B's explore graph (one segment, "W")
    graphs = [g for name in sets for g in sorted((REPO / "workflows" / name).glob("*_api.json"))]
    if not graphs:
        log("no workflows/5b/*_api.json graphs yet")
        raise SystemExit(2)
    dit = "unityvideo_wan22_ti2v_5b_random.safetensors"
    names = {"checkpoint": dit, "unet_name": dit,
             "clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "vae_name": "wan2.2_vae.safetensors",
             "steps": steps, "num_frames": frames, "length": frames, "width": 32, "height": 32,
             "weight_dtype": weight_dtype}
    results = []
    yume = {"checkpoint": "yume_5b_random.safetensors", "unet_name": "yume_5b_random.safetensors", "actions": "W",
            "steps": 0, "num_frames": 1}  # Yume: the model's own 4 steps; a one-frame start
    for g in graphs:
        graph = json.loads(g.read_text())
        graph_names = {**names, **(yume if g.parent.name == "yume" else {})}
        absent = sorted({n["class_type"] for n in graph.values()} - known)
        if absent:
            results.append({"graph": g.name, "error": f"server lacks node classes {absent}"})
            continue
        for node in graph.values():
            for k, v in graph_names.items():
                if k in node["inputs"] and not isinstance(node["inputs"][k], list):
                    node["inputs"][k] = v
        t = time.perf_counter()
        pid = call("/prompt", {"prompt": graph})["prompt_id"]
        while True:
            hist = call(f"/history/{pid}")
            if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
                break
            time.sleep(1)
        status = hist[pid]["status"]
        results.append({"graph": g.name, "seconds": round(time.perf_counter() - t, 1),
                        "status": status.get("status_str")})
        log(json.dumps(results[-1]))
    out = {"bench": "full_size_5b", "mode": "comfy_url", "date": time.strftime("%Y-%m-%d"), "graphs": results}
    if any("error" in r for r in results):
        print(json.dumps(out))
        raise SystemExit(2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--make-weights", type=Path, metavar="DIR", help="write the random files into DIR first "
                     "(scripts/make_random_5b.py; kept when DIR already holds a complete set)")
    src.add_argument("--weights", type=Path, metavar="DIR", help="a folder written by scripts/make_random_5b.py")
    ap.add_argument("--tiny", action="store_true", help="with --make-weights: tiny dims (tests)")
    ap.add_argument("--frames", type=int, default=1, help="4k+1 frames (default 1)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--comfy-layouts", type=Path, metavar="COMFY", help="load the files with ComfyUI's core loaders")
    ap.add_argument("--comfy-url", metavar="URL", help="queue workflows/5b graphs on a running ComfyUI server")
    ap.add_argument("--graphs", default="5b,yume",
                    help="with --comfy-url: the workflow folders to queue (5b, yume; Yume needs --yume weights)")
    ap.add_argument("--weight-dtype", default="fp8_e4m3fn", choices=["default", "fp8_e4m3fn", "fp8_e5m2"],
                    help="the UnityVideo Loader's weight_dtype in the graphs (--cpu's default is fp32: 20 GB)")
    ap.add_argument("--min-free-gb", type=float, default=15.0, help="wait until this much RAM is available")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    weights = args.make_weights or args.weights
    if args.make_weights and not (weights / "MANIFEST.json").is_file():
        sys.path.insert(0, str(REPO / "scripts"))
        from make_random_5b import make_random_5b

        make_random_5b(weights, tiny=args.tiny, resume=True, log=log)
    if not (weights / "MANIFEST.json").is_file():
        raise SystemExit(f"{weights} holds no random-weight set (MANIFEST.json); run with --make-weights {weights}")
    tiny = json.loads((weights / "MANIFEST.json").read_text())["tiny"]
    if not tiny:
        _wait_for_memory(args.min_free_gb, log)
    if args.comfy_layouts:
        record = run_comfy_layouts(weights, args.comfy_layouts, log)
    elif args.comfy_url:
        record = run_comfy_url(args.comfy_url, weights, args.frames, args.steps, log, args.weight_dtype,
                               sets=tuple(args.graphs.split(",")))
    else:
        record = run_library(weights, args.frames, args.steps, log)
    record["tiny"] = tiny
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
