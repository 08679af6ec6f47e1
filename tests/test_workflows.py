"""Every shipped workflow is valid for a real ComfyUI; the default-model ones run to success through
ComfyUI's own executor, and the estimate / control / joint graphs (core KSampler or
SamplerCustomAdvanced on the UnityVideo MODEL) give what ``unityvideo estimate/control/generate`` give
for the same seed. The run itself needs ComfyUI (``COMFYUI_PATH``); the format checks do not.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"  # API format, one folder per model family
EXAMPLES = ROOT / "example_workflows"  # UI format, flat: ComfyUI's template browser lists these
DEFAULT_API = sorted((WORKFLOWS / "default").glob("*_api.json"))
FIVE_B_API = sorted((WORKFLOWS / "5b").glob("*_api.json"))
YUME_API = sorted((WORKFLOWS / "yume").glob("*_api.json"))
STEPS = 4  # a divisor of 1000: core's simple schedule is then our linspace, as at 20 steps
# core nodes the graphs use where core has one; the pack supplies the rest
CORE = {"KSampler", "SamplerCustomAdvanced", "RandomNoise", "KSamplerSelect", "BasicScheduler", "CLIPLoader",
        "CLIPTextEncode", "VAELoader", "VAEEncode", "VAEDecode"}


def _ui_path(api: Path) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_workflows import ui_name

    return EXAMPLES / f"{ui_name(api.parent.name, api.name[: -len('_api.json')])}.json"


def test_every_job_has_both_formats():
    assert len(DEFAULT_API) == 8 and len(FIVE_B_API) == 7 and len(YUME_API) == 1
    for api in DEFAULT_API + FIVE_B_API + YUME_API:
        ui = json.loads(_ui_path(api).read_text())
        assert {"nodes", "links", "version"} <= set(ui)
        prompt = json.loads(api.read_text())
        assert len(ui["nodes"]) == len(prompt)
        assert [n["type"] for n in ui["nodes"]] == [n["class_type"] for n in prompt.values()]


def test_templates_are_ui_graphs_only_with_thumbnails():
    """``example_workflows/`` (and any ``workflows/*.json``, which ComfyUI also lists) holds exactly
    the UI twin of every API graph, each with a same-name ``.jpg`` thumbnail for the browser."""
    assert not list(WORKFLOWS.glob("*.json")), "ComfyUI lists workflows/*.json as templates: keep graphs in subfolders"
    ui = sorted(EXAMPLES.glob("*.json"))
    assert sorted(ui) == sorted(_ui_path(api) for api in DEFAULT_API + FIVE_B_API + YUME_API)
    for path in ui:
        graph = json.loads(path.read_text())
        assert "nodes" in graph and "links" in graph, f"{path.name} is not a UI-format graph"
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"no JPEG thumbnail {thumb.name}"
    assert not [p for p in EXAMPLES.iterdir() if p.suffix not in (".json", ".jpg")]


def test_sampling_graphs_use_core_samplers_and_no_pack_sampler():
    for api in DEFAULT_API + FIVE_B_API + YUME_API:
        classes = {n["class_type"] for n in json.loads(api.read_text()).values()}
        assert all(c in CORE or c.startswith("UnityVideo") for c in classes), (api.name, classes)
        if "explore" not in api.name:
            assert classes & {"KSampler", "SamplerCustomAdvanced"}, api.name
            assert "UnityVideoTask" in classes and "UnityVideoSplit" in classes, api.name
    five_b = {n["class_type"] for api in FIVE_B_API for n in json.loads(api.read_text()).values()}
    assert {"CLIPLoader", "VAELoader", "VAEDecode", "CLIPTextEncode"} <= five_b


@pytest.fixture(scope="module")
def figures(carphone_path):
    from tests.workflow_runner import run_workflows

    return run_workflows(DEFAULT_API, FIVE_B_API + YUME_API, carphone_path, steps=STEPS)  # the 5B ones: validated


@pytest.mark.parametrize("path", FIVE_B_API + YUME_API, ids=lambda p: p.stem)
def test_5b_workflows_validate_in_comfyui(figures, path):
    f = figures["validate_5b"][path.name]
    assert f["valid"], f
    assert f["outputs"], f  # output nodes that would run


@pytest.mark.parametrize("path", DEFAULT_API, ids=lambda p: p.stem)
def test_default_workflows_run_to_success(figures, path):
    f = figures["runs"][path.name[: -len("_api.json")]]
    assert f["success"], f
    assert len(f["saved"]) == f["savers"], f


@pytest.mark.parametrize("name,streams", [("estimate_depth", ("modality",)), ("control_pose", ("rgb",)),
                                          ("joint_depth", ("rgb", "modality"))])
def test_default_graphs_equal_the_cli_pipeline(figures, name, streams):
    f = figures["match"][name]
    for stream in streams:
        assert f[stream] < 1e-4, f  # frames in [0, 1]: the same video
