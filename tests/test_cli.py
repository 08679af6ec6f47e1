"""The command line on a real clip: writes what it promises, never overwrites, clear errors."""

import json

import numpy as np
import pytest

from unity_core.cli import apply_overrides, main
from unity_core.io import read_video


def test_estimate_writes_video_and_values(tmp_path, carphone_path, capsys):
    out = tmp_path / "depth.mp4"
    args = ["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(out), "--steps", "2",
            "--frames", "17"]  # the first 17 frames (one window) at the source size and fps
    assert main(args) == 0
    assert main(args) == 0
    frames, fps = read_video(out)
    assert frames.shape == (17, 144, 176, 3) and fps == pytest.approx(29.97, abs=0.01)
    values = np.load(tmp_path / "depth.npz")
    assert values["values"].shape == (17, 144, 176) and str(values["modality"]) == "depth"
    assert (tmp_path / "depth_1.mp4").exists() and (tmp_path / "depth_1.npz").exists()  # second run: new names
    assert "depth_1.mp4" in capsys.readouterr().out


def test_load_pipeline_takes_keywords_and_a_bare_checkpoint(default_pipeline):
    """``load_pipeline`` with keywords (scripts): a bare transformer file with a codec folder and a
    text encoder goes through ``UnityVideoPipeline.from_files``; the explore command's checks."""
    import torch

    from unity_core.cli import load_pipeline
    from unity_core.pipeline import DEFAULT_DIR

    bare = str(DEFAULT_DIR / "transformer.safetensors")
    pipe = load_pipeline(checkpoint=bare, vae=str(DEFAULT_DIR / "codec"), text_encoder="minilm")
    ref = default_pipeline.transformer.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in pipe.transformer.state_dict().items())
    assert pipe.config["codec"] == str((DEFAULT_DIR / "codec").resolve()) and pipe.folder is None
    assert pipe.text_encoder.encode(["a room"]).shape == default_pipeline.text_encoder.encode(["a room"]).shape
    with pytest.raises(ValueError, match="bare transformer checkpoint .* give --vae"):
        load_pipeline(checkpoint=bare, vae=None, text_encoder=None)
    with pytest.raises(ValueError, match="go with a bare transformer checkpoint"):
        load_pipeline(checkpoint="default", vae=str(DEFAULT_DIR / "codec"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pipeline(checkpoint="no/such/file.safetensors", vae="v", text_encoder="minilm")
    with pytest.raises(FileNotFoundError, match="no pipeline.json"):  # no bare form offered: a pipeline folder
        load_pipeline(checkpoint=bare)
    with pytest.raises(TypeError, match="unknown options \\['vea'\\]"):
        load_pipeline(checkpoint=bare, vea="typo")


def test_generate_and_control(tmp_path, carphone_path):
    assert main(["generate", "--prompt", "a person walks", "--modality", "flow", "--out", str(tmp_path / "g.mp4"), "--steps", "2"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"g.mp4", "g_raft.mp4", "g_raft.npz"}
    assert main(["control", "--modality", "skeleton", "--control", str(carphone_path), "--preprocess",
                 "--prompt", "a person", "--out", str(tmp_path / "c.mp4"), "--steps", "2", "--frames", "17"]) == 0
    assert read_video(tmp_path / "c.mp4")[0].shape == (17, 144, 176, 3)
    assert read_video(tmp_path / "c_control.mp4")[0].max() > 0.5  # the rendered skeleton
    assert main(["control", "--modality", "depth", "--control", str(tmp_path / "c.mp4"), "--prompt", "a person",
                 "--out", str(tmp_path / "d.mp4"), "--steps", "1", "--control-cfg", "1", "--frames", "9"]) == 0
    assert (tmp_path / "d.mp4").is_file()


@pytest.mark.parametrize("args,message", [
    (["estimate", "--modality", "normals", "--video", "{clip}", "--out", "x.mp4"], "unknown modality 'normals'"),
    (["estimate", "--modality", "depth", "--video", "missing.mp4", "--out", "x.mp4"], "does not exist"),
    (["estimate", "--modality", "depth", "--video", "{clip}", "--out", "x.mp4", "--window", "16"], "not 4k\\+1"),
    (["control", "--modality", "depth", "--control", "{clip}", "--preprocess", "--prompt", "p", "--out", "x.mp4"], "no offline depth"),
])
def test_bad_inputs(args, message, carphone_path, tmp_path, capsys):
    args = [a.replace("{clip}", str(carphone_path)) for a in args]
    args[args.index("--out") + 1] = str(tmp_path / "x.mp4")
    assert main(args) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_queue_overrides():
    wf = {"3": {"class_type": "UnityVideoSampler", "inputs": {"seed": 1, "steps": 20}}}
    out = apply_overrides(wf, ["3.seed=7", "3.steps=4"])
    assert out["3"]["inputs"] == {"seed": 7, "steps": 4} and wf["3"]["inputs"]["seed"] == 1
    with pytest.raises(ValueError, match="no input 'cfgg'"):
        apply_overrides(wf, ["3.cfgg=2"])
    with pytest.raises(ValueError, match="no node '9'"):
        apply_overrides(wf, ["9.seed=2"])


def test_queue_repeats_vary_the_seed_and_refusals_are_explained(tmp_path, capsys):
    import http.server
    import threading

    from unity_core.cli import with_seed_offset

    wf = {"3": {"class_type": "UnityVideoSampler", "inputs": {"seed": 5, "steps": 20}},
          "4": {"class_type": "KSampler", "inputs": {"noise_seed": 1, "seed": ["3", 0]}}}
    assert with_seed_offset(wf, 2)["3"]["inputs"]["seed"] == 7 and with_seed_offset(wf, 2)["4"]["inputs"]["noise_seed"] == 3
    assert with_seed_offset(wf, 2)["4"]["inputs"]["seed"] == ["3", 0] and wf["3"]["inputs"]["seed"] == 5  # links kept

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body["prompt"]["3"]["inputs"]["seed"])
            ok = len(seen) < 3
            reply = {"prompt_id": f"p{len(seen)}"} if ok else {"error": "invalid prompt", "node_errors": {"3": "bad"}}
            self.send_response(200 if ok else 400)
            self.end_headers()
            self.wfile.write(json.dumps(reply).encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "wf_api.json"
    path.write_text(json.dumps(wf))
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert main(["queue", str(path), "--server", url, "--repeat", "2"]) == 0
        assert seen == [5, 6]
        assert main(["queue", str(path), "--server", url]) == 2
        assert "refused wf_api.json (HTTP 400)" in capsys.readouterr().err
    finally:
        server.shutdown()
    assert main(["queue", str(path), "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach ComfyUI at http://127.0.0.1:9" in capsys.readouterr().err
