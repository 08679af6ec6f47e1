"""FSDP2 training (``fully_shard``) on 2 CPU processes (gloo) with one global data sampler.

accelerate 1.15 falls back to plain DDP on a CPU, so these tests drive FSDP2 directly: the
parameters must really be sharded (DTensors), 2 processes must give the loss curve of 1
process with the same global batch (fp32), and a sharded checkpoint (safetensors only, read
without unpickling anything) must resume exactly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

from tests.conftest import TINY_DIT
from unity_core.model import UnityVideoConfig, UnityVideoTransformer
from unity_core.train import LatentData, TrainConfig, Trainer

CFG = {**TINY_DIT, "dim": 32, "ffn_dim": 64, "in_channels": 4, "out_channels": 4, "text_dim": 8}
TRAIN = TrainConfig(batch_size=4, lr=3e-3, warmup_steps=1, seed=3)


def _data() -> LatentData:
    g = torch.Generator().manual_seed(0)
    lat = lambda: torch.randn(6, 4, 2, 4, 4, generator=g)  # noqa: E731
    return LatentData(rgb=lat(), modalities={"depth": lat(), "skeleton": lat()}, prompts=torch.randn(6, 3, 8, generator=g),
                      modality_prompts={"depth": torch.randn(1, 3, 8, generator=g), "skeleton": torch.randn(1, 3, 8, generator=g)},
                      empty_prompt=torch.zeros(1, 3, 8))


def _model():
    torch.manual_seed(0)
    return UnityVideoTransformer.from_config(UnityVideoConfig(**CFG))


def _worker(rank, world, tmp):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        from torch.distributed.tensor import DTensor

        data = LatentData.load(f"{tmp}/data.safetensors", stream=True)  # latents read from disk per batch
        trainer = Trainer(_model(), data, TRAIN, fsdp=True)
        sharded = all(isinstance(p, DTensor) for p in trainer.model.parameters())
        local = sum(p.to_local().numel() for p in trainer.model.parameters())
        losses = [trainer.train_step()["loss"] for _ in range(2)]
        trainer.save(f"{tmp}/ckpt")
        losses.append(trainer.train_step()["loss"])
        final = {n: t.cpu() for n, t in trainer.ema_model().state_dict().items()}

        again = Trainer(_model(), data, TRAIN, fsdp=True)
        import pickle
        from unittest import mock

        def refuse(*args, **kwargs):
            raise AssertionError("resume unpickled a file of the checkpoint")

        with mock.patch.object(pickle, "load", refuse):  # DCP's default reader pickle.load()s its .metadata
            again.resume(f"{tmp}/ckpt")
        resumed = again.train_step()["loss"]
        resumed_params = {n: t.cpu() for n, t in again.ema_model().state_dict().items()}
        torch.save({"sharded": sharded, "local": local, "losses": losses, "resumed": resumed, "final": final,
                    "resumed_params": resumed_params, "step": again.step}, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_fsdp_two_processes_match_one_and_resume_exactly():
    data = _data()
    single = Trainer(_model(), data, TRAIN)
    reference = [single.train_step()["loss"] for _ in range(3)]
    ref_params = {n: t for n, t in single.ema_model().state_dict().items()}
    total = sum(p.numel() for p in single.model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        data.save(os.path.join(tmp, "data.safetensors"))
        mp.spawn(_worker, args=(2, tmp), nprocs=2, join=True)
        ranks = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(2)]
        files = sorted(str(p.relative_to(tmp)) for p in Path(tmp, "ckpt").rglob("*") if p.is_file())
    # safetensors only (each rank's shards, the sampler state): nothing in the folder is a pickle
    assert files and all(f.endswith(".safetensors") for f in files), files
    assert sum(f.startswith("ckpt/shards/") for f in files) == 2, files
    for got in ranks:
        assert got["sharded"], "parameters are not DTensors: FSDP did not shard them"
        assert got["local"] < total, f"rank holds {got['local']} of {total} parameters: not sharded"
        torch.testing.assert_close(torch.tensor(got["losses"]), torch.tensor(reference), atol=1e-5, rtol=1e-5)
        assert got["step"] == 3
        assert abs(got["resumed"] - got["losses"][2]) < 1e-6, (got["resumed"], got["losses"][2])
        for name, value in ref_params.items():
            torch.testing.assert_close(got["final"][name], value, atol=1e-5, rtol=1e-4, msg=name)
            torch.testing.assert_close(got["resumed_params"][name], got["final"][name], atol=1e-6, rtol=0, msg=name)
    assert sum(r["local"] for r in ranks) >= total


def test_streamed_latents_train_like_loaded_ones(tmp_path):
    data = _data()
    data.save(tmp_path / "d.safetensors")
    eager = Trainer(_model(), LatentData.load(tmp_path / "d.safetensors"), TRAIN)
    streamed = Trainer(_model(), LatentData.load(tmp_path / "d.safetensors", stream=True), TRAIN)
    assert [eager.train_step()["loss"] for _ in range(2)] == [streamed.train_step()["loss"] for _ in range(2)]


def test_optimizer_choices_are_checked_before_training():
    import pytest

    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        Trainer(_model(), _data(), TrainConfig(batch_size=2, optimizer="nope"))
    with pytest.raises(ValueError, match="runs on CUDA only"):
        Trainer(_model(), _data(), TrainConfig(batch_size=2, optimizer="adamw8bit"))
    with pytest.raises(RuntimeError, match="torchrun"):
        Trainer(_model(), _data(), TrainConfig(batch_size=2), fsdp=True)
