"""The node suite in a real, running ComfyUI server: every node registered, every graph (5B ones
included) names only declared nodes and inputs, every default graph runs through ``/prompt`` with
its outputs downloaded, a sampling graph streams one latent preview per step over ``/ws``, and the
server's memory holds over 30 queued jobs.

Skipped unless ``COMFYUI_URL`` names a running server (loopback only) with this repo in its
``custom_nodes/``, e.g.

    COMFYUI_URL=http://127.0.0.1:8188 pytest -q tests/test_comfy_server.py

- ``COMFYUI_STEPS`` (optional) overrides every sampler's steps for a quicker run (the preview test
  uses at least 3 steps, so that "every step" counts more than one).
- ``COMFYUI_FRAMES`` (optional, default 21: two 17-frame windows) caps the frames the graphs' Load
  Video nodes read (``frame_load_cap``) in every test but the whole-clip one, which runs the
  default estimate graph on all of the clip; 0 reads the whole clip everywhere.
- ``COMFYUI_PID`` (optional): the server's process id (the last line of
  ``../shared/comfyui/start_server.sh``). The load-held test reads the server's resident memory
  from ``/proc/<pid>/status`` and skips without it.
- The preview test needs the server started with ``--preview-method latent2rgb`` and the
  ``aiohttp`` package (ComfyUI's requirements install it) in this environment.

``.ci/run`` starts such a server and sets all three.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from unity_core import comfy_client as cc

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("COMFYUI_URL", "").strip()
STEPS = os.environ.get("COMFYUI_STEPS", "").strip()
PID = os.environ.get("COMFYUI_PID", "").strip()
FRAMES = int(os.environ.get("COMFYUI_FRAMES", "").strip() or 21)
pytestmark = pytest.mark.skipif(
    not URL, reason="needs a running ComfyUI with this repo in custom_nodes/: set COMFYUI_URL=http://127.0.0.1:8188")

WORKFLOWS = cc.workflow_files(ROOT / "workflows")
INPUT_DIRS = cc.input_search_dirs() + [ROOT / "tests" / "fixtures"]
#: The default graph the preview and load tests run (any other sampling graph if it is gone).
PREFERRED_GRAPH = "estimate_depth_api.json"
#: ComfyUI's binary websocket events that carry a preview image (protocol.BinaryEventTypes).
PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4
LOAD_JOBS, LOAD_WARMUP_JOBS, LOAD_RSS_TOLERANCE = 30, 5, 0.10


def _graph(path: Path, min_steps: int = 1, frames: int = FRAMES) -> dict:
    wf = json.loads(path.read_text())
    if STEPS:
        wf = cc.set_steps(wf, max(int(STEPS), min_steps))
    elif sampling_steps(wf) < min_steps:
        wf = cc.set_steps(wf, min_steps)
    return _cap_frames(wf, frames)


def _cap_frames(workflow: dict, frames: int) -> dict:
    """A copy whose Load Video nodes that read the whole clip read its first ``frames`` (0: unchanged)."""
    workflow = json.loads(json.dumps(workflow))
    for node in workflow.values():
        inputs = node.get("inputs", {})
        if frames and node.get("class_type") == "UnityVideoLoadVideo" and not inputs.get("frame_load_cap"):
            inputs["frame_load_cap"] = frames
    return workflow


def sampling_steps(workflow: dict) -> int:
    """Model evaluations' step count of a graph: the integer ``steps`` inputs of its sampler and
    scheduler nodes (KSamplerAdvanced counts ``start_at_step`` .. ``end_at_step`` only)."""
    total = 0
    for node in workflow.values():
        inputs = node.get("inputs", {})
        steps = inputs.get("steps")
        if not isinstance(steps, int):
            continue
        start, end = inputs.get("start_at_step", 0), inputs.get("end_at_step", steps)
        if isinstance(start, int) and isinstance(end, int):
            steps = max(0, min(end, steps) - start)
        total += steps
    return total


def _sampling_graph() -> Path:
    names = {p.name: p for p in WORKFLOWS}
    if PREFERRED_GRAPH in names:
        return names[PREFERRED_GRAPH]
    for path in WORKFLOWS:
        if sampling_steps(json.loads(path.read_text())) and "explore" not in path.name:
            return path
    pytest.fail(f"no sampling graph among {sorted(names)}")


def _fresh_seeds(workflow: dict) -> dict:
    """A copy with new seeds, so that ComfyUI's cache cannot serve the sampler from an earlier run."""
    fresh = cc.with_seed_offset(workflow, 1000 + uuid.uuid4().int % 10**6)
    assert fresh != workflow, "the graph has no integer seed / noise_seed input to vary"
    return fresh


