"""Every shipped workflow is valid; the default-model ones execute in-process."""

import json
from pathlib import Path

import pytest
import torch

from workflow_runner import execute, validate

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
DEFAULT_API = sorted(WORKFLOWS.glob("*_api.json"))
FIVE_B_API = sorted((WORKFLOWS / "5b").glob("*_api.json"))


def test_every_job_has_both_formats():
    assert len(DEFAULT_API) == 8 and len(FIVE_B_API) == 7
    for api in DEFAULT_API + FIVE_B_API:
        ui = json.loads(api.with_name(api.name.replace("_api", "")).read_text())
        assert {"nodes", "links", "version"} <= set(ui)
        assert len(ui["nodes"]) == len(json.loads(api.read_text()))


@pytest.mark.parametrize("path", FIVE_B_API, ids=lambda p: p.stem)
def test_5b_workflows_validate(path):
    validate(json.loads(path.read_text()))


@pytest.mark.parametrize("path", DEFAULT_API, ids=lambda p: p.stem)
def test_default_workflows_execute(path, tmp_path, monkeypatch, carphone_path):
    monkeypatch.setenv("UNITYVIDEO_OUTPUT_DIR", str(tmp_path))
    wf = json.loads(path.read_text())
    for node in wf.values():
        if node["class_type"] == "UnityVideoLoadVideo":
            node["inputs"]["video"] = str(carphone_path)
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = 2
    results = execute(wf)
    saved = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    savers = [n for n in wf.values() if n["class_type"] in ("UnityVideoSaveVideo", "UnityVideoSaveValues")]
    assert len(saved) == len(savers), saved
    images = [v[0] for v in results.values() if isinstance(v, tuple) and v and isinstance(v[0], torch.Tensor) and v[0].ndim == 4]
    assert images and all(torch.isfinite(x).all() and x.shape[-1] == 3 for x in images)
    for nid, node in wf.items():
        if node["class_type"] == "UnityVideoExplore":  # the start frame, then 4 frames per action
            frames, done = results[nid]
            assert done == node["inputs"]["actions"] and frames.shape[0] == 1 + 4 * len(done.split())
