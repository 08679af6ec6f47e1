"""Fit the latent -> RGB preview factors of the embedded default's codec (ComfyUI's latent2rgb previews).

ComfyUI previews a latent ``[C, f, h, w]`` as ``rgb = latent^T A + b`` per latent pixel (A ``[C, 3]``,
b ``[3]``, rgb in [-1, 1]). This fits A and b by least squares: synthworld clips are encoded with the
default's codec, and each latent pixel is paired with the mean colour of the video pixels it covers
(its ``s x s`` patch and its chunk of frames: frame 0 alone, then 4 frames per latent frame).
Writes ``nodes/latent_rgb_default.json`` (read by ``nodes/model.py``'s ``UnityVideoDefaultLatent``).

    python scripts/fit_latent_rgb.py [--clips 8] [--out nodes/latent_rgb_default.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def pixel_targets(frames: torch.Tensor, shape) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` in [0, 1] -> mean colour in [-1, 1] per latent pixel ``[f, h, w, 3]``."""
    _, f, h, w = shape
    video = frames.permute(3, 0, 1, 2) * 2 - 1  # [3, F, H, W]
    chunks = [video[:, :1]] + [video[:, 1 + 4 * (k - 1):1 + 4 * k] for k in range(1, f)]
    per_frame = torch.stack([c.mean(1) for c in chunks], 1)  # [3, f, H, W]
    pooled = torch.nn.functional.adaptive_avg_pool2d(per_frame, (h, w))
    return pooled.permute(1, 2, 3, 0)


def fit(clips: int = 8, seed0: int = 100) -> dict:
    from unity_core.codec import frames_to_video
    from unity_core.data.synthworld import render_clip
    from unity_core.pipeline import UnityVideoPipeline

    torch.set_num_threads(1)
    pipe = UnityVideoPipeline.from_pretrained("default")
    xs, ys = [], []
    for i in range(clips):
        clip = render_clip(seed0 + i, num_frames=17, height=64, width=64)
        with torch.no_grad():
            z = pipe.codec.encode(frames_to_video(clip.rgb))[0]  # [C, f, h, w]
        xs.append(z.permute(1, 2, 3, 0).reshape(-1, z.shape[0]))
        ys.append(pixel_targets(clip.rgb, z.shape).reshape(-1, 3))
    x, y = torch.cat(xs).double(), torch.cat(ys).double()
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    sol = torch.linalg.lstsq(design, y).solution  # [C + 1, 3]
    resid = (design @ sol - y).abs().mean().item()
    return {"latent_rgb_factors": [[round(v, 5) for v in row] for row in sol[:-1].tolist()],
            "latent_rgb_factors_bias": [round(v, 5) for v in sol[-1].tolist()],
            "fit": {"clips": clips, "seeds": [seed0, seed0 + clips - 1], "size": "17x64x64",
                    "latent_pixels": len(x), "mean_abs_error_in_[-1,1]": round(resid, 4),
                    "script": "scripts/fit_latent_rgb.py"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "nodes" / "latent_rgb_default.json")
    args = ap.parse_args()
    result = fit(args.clips)
    rows = ",\n".join("  " + json.dumps(r) for r in result["latent_rgb_factors"])  # one latent channel a line
    args.out.write_text('{\n "latent_rgb_factors": [\n' + rows + '\n ],\n "latent_rgb_factors_bias": '
                        + json.dumps(result["latent_rgb_factors_bias"]) + ',\n "fit": ' + json.dumps(result["fit"]) + "\n}\n")
    print(f"wrote {args.out} (mean abs error {result['fit']['mean_abs_error_in_[-1,1]']})")


if __name__ == "__main__":
    main()
