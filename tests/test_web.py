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