@pytest.fixture(scope="module")
def client():
    return cc.ComfyClient(cc.require_loopback(URL))


@pytest.fixture(scope="module")
def object_info(client):
    return client.get_json("/object_info")


def test_every_node_is_registered(object_info):
    served = cc.custom_nodes_in(object_info)
    assert served, "the server lists no UnityVideo node from custom_nodes/ (is the pack linked there? see its log)"
    for name in served:  # the server parsed our declarations into its own schema
        assert "input" in object_info[name] and "output" in object_info[name]
    try:  # the pack's own table, where this process can import it (V3 nodes need ComfyUI on sys.path)
        from nodes import NODE_CLASS_MAPPINGS
    except ImportError:
        return
    assert cc.missing_nodes(object_info, NODE_CLASS_MAPPINGS) == []
    assert set(served) <= set(NODE_CLASS_MAPPINGS)


def test_template_browser_lists_every_ui_graph_once(client, object_info):
    """``GET /api/workflow_templates`` (what ComfyUI's template browser shows): under the pack's
    folder, every UI graph of ``example_workflows/`` once (the 5B and Yume ones included), no
    API-format file; each one and its thumbnail download from the template route."""
    served = cc.custom_nodes_in(object_info)
    module = object_info[served[0]].get("python_module", "").split(".", 1)[-1] if served else ""
    templates = client.get_json("/api/workflow_templates")
    assert module in templates, f"the pack's folder {module!r} is not among the template folders {sorted(templates)}"
    ours = templates[module]
    expected = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
    assert sorted(ours) == expected and len(ours) == len(set(ours)), (sorted(ours), expected)
    assert not [n for n in ours if n.endswith("_api")]
    assert {"5b_estimate_depth", "yume_explore", "estimate_depth"} <= set(ours)
    folder = urllib.parse.quote(module)
    for name in ("estimate_depth", "5b_estimate_depth"):
        graph = client.get_json(f"/api/workflow_templates/{folder}/{name}.json")
        assert "nodes" in graph and "links" in graph
        with urllib.request.urlopen(f"{client.server}/api/workflow_templates/{folder}/{name}.jpg", timeout=30) as r:
            assert r.status == 200 and r.read(3) == b"\xff\xd8\xff"


@pytest.mark.parametrize("path", cc.workflow_files(ROOT / "workflows", include_5b=True)
                         + sorted((ROOT / "workflows" / "yume").glob("*_api.json")),
                         ids=lambda p: str(p.relative_to(ROOT / "workflows")))
def test_graph_names_only_known_nodes_and_inputs(path, object_info):
    """Every graph, the 5B ones included (they cannot run here: no 5B files), names node classes and
    inputs the server declares."""
    problems = []
    for nid, node in json.loads(path.read_text()).items():
        info = object_info.get(node["class_type"])
        if info is None:
            problems.append(f"node {nid}: unknown class {node['class_type']!r}")
            continue
        declared = {name for section in info.get("input", {}).values() if isinstance(section, dict) for name in section}
        problems += [f"node {nid} ({node['class_type']}): no input {name!r}" for name in node["inputs"] if name not in declared]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_in_comfyui(path, client, object_info):
    wf = client.upload_inputs(_graph(path), INPUT_DIRS)
    result = cc.run_workflow(client, wf, object_info, timeout=900)
    assert result["validated"], result.get("error")
    assert result["executed"], result.get("error")
    assert result["outputs"] and result["output_files"], result.get("error")
    assert all(f["bytes"] > 0 for f in result["output_files"])


