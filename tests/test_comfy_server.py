"""The node suite in a real, running ComfyUI server (scripts/comfy_check.py as tests).

Skipped unless ``COMFYUI_URL`` names a running server with this repo in ``custom_nodes/``, e.g.

    COMFYUI_URL=http://127.0.0.1:8188 pytest -q tests/test_comfy_server.py

``COMFYUI_STEPS`` (optional) overrides every sampler's steps for a quicker run.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
URL = os.environ.get("COMFYUI_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="needs a running ComfyUI with this repo in custom_nodes/: set COMFYUI_URL=http://127.0.0.1:8188")

_spec = importlib.util.spec_from_file_location("comfy_check", ROOT / "scripts" / "comfy_check.py")
comfy_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(comfy_check)

WORKFLOWS = comfy_check.workflow_files(ROOT / "workflows")


@pytest.fixture(scope="module")
def client():
    return comfy_check.Client(comfy_check.require_loopback(URL))


@pytest.fixture(scope="module")
def object_info(client):
    return client.get_json("/object_info")


def test_every_node_is_registered(object_info):
    ours = comfy_check.node_class_names()
    assert ours and comfy_check.missing_nodes(object_info, ours) == []
    for name in ours:  # the server parsed our INPUT_TYPES into its own schema
        assert "input" in object_info[name] and object_info[name]["category"].startswith("UnityVideo")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_in_comfyui(path, client, object_info):
    wf = json.loads(path.read_text())
    steps = os.environ.get("COMFYUI_STEPS")
    if steps:
        comfy_check.set_steps(wf, int(steps))
    dirs = comfy_check.search_dirs()
    for nid, name in comfy_check.video_inputs(wf).items():
        local = comfy_check.find_local(name, dirs)
        assert local is not None, f"input {name} not found in {dirs}"
        wf[nid]["inputs"]["video"] = client.upload(local)
    result = comfy_check.run_workflow(client, wf, object_info, timeout=900)
    assert result["validated"], result.get("error")
    assert result["executed"], result.get("error")
    assert result["outputs"] and result["output_files"], result.get("error")
    assert all(f["bytes"] > 0 for f in result["output_files"])
