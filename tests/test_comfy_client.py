"""unity_core.comfy_client against a small fake of ComfyUI's HTTP API (no ComfyUI needed): queueing,
history polling, output checks, uploads, refusals, time-outs, and `unityvideo queue --wait`."""

import http.server
import json
import re
import threading
import urllib.parse

import pytest

from unity_core import comfy_client as cc
from unity_core.cli import main

OBJECT_INFO = {"Sample": {"output_node": False}, "Save": {"output_node": True}}


class FakeComfy(http.server.ThreadingHTTPServer):
    """ComfyUI's routes as this client uses them. A prompt whose ``Sample`` node has ``"fail": true``
    ends in an execution error, one with ``"hang": true`` never ends; a ``Bad`` node is refused;
    ``Save`` with ``"empty": true`` lists a file that downloads empty."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.prompts, self.uploads, self.deleted, self.interrupted, self.client_ids = {}, [], [], [], []
        self.polls = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def _reply(self, status, body, raw=False):
        data = body if raw else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        srv, path = self.server, urllib.parse.urlsplit(self.path)
        if path.path == "/object_info":
            return self._reply(200, OBJECT_INFO)
        if path.path.startswith("/history/"):
            srv.polls += 1
            pid = path.path.rsplit("/", 1)[1]
            wf = srv.prompts.get(pid)
            sample = next(n["inputs"] for n in wf.values() if n["class_type"] == "Sample")
            if sample.get("hang") or srv.polls % 2:  # every other poll: still running
                return self._reply(200, {})
            if sample.get("fail"):
                msg = ["execution_error", {"node_id": "1", "node_type": "Sample", "exception_type": "RuntimeError",
                                           "exception_message": "boom", "traceback": ["..."]}]
                status = {"status_str": "error", "completed": False, "messages": [msg]}
                return self._reply(200, {pid: {"status": status, "outputs": {}}})
            save = next(n["inputs"] for n in wf.values() if n["class_type"] == "Save")
            name = "empty.webp" if save.get("empty") else f"out_{sample['seed']}.webp"
            outputs = {"2": {"images": [{"filename": name, "subfolder": "unityvideo", "type": "output"}]}}
            status = {"status_str": "success", "completed": True, "messages": []}
            return self._reply(200, {pid: {"status": status, "outputs": outputs}})
        if path.path == "/view":
            query = urllib.parse.parse_qs(path.query)
            assert query["subfolder"] == ["unityvideo"] and query["type"] == ["output"]
            return self._reply(200, b"" if query["filename"] == ["empty.webp"] else b"RIFF....WEBP", raw=True)
        self._reply(404, {"error": "no route"})

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/upload/image":
            name = re.search(rb'filename="([^"]+)"', body).group(1).decode()
            srv.uploads.append((name, b"clip-bytes" in body))
            return self._reply(200, {"name": f"stored_{name}", "subfolder": "", "type": "input"})
        data = json.loads(body)
        if self.path == "/prompt":
            wf = data["prompt"]
            srv.client_ids.append(data["client_id"])
            if any(n["class_type"] == "Bad" for n in wf.values()):
                return self._reply(400, {"error": {"type": "prompt_outputs_failed_validation"},
                                         "node_errors": {"1": {"errors": ["bad value"]}}})
            pid = f"p{len(srv.prompts)}"
            srv.prompts[pid] = wf
            return self._reply(200, {"prompt_id": pid, "number": len(srv.prompts), "node_errors": {}})
        if self.path == "/queue":
            srv.deleted += data["delete"]
            return self._reply(200, {})
        if self.path == "/interrupt":
            srv.interrupted.append(data["prompt_id"])
            return self._reply(200, {})
        self._reply(404, {"error": "no route"})

    def log_message(self, *args):
        pass


@pytest.fixture
def comfy():
    server = FakeComfy()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _graph(**sample):
    return {"1": {"class_type": "Sample", "inputs": {"seed": 5, "steps": 20, **sample}},
            "2": {"class_type": "Save", "inputs": {"images": ["1", 0]}}}


@pytest.mark.parametrize("url,ok", [("http://127.0.0.1:8188/", True), ("http://localhost:1", True),
                                    ("http://[::1]:8188", True), ("http://127.3.2.1", True),
                                    ("http://10.0.0.2:8188", False), ("http://example.com", False),
                                    ("ftp://127.0.0.1", False), ("127.0.0.1:8188", False)])
def test_require_loopback(url, ok):
    if ok:
        assert cc.require_loopback(url) == url.rstrip("/")
    else:
        with pytest.raises(ValueError, match="loopback|http\\(s\\) URL"):
            cc.require_loopback(url)


def test_workflow_edits_return_copies():
    wf = _graph()
    wf["3"] = {"class_type": "BasicScheduler", "inputs": {"steps": 8, "model": ["1", 0]}}
    fast = cc.set_steps(wf, 2)
    assert fast["1"]["inputs"]["steps"] == 2 and fast["3"]["inputs"]["steps"] == 2
    assert wf["1"]["inputs"]["steps"] == 20 and fast["2"] == wf["2"]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        cc.set_steps(wf, 0)
    assert cc.with_seed_offset(wf, 3)["1"]["inputs"]["seed"] == 8 and wf["1"]["inputs"]["seed"] == 5
    assert cc.video_inputs({"4": {"class_type": "L", "inputs": {"video": "a.MP4"}},
                            "5": {"class_type": "L", "inputs": {"video": ["4", 0]}},
                            "6": {"class_type": "L", "inputs": {"video": "notes.txt"}}}) == {"4": "a.MP4"}


def test_load_api_workflow_refuses_ui_format(tmp_path):
    ui = tmp_path / "graph.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(ValueError, match="UI-format workflow; queue the \\*_api.json"):
        cc.load_api_workflow(ui)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cc.load_api_workflow(tmp_path / "missing_api.json")


def test_workflow_files_and_only(tmp_path):
    for name in ("a_api.json", "b_api.json", "a.json", "5b/c_5b_api.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [p.name for p in cc.workflow_files(tmp_path)] == ["a_api.json", "b_api.json"]
    assert [p.name for p in cc.workflow_files(tmp_path, include_5b=True, only=["5b/c_5b", "b"])] == [
        "b_api.json", "c_5b_api.json"]
    with pytest.raises(ValueError, match="need --include-5b"):
        cc.workflow_files(tmp_path, only=["c_5b"])


def test_run_workflow_success_downloads_every_output(comfy):
    client = cc.ComfyClient(comfy.url)
    result = cc.run_workflow(client, _graph(), client.get_json("/object_info"), poll=0.01)
    assert result["validated"] and result["executed"] and result["outputs"], result
    assert result["output_files"] == [{"file": "unityvideo/out_5.webp", "bytes": 12}]
    assert comfy.polls >= 2 and result["seconds"] is not None  # the first poll found it still running


@pytest.mark.parametrize("graph,stage,error", [
    ({"1": {"class_type": "Bad", "inputs": {}}}, "validated", "node_errors"),
    (_graph(fail=True), "executed", "boom"),
    ({**_graph(), "2": {"class_type": "Save", "inputs": {"empty": True}}}, "outputs", "empty.webp"),
])
def test_run_workflow_reports_where_it_failed(comfy, graph, stage, error):
    result = cc.run_workflow(cc.ComfyClient(comfy.url), graph, OBJECT_INFO, poll=0.01)
    order = ["validated", "executed", "outputs"]
    assert [result[k] for k in order] == [k != stage and order.index(k) < order.index(stage) for k in order]
    assert error in json.dumps(result["error"])


def test_wait_times_out_and_cancels(comfy):
    client = cc.ComfyClient(comfy.url)
    pid = client.queue(_graph(hang=True), client_id="me")
    with pytest.raises(TimeoutError, match=f"prompt {pid} not finished"):
        client.wait(pid, timeout=0.05, poll=0.01)
    assert comfy.deleted == [pid] and comfy.interrupted == [pid] and comfy.client_ids == ["me"]


def test_upload_inputs_uploads_once_and_renames(comfy, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"clip-bytes")
    wf = {"1": {"class_type": "Load", "inputs": {"video": "clip.mp4"}},
          "2": {"class_type": "Load", "inputs": {"video": "clip.mp4"}}}
    client, uploaded = cc.ComfyClient(comfy.url), {}
    out = client.upload_inputs(wf, [tmp_path / "nowhere", tmp_path], uploaded)
    assert out["1"]["inputs"]["video"] == out["2"]["inputs"]["video"] == "stored_clip.mp4"
    assert wf["1"]["inputs"]["video"] == "clip.mp4" and comfy.uploads == [("clip.mp4", True)]
    client.upload_inputs(wf, [tmp_path], uploaded)
    assert len(comfy.uploads) == 1  # reused
    with pytest.raises(FileNotFoundError, match="input 'other.mp4' \\(node 1\\) not found"):
        client.upload_inputs({"1": {"class_type": "Load", "inputs": {"video": "other.mp4"}}}, [tmp_path])


def test_unreachable_server_is_one_clear_error():
    with pytest.raises(cc.ComfyError, match="cannot reach ComfyUI at http://127.0.0.1:9 .*--server URL"):
        cc.ComfyClient("http://127.0.0.1:9", timeout=5).get_json("/object_info")


def test_cli_queue_wait_reports_each_job(comfy, tmp_path, capsys):
    path = tmp_path / "g_api.json"
    path.write_text(json.dumps(_graph()))
    assert main(["queue", str(path), "--server", comfy.url, "--repeat", "3", "--wait"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" in ")[0] for line in out if line.startswith("success")] == [
        f"success g_api.json [{i}/3]" for i in (1, 2, 3)]
    assert out[-1] == "g_api.json: 3/3 succeeded"
    assert [wf["1"]["inputs"]["seed"] for wf in comfy.prompts.values()] == [5, 6, 7]
    assert len(set(comfy.client_ids)) == 1  # one client id for the batch

    path.write_text(json.dumps(_graph(fail=True)))
    assert main(["queue", str(path), "--server", comfy.url, "--repeat", "2", "--wait"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "g_api.json: 0/2 succeeded" and "boom" in out[1]
