"""CI helper for the "user's ComfyUI with another torch" stages of .ci/run: run the default graphs
through a running server's ``/prompt`` and check each result.

    python .ci/compat_graphs.py --server http://127.0.0.1:PORT --steps 2 --pose absent
    python .ci/compat_graphs.py --server http://127.0.0.1:PORT --steps 2 --pose installed --only-pose

``--pose absent``: the ``pose`` extra (MediaPipe) is not installed. Every UnityVideo node must still
be registered, every graph without MediaPipe preprocessing must run to success with its files
downloadable, and each graph that runs Control Preprocess on skeleton / segmentation must fail with
an error naming ``pip install 'unityvideo-comfy[pose]'``. ``--pose installed``: every graph must
succeed (``--only-pose``: just the MediaPipe ones). Prints one JSON line; exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unity_core import comfy_client as cc

ROOT = Path(__file__).resolve().parents[1]
POSE_MODALITIES = {"skeleton", "segmentation"}
HINT = "pip install 'unityvideo-comfy[pose]'"


def needs_pose(graph: dict) -> bool:
    return any(n["class_type"] == "UnityVideoPreprocess" and n["inputs"].get("modality") in POSE_MODALITIES
               for n in graph.values())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--pose", choices=["absent", "installed"], required=True)
    ap.add_argument("--only-pose", action="store_true")
    args = ap.parse_args()
    client = cc.ComfyClient(cc.require_loopback(args.server))
    info = client.get_json("/object_info")
    served = cc.custom_nodes_in(info)
    report, ok = {"nodes": len(served), "graphs": {}}, len(served) >= 18
    dirs = cc.input_search_dirs() + [ROOT / "tests" / "fixtures"]
    for path in cc.workflow_files(ROOT / "workflows"):
        graph = cc.set_steps(json.loads(path.read_text()), args.steps)
        pose = needs_pose(graph)
        if args.only_pose and not pose:
            continue
        result = cc.run_workflow(client, client.upload_inputs(graph, dirs), info, timeout=900)
        error = json.dumps(result.get("error") or "")
        if pose and args.pose == "absent":
            passed = not result["executed"] and HINT in error
        else:
            passed = bool(result["executed"] and result["outputs"] and result.get("output_files"))
        ok &= passed
        report["graphs"][path.stem] = {"passed": passed, "executed": result["executed"],
                                       "seconds": result["seconds"], **({"error": error[:400]} if not passed or pose else {})}
    report["ok"] = bool(ok)
    print(json.dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
