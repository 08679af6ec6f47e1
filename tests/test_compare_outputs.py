"""scripts/compare_outputs.py: how outputs of the tree under test, its second run and the baseline
are matched and judged (no model runs here; the script's whole run is a manual check)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def co():
    spec = importlib.util.spec_from_file_location("compare_outputs", REPO / "scripts" / "compare_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_webp(path: Path, frames: np.ndarray) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], lossless=True, duration=125, loop=0)


def _tree(root: Path, values: np.ndarray, frames: np.ndarray, seconds: float, extra: bool = False) -> Path:
    job = root / "estimate_depth"
    job.mkdir(parents=True)
    np.savez_compressed(job / "depth.npz", values=values, modality=np.array("depth"))
    np.save(job / "values.npy", values)
    (job / "walk.json").write_text(json.dumps({"frames": 9, "segments": [{"seconds": seconds, "action": "W"}]}))
    _write_webp(job / "depth.webp", frames)
    if extra:
        (job / "new.npy").write_bytes(b"")
    return root


def test_identical_runs_are_identical(co, tmp_path):
    rng = np.random.default_rng(0)
    values, frames = rng.random((3, 8, 8), dtype=np.float32), rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    trees = [_tree(tmp_path / n, values, frames, seconds=s) for n, s in (("head", 1.0), ("again", 2.0), ("base", 3.0))]
    found = co.compare_part(*trees, statuses={})
    assert found["differ"] == [] and found["missing"] == [] and found["not_reproducible"] == []
    # the webp gives two outputs (frames and file); the timing key of the json is left out
    assert sorted(found["items"]) == ["estimate_depth/depth.npz", "estimate_depth/depth.webp#file",
                                      "estimate_depth/depth.webp#frames", "estimate_depth/values.npy",
                                      "estimate_depth/walk.json"]
    assert all(f["identical"] and f["reproducible"] for f in found["items"].values())


def test_one_changed_value_is_a_difference(co, tmp_path):
    rng = np.random.default_rng(1)
    values, frames = rng.random((3, 8, 8), dtype=np.float32), rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    changed = values.copy()
    changed[1, 2, 3] = np.nextafter(changed[1, 2, 3], np.float32(2))  # one ulp
    other = frames.copy()
    other[0, 0, 0, 0] ^= 1
    head = _tree(tmp_path / "head", values, frames, 1.0)
    again = _tree(tmp_path / "again", values, frames, 1.0)
    base = _tree(tmp_path / "base", changed, other, 1.0)
    found = co.compare_part(head, again, base, statuses={})
    assert sorted(found["differ"]) == ["estimate_depth/depth.npz", "estimate_depth/depth.webp#file",
                                       "estimate_depth/depth.webp#frames", "estimate_depth/values.npy"]
    npy = found["items"]["estimate_depth/values.npy"]
    assert npy["share_differing"] == pytest.approx(1 / values.size) and 0 < npy["max_abs_diff"] < 1e-6
    assert found["items"]["estimate_depth/depth.webp#frames"]["max_abs_diff_255"] == 1.0


def test_unreproducible_missing_extra_and_failed(co, tmp_path):
    rng = np.random.default_rng(2)
    values, frames = rng.random((3, 8, 8), dtype=np.float32), rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    head = _tree(tmp_path / "head", values, frames, 1.0, extra=True)
    again = _tree(tmp_path / "again", values + 1, frames, 1.0)  # the tree does not reproduce its values
    base = _tree(tmp_path / "base", values + 2, frames, 1.0)
    (base / "estimate_depth" / "gone.npy").write_bytes((head / "estimate_depth" / "values.npy").read_bytes())
    statuses = {"head": {"jobs": {"estimate_depth": {"ok": False, "error": "RuntimeError: boom"}}},
                "base": {"jobs": {"estimate_depth": {"ok": True, "error": None}}}}
    found = co.compare_part(head, again, base, statuses)
    assert found["not_reproducible"] == ["estimate_depth/depth.npz", "estimate_depth/values.npy"]
    assert found["differ"] == []  # not reproducible: not held to the baseline
    assert found["missing"] == ["estimate_depth/gone.npy"] and found["extra"] == ["estimate_depth/new.npy"]
    assert found["failed_jobs"] == {"head": {"estimate_depth": "RuntimeError: boom"}}


def test_save_value_splits_outputs(co, tmp_path):
    meta = {}
    value = {"values": torch.arange(6, dtype=torch.float32).reshape(2, 3), "modality": "depth",
             "half": torch.ones(2, dtype=torch.bfloat16), "pairs": [(0, 4), (4, 8)]}
    co.save_value(tmp_path, "out", value, meta)
    assert np.array_equal(np.load(tmp_path / "out.values.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
    bits = np.load(tmp_path / "out.half.bfloat16.bits.npy")
    assert bits.dtype == np.int16 and bits.tolist() == [0x3F80, 0x3F80]  # bfloat16 1.0
    assert meta == {"out.modality": "depth", "out.pairs": [[0, 4], [4, 8]]}


def test_usage_errors_exit_2(co, tmp_path, capsys):
    assert co.main(["--base", "HEAD", "--parts", "cli,nope", "--workdir", str(tmp_path)]) == 2
    assert "--parts takes" in capsys.readouterr().err
    assert co.main(["--base", "no-such-commit-xyz", "--workdir", str(tmp_path)]) == 2
    assert "is not a commit" in capsys.readouterr().err


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def test_mp4_is_never_held_to_the_baseline(co, tmp_path):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    roots = {n: tmp_path / n for n in ("head", "again", "base")}
    for name, root in roots.items():
        root.mkdir()
        _write_mp4(root / "depth.mp4", frames if name != "base" else 255 - frames)
    found = co.compare_part(roots["head"], roots["again"], roots["base"], statuses={})
    # equal in the two runs of the tree, unequal to the baseline: still not held (x264 is not reproducible)
    assert found["differ"] == [] and found["not_reproducible"] == ["depth.mp4#frames", "depth.mp4#file"]
    item = found["items"]["depth.mp4#frames"]
    assert item["same_as_again"] is True and item["identical"] is False and item["reproducible"] is False
