"""The frontend extension: its JS unit tests (Node.js) and its legend data."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from unity_core.constants import MODALITIES
from unity_core.modalities import legend

WEB = Path(__file__).resolve().parents[1] / "web"


def test_legends_json_matches_the_library():
    data = json.loads((WEB / "legends.json").read_text())
    assert set(data) == set(MODALITIES)
    for m in MODALITIES:  # regenerate with scripts/make_legends.py when the codecs change
        assert data[m] == json.loads(json.dumps(legend(m)))


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_js_unit_tests_pass():
    proc = subprocess.run(["node", "--test", str(WEB / "tests")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_old_load_video_api_graph_fails_naming_the_new_inputs():
    """An API graph with Load Video's old inputs (which ComfyUI drops before the node's validator
    sees them) fails validation with the new inputs and the fix named; current graphs, with values
    or links, still pass, and a wrongly typed link is still refused."""
    from tests.comfy_env import run_child

    out = run_child("legacy_inputs", timeout=300)  # tests/comfy_children/legacy_inputs.py; skips without ComfyUI
    old = out["old_uniform"]
    assert not old["valid"]
    assert {"required_input_missing", "custom_validation_failed"} <= set(old["types"])
    message = next(d for d in old["details"] if "re-save" in d)
    for name in ("skip_first_frames", "end_frame", "select_every_nth", "frame_load_cap", "max_side", "num_frames",
                 "sampling 'stride'"):
        assert name in message
    assert out["new"] == {"valid": True, "types": [], "details": []}
    assert out["new_linked"]["valid"], out["new_linked"]
    wrong = out["new_linked_wrong_type"]
    assert not wrong["valid"] and any("end_frame: a linked FLOAT does not fit this INT input" in d
                                      for d in wrong["details"]), wrong
    assert not out["end_before_start"]["valid"]
    assert any("must be after skip_first_frames" in d for d in out["end_before_start"]["details"])
