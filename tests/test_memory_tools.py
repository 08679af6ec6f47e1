"""The pipeline's and the CLI's device, dtype and memory tools (diffusers' mechanisms)."""

from __future__ import annotations

import pytest
import torch

from unity_core.cli import main
from unity_core.pipeline import UnityVideoPipeline


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    return torch.rand(17, 64, 64, 3, generator=g)


def _estimate(pipe, clip):
    return pipe.estimate(clip, "depth", steps=2, seed=3)


def test_group_offload_to_disk_gives_the_plain_result(clip, tmp_path):
    plain = _estimate(UnityVideoPipeline.from_pretrained("default"), clip)
    pipe = UnityVideoPipeline.from_pretrained("default")
    pipe.enable_group_offload("cpu", "cpu", offload_to_disk_path=str(tmp_path))
    assert pipe.device == torch.device("cpu") and list(tmp_path.glob("*.safetensors"))
    out = _estimate(pipe, clip)
    assert torch.equal(out.modality_frames, plain.modality_frames)


def test_bf16_fp8_storage_and_freed_text_encoder(clip):
    ref = _estimate(UnityVideoPipeline.from_pretrained("default"), clip)
    pipe = UnityVideoPipeline.from_pretrained("default", dtype=torch.bfloat16)
    pipe.enable_layerwise_casting(torch.float8_e4m3fn, torch.bfloat16)
    pipe.free_text_encoder_after_encoding = True
    out = _estimate(pipe, clip)
    assert pipe.text_encoder is None
    err = (out.modality_frames - ref.modality_frames).abs().mean().item()
    print(f"bf16 compute + fp8 storage vs fp32: mean abs frame difference {err:.4f}")
    assert err < 0.1
    again = _estimate(pipe, clip)  # the cached prompts serve a second call
    assert torch.equal(again.modality_frames, out.modality_frames)
    with pytest.raises(ValueError, match="text encoder was freed"):
        pipe.encode_prompt("a prompt never encoded")


def test_vae_tiling_is_reachable(clip):
    pipe = UnityVideoPipeline.from_pretrained("default")
    pipe.enable_vae_tiling()
    assert pipe.codec.vae.use_tiling


def test_cli_bf16_and_offload_flags(carphone_path, tmp_path, capsys):
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(tmp_path / "d.mp4"),
                 "--steps", "2", "--dtype", "bf16", "--fp8-storage", "--free-text-encoder"]) == 0
    assert (tmp_path / "d.mp4").is_file() and (tmp_path / "d.npz").is_file()
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(tmp_path / "e.mp4"),
                 "--offload", "group"]) == 2
    assert "use it with --device cuda" in capsys.readouterr().err
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(tmp_path / "f.mp4"),
                 "--fp8-storage"]) == 2
    assert "--dtype bf16" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (group offloading to the GPU)")
def test_cli_cuda_group_offload(carphone_path, tmp_path):
    assert main(["estimate", "--modality", "depth", "--video", str(carphone_path), "--out", str(tmp_path / "g.mp4"),
                 "--steps", "2", "--device", "cuda", "--dtype", "bf16", "--offload", "group"]) == 0
