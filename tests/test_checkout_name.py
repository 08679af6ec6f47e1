"""The suite runs in a checkout named like a custom node (``ComfyUI-UnityVideo``): pytest must not
import the root ``__init__.py`` (the ComfyUI entry point) as a test package (tests/conftest.py)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mini_checkout(where: Path, with_conftest: bool) -> Path:
    """The root entry point, the pytest configuration and one test, in a hyphenated folder."""
    repo = where / "ComfyUI-UnityVideo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "__init__.py", repo / "__init__.py")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    if with_conftest:
        shutil.copy(ROOT / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    return repo


@pytest.mark.parametrize("with_conftest", [True, False], ids=["with-conftest", "without"])
def test_hyphenated_checkout_collects_without_importing_the_entry_point(tmp_path, with_conftest):
    repo = _mini_checkout(tmp_path, with_conftest)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    if with_conftest:
        assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:]
    else:  # the failure the conftest prevents (the entry point's relative import, outside a package)
        assert proc.returncode != 0 and "ImportError" in proc.stdout and "__init__.py" in proc.stdout, proc.stdout[-3000:]
