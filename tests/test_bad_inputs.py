"""Bad input the audit found reaching a traceback or a silent result (issue 27, item 5): each one
now gets a clear error naming the file or value and the fix, before any sampling.

The README's reliability section lists these rows (input -> what the user sees)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from unity_core.cli import main


def _pipeline_folder(tmp_path, text):
    folder = tmp_path / "pipe"
    folder.mkdir()
    (folder / "pipeline.json").write_text(text)
    return folder


@pytest.mark.parametrize("text,message", [
    ('{"codec": "codec", "text_encoder": "minilm"}', r"pipeline.json names no 'transformer'"),
    ('{"transformer": "transformer.safetensors", "codec": "codec",', r"pipeline.json is not valid JSON"),
    ('["transformer.safetensors"]', r"pipeline.json names no 'transformer' or 'codec'"),
])
def test_broken_pipeline_json_is_named(tmp_path, carphone_path, capsys, text, message):
    from unity_core.pipeline import UnityVideoPipeline

    folder = _pipeline_folder(tmp_path, text)
    with pytest.raises(ValueError, match=message) as err:
        UnityVideoPipeline.from_pretrained(folder)
    assert str(folder / "pipeline.json") in str(err.value)
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--checkpoint", str(folder),
                 "--out", str(tmp_path / "x.mp4")]) == 2
    assert "pipeline.json" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("args", [
    ["estimate", "--modality", "depth", "--video", "{clip}", "--cfg", "nan"],
    ["estimate", "--modality", "depth", "--video", "{clip}", "--cfg", "inf"],
    ["generate", "--prompt", "p", "--modality", "depth", "--cfg=-inf"],
    ["control", "--modality", "depth", "--control", "{clip}", "--prompt", "p", "--control-cfg", "nan"],
    ["explore", "--image", "{clip}", "--actions", "W", "--shift", "inf"],
    ["explore", "--image", "{clip}", "--actions", "W", "--cfg", "nan"],
])
def test_non_finite_numbers_are_refused_before_sampling(args, tmp_path, carphone_path, capsys):
    args = [a.replace("{clip}", str(carphone_path)) for a in args] + ["--out", str(tmp_path / "x.mp4"),
                                                                       "--steps", "1"]
    with pytest.raises(SystemExit) as exit_:  # argparse: usage + the message, exit status 2
        main(args)
    assert exit_.value.code == 2
    assert "expected a finite number" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_speed_values_must_be_finite(tmp_path, carphone_path, capsys):
    assert main(["explore", "--image", str(carphone_path), "--actions", "W", "--speed", "nan,1,2",
                 "--out", str(tmp_path / "x.mp4"), "--steps", "1"]) == 2
    assert "--speed takes DISTANCE,TURN,ROTATION" in capsys.readouterr().err


def test_queue_a_folder_or_a_broken_file(tmp_path, capsys):
    assert main(["queue", str(tmp_path), "--server", "http://127.0.0.1:9"]) == 2
    assert f"{tmp_path} is a folder; queue one API-format workflow file" in capsys.readouterr().err
    broken = tmp_path / "wf_api.json"
    broken.write_text('{"3": {"class_type": ')
    assert main(["queue", str(broken), "--server", "http://127.0.0.1:9"]) == 2
    assert f"{broken} is not a JSON workflow" in capsys.readouterr().err


def test_queue_wait_reports_an_http_error_from_history(tmp_path, capsys):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps({"prompt_id": "p1", "node_errors": {}}).encode())

        def do_GET(self):  # /history/p1 fails on the server
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"history store unavailable")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "wf_api.json"
    path.write_text(json.dumps({"3": {"class_type": "UnityVideoSampler", "inputs": {"seed": 5}}}))
    try:
        assert main(["queue", str(path), "--server", f"http://127.0.0.1:{server.server_port}", "--wait",
                     "--timeout", "5"]) == 2
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert "/history/p1 answered HTTP 500" in err and "history store unavailable" in err