def test_default_estimate_graph_keeps_the_whole_clip(client, object_info, tmp_path):
    """The default estimate-depth graph on the whole carphone clip: the saved video has every
    frame, the source size and the source frame rate."""
    import av

    path = _sampling_graph()
    assert path.name == PREFERRED_GRAPH, path
    wf = _fresh_seeds(client.upload_inputs(_graph(path, frames=0), INPUT_DIRS))
    clip = next(Path(d) / n["inputs"]["video"] for n in wf.values() if n["class_type"] == "UnityVideoLoadVideo"
                for d in INPUT_DIRS if (Path(d) / n["inputs"]["video"]).is_file())
    result = cc.run_workflow(client, wf, object_info, timeout=1800)
    assert result["executed"], result.get("error")
    print(f"{path.name} on the whole clip: {result['seconds']} s from queueing to the end")
    videos = [f["file"] for f in result["output_files"] if f["file"].endswith(".mp4")]
    assert len(videos) == 1, result["output_files"]
    subfolder, _, name = videos[0].rpartition("/")
    saved = tmp_path / "saved.mp4"
    saved.write_bytes(client.get_bytes("/view?" + urllib.parse.urlencode(
        {"filename": name, "subfolder": subfolder, "type": "output"})))

    def figures(p):
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            return sum(1 for _ in c.decode(s)), (s.height, s.width), float(s.average_rate)

    frames, size, fps = figures(saved)
    src_frames, src_size, src_fps = figures(clip)
    print(f"{clip.name}: {frames} frames {size[1]}x{size[0]} at {fps:.3f} fps (source {src_frames} frames "
          f"{src_size[1]}x{src_size[0]} at {src_fps:.3f} fps)")
    assert (frames, size) == (src_frames, src_size)
    assert fps == pytest.approx(src_fps, rel=1e-3)


async def _watch_ws(client: cc.ComfyClient, workflow: dict, on_preview, on_event):
    """Queue ``workflow`` under a fresh client id while listening on ``/ws?clientId=...``: each binary
    preview image goes to ``on_preview(event type, payload)``, each JSON message to
    ``on_event(type, data, prompt_id)``; returns ``(prompt_id, end event type)`` once the prompt ends."""
    import aiohttp

    client_id = uuid.uuid4().hex
    ws_url = re.sub(r"^http", "ws", client.server) + f"/ws?clientId={client_id}"
    end = None
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            prompt_id = await asyncio.to_thread(client.queue, workflow, client_id)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    (event,) = struct.unpack(">I", msg.data[:4])
                    if event in (PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA):
                        on_preview(event, bytes(msg.data[4:]))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(msg.data)
                    data = event.get("data") or {}
                    on_event(event.get("type"), data, prompt_id)
                    if event.get("type") in ("execution_success", "execution_error", "execution_interrupted") \
                            and data.get("prompt_id") == prompt_id:
                        end = event["type"]
                        break
                else:
                    break
    return prompt_id, end


async def _run_watching_ws(client: cc.ComfyClient, workflow: dict):
    """:func:`_watch_ws` for one graph; returns ``(prompt_id, [(event type, binary preview payload)],
    progress events, end event type)``."""
    previews, progress = [], []

    def on_event(kind, data, prompt_id):
        if kind == "progress" and data.get("prompt_id") == prompt_id:
            progress.append(data)

    prompt_id, end = await _watch_ws(client, workflow, lambda event, payload: previews.append((event, payload)),
                                     on_event)
    return prompt_id, previews, len(progress), end


def _is_image(event: int, payload: bytes) -> bool:
    if event == PREVIEW_IMAGE:  # 4-byte image type (1 JPEG, 2 PNG), then the encoded image
        image = payload[4:]
    else:  # 4-byte metadata length, JSON metadata, then the image
        (n,) = struct.unpack(">I", payload[:4])
        image = payload[4 + n:]
    return image.startswith(b"\xff\xd8") or image.startswith(b"\x89PNG")


def test_every_sampling_step_sends_a_preview(client):
    """Needs the server started with ``--preview-method latent2rgb`` (as ``.ci/run`` does)."""
    pytest.importorskip("aiohttp", reason="the /ws listener needs aiohttp (installed with ComfyUI's requirements)")
    path = _sampling_graph()
    # one 17-frame window: one preview per sampling step
    wf = _fresh_seeds(client.upload_inputs(_graph(path, min_steps=3, frames=17), INPUT_DIRS))
    steps = sampling_steps(wf)
    prompt_id, previews, progress, end = asyncio.run(asyncio.wait_for(_run_watching_ws(client, wf), timeout=900))
    assert end == "execution_success", cc.execution_errors(client.history(prompt_id) or {}) or end
    assert len(previews) == steps, (f"{path.name}: {len(previews)} preview images over /ws for {steps} sampling "
                                    f"steps ({progress} progress events; is the server running with "
                                    f"--preview-method latent2rgb, and does the model have latent RGB factors?)")
    assert all(_is_image(event, payload) for event, payload in previews)


