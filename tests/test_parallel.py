"""Context-parallel inference (diffusers' hooks + Ulysses attention) on 2 CPU processes (gloo).

On diffusers 0.42.1 ``enable_parallelism`` needs an accelerator, so the CPU path builds the
config on a CPU device mesh and applies the model's ``_cp_plan`` directly
(:func:`unity_core.model.parallel.enable_context_parallel`); the results must equal the
single-process ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.conftest import TINY_DIT

ROOT = Path(__file__).resolve().parents[1]
CFG = {**TINY_DIT, "num_layers": 3, "text_dim": 32}
TASKS = ("text2all", "video2flow", "flow2video")


def _model():
    from unity_core.model import UnityVideoConfig, UnityVideoTransformer

    torch.manual_seed(0)
    model = UnityVideoTransformer.from_config(UnityVideoConfig(**CFG)).eval()
    with torch.no_grad():
        for p in [model.flow_in.weight, *model.modality_embeddings.values()]:
            p.normal_(0, 0.1)
    return model


def _inputs():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(1, 8, 2, 4, 4, generator=g), torch.randn(1, 8, 2, 4, 4, generator=g),
            torch.randn(1, 5, 32, generator=g))


def _run_all(model):
    """Forward and 2-step sampling of every task: {name: tensor}."""
    from unity_core.sampling import sample

    rgb, mod, ctx = _inputs()
    out = {}
    with torch.no_grad():
        v_rgb, v_mod = model(rgb, torch.tensor([500.0]), ctx, mod, "depth", ctx, return_dict=False)
        out["forward.rgb"], out["forward.mod"] = v_rgb, v_mod
        for task in TASKS:
            res = sample(model, task, context=ctx, modality="depth", modality_context=ctx, rgb_latent=rgb,
                         modality_latent=mod, shape=rgb.shape, steps=2, seed=7)
            out[f"{task}.rgb"], out[f"{task}.mod"] = res.rgb_latent, res.modality_latent
    return out


def _tokens_seen(model):
    """Per block, the tokens its feed-forward gets and the RoPE rows its self-attention gets in
    one forward of :func:`_inputs` (a joint sequence of 2 * 2 * 4 = 16 tokens)."""
    seen = []
    hooks = [h for block in model.blocks for h in (
        block.ffn.register_forward_pre_hook(lambda m, a: seen.append(("ffn", a[0].shape[1]))),
        block.attn1.register_forward_pre_hook(lambda m, a: seen.append(("rope", a[3].shape[0]))))]
    rgb, mod, ctx = _inputs()
    try:
        with torch.no_grad():
            model(rgb, torch.tensor([500.0]), ctx, mod, "depth", ctx)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _worker(rank, world, store, results):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        from unity_core.model.parallel import enable_context_parallel

        model = _model()
        enable_context_parallel(model)
        tokens = _tokens_seen(model)
        out = _run_all(model)
        try:  # a joint sequence (f*h*2w tokens) always splits in 2; a lone RGB stream of 3 tokens does not
            model(torch.randn(1, 8, 1, 2, 6), torch.tensor([1.0]), torch.randn(1, 3, 32))
            error = ""
        except ValueError as err:
            error = str(err)
        torch.save({"out": out, "error": error, "tokens": tokens}, f"{results}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ulysses_two_processes_equal_one():
    reference = _run_all(_model())
    whole = _tokens_seen(_model())
    assert whole == [("rope", 16), ("ffn", 16)] * CFG["num_layers"]
    with tempfile.TemporaryDirectory() as tmp:
        store, results = os.path.join(tmp, "store"), os.path.join(tmp, "out")
        mp.spawn(_worker, args=(2, store, results), nprocs=2, join=True)
        ranks = [torch.load(f"{results}.{r}", weights_only=True) for r in range(2)]
    for got in ranks:  # sharded: every block of every rank sees its half of the tokens, and only that
        assert got["tokens"] == [("rope", 8), ("ffn", 8)] * CFG["num_layers"], got["tokens"]
        for key, ref in reference.items():
            torch.testing.assert_close(got["out"][key], ref, atol=1e-5, rtol=1e-5, msg=key)
        assert "token count (3)" in got["error"] and "divisible by 2" in got["error"]
    from unity_core.model.parallel import check_divisible

    with pytest.raises(ValueError, match="heads"):
        check_divisible(3, 4, 2)


def test_cli_parallel_under_torchrun(carphone_path, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    common = ["estimate", "--modality", "depth", "--video", str(carphone_path), "--steps", "2", "--seed", "5"]
    single = subprocess.run([sys.executable, "-m", "unity_core.cli", *common, "--out", str(tmp_path / "one.mp4")],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                            "-m", "unity_core.cli", *common, "--out", str(tmp_path / "two.mp4"), "--parallel", "2"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert not (tmp_path / "two_1.mp4").exists(), "only rank 0 writes"
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    numeric = [k for k in a.files if a[k].dtype.kind in "fiub"]
    assert numeric
    for key in a.files:
        if key in numeric:
            np.testing.assert_allclose(a[key], b[key], atol=1e-4, err_msg=key)
        else:
            assert (a[key] == b[key]).all(), key


def test_cli_explore_under_torchrun_writes_once(carphone_path, tmp_path):
    """Every rank of ``explore --parallel 2`` holds the same walk; only rank 0 writes it (before
    the guard both ranks wrote, leaving walk.json and walk_1.json)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "unity_core.cli", "explore", "--image", str(carphone_path), "--actions", "W",
                          "--steps", "1", "--out", str(tmp_path / "walk.mp4"), "--parallel", "2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.json", "walk.mp4"]
    assert run.stdout.count("explore W:") == 1, run.stdout