async def _walk_watching_ws(client: cc.ComfyClient, workflow: dict, node: str):
    """Queue an explore graph while listening on ``/ws``; returns ``(prompt_id, events, end)`` where
    ``events`` lists, in arrival order, ``"preview"`` (a binary preview image), ``("segment", k)``
    (``unityvideo.explore.segment`` for ``node``) and ``"executed"`` (the graph's save node ran)."""
    events = []

    def on_event(kind, data, prompt_id):
        if kind == "unityvideo.explore.segment" and data.get("node") == node:
            events.append(("segment", data["segment"], data["segments"], data["images"]))
        if kind == "executed" and data.get("prompt_id") == prompt_id:
            events.append("executed")

    prompt_id, end = await _watch_ws(client, workflow, lambda event, payload: events.append("preview"), on_event)
    return prompt_id, events, end


def test_explore_streams_each_segment_and_its_previews_while_it_walks(client):
    """Needs ``--preview-method latent2rgb``: previews arrive during every segment and each segment's
    frames (an animated WEBP in the temp folder) arrive before the walk ends."""
    pytest.importorskip("aiohttp", reason="the /ws listener needs aiohttp (installed with ComfyUI's requirements)")
    wf = json.loads((ROOT / "workflows" / "default" / "explore_walk_api.json").read_text())
    node = next(k for k, v in wf.items() if v["class_type"] == "UnityVideoExplore")
    wf[node]["inputs"].update(actions="W D ←", steps=max(int(STEPS or 2), 2))
    wf = _fresh_seeds(client.upload_inputs(wf, INPUT_DIRS))
    prompt_id, events, end = asyncio.run(asyncio.wait_for(_walk_watching_ws(client, wf, node), timeout=900))
    assert end == "execution_success", cc.execution_errors(client.history(prompt_id) or {}) or end
    segments = [i for i, e in enumerate(events) if isinstance(e, tuple)]
    assert [events[i][1:3] for i in segments] == [(0, 3), (1, 3), (2, 3)], events
    assert events.index("executed") > segments[-1], events  # every segment on screen before the walk's end
    bounds = [-1, *segments]
    for a, b in zip(bounds, bounds[1:]):  # previews during each segment, before its frames
        assert "preview" in events[a + 1:b], (a, b, events)
    for i in segments:
        image = events[i][3][0]
        data = client.get_bytes(f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}")
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", data[:16]


def _rss_kib(pid: int) -> int:
    """Resident memory (VmRSS, KiB) of ``pid`` and all its descendants, from /proc."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(match.group(1)) if match else 0
        todo += children.get(p, [])
    return total


@pytest.mark.skipif(not PID, reason="reads the server's memory: set COMFYUI_PID to its process id "
                                    "(the last line of ../shared/comfyui/start_server.sh)")
def test_load_held_over_30_queued_jobs(client, tmp_path):
    """``unityvideo queue <graph> --repeat 30 --wait``: 30 successes, and the server's RSS after the
    last job within 10 % of its RSS after the fifth (no growth per job once warm)."""
    pid = int(PID)
    assert _rss_kib(pid) > 0, f"COMFYUI_PID={pid}: no such process on this machine"
    path = _sampling_graph()
    graph = tmp_path / path.name
    graph.write_text(json.dumps(_fresh_seeds(client.upload_inputs(_graph(path, frames=17), INPUT_DIRS))))
    cmd = [sys.executable, "-m", "unity_core.cli", "queue", str(graph), "--server", client.server,
           "--repeat", str(LOAD_JOBS), "--wait", "--timeout", "600"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rss, lines = {}, []
    for line in proc.stdout:  # one line per finished job: "<status> <name> [i/30] in 1.2s"
        lines.append(line.rstrip())
        done = re.match(rf"^(success|error|failed) \S+ \[(\d+)/{LOAD_JOBS}\]", line)
        if done:
            rss[int(done.group(2))] = _rss_kib(pid)
    assert proc.wait(timeout=60) == 0, "\n".join(lines[-20:])
    assert lines[-1] == f"{graph.name}: {LOAD_JOBS}/{LOAD_JOBS} succeeded", "\n".join(lines[-20:])
    warm, last = rss[LOAD_WARMUP_JOBS], rss[LOAD_JOBS]
    print(f"server RSS after job {LOAD_WARMUP_JOBS}: {warm / 1024:.0f} MiB, after job {LOAD_JOBS}: {last / 1024:.0f} MiB")
    assert abs(last - warm) <= LOAD_RSS_TOLERANCE * warm, (
        f"server RSS {warm / 1024:.0f} MiB after job {LOAD_WARMUP_JOBS} -> {last / 1024:.0f} MiB after job "
        f"{LOAD_JOBS} (more than {LOAD_RSS_TOLERANCE:.0%} apart); per job: "
        + ", ".join(f"{k}:{v / 1024:.0f}" for k, v in sorted(rss.items())))
