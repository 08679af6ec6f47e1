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


def _fingerprints(tensors):
    """Sorted (shape, dtype, sha1 of the bytes) of tensors: equal multisets = the same weights exactly."""
    import hashlib

    return sorted((tuple(t.shape), str(t.dtype), hashlib.sha1(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest())
                  for t in tensors)


def test_group_offload_to_disk_gives_the_plain_result(clip, tmp_path, default_pipeline):
    from safetensors.torch import load_file

    reference = default_pipeline
    plain = _estimate(reference, clip)
    pipe = UnityVideoPipeline.from_pretrained("default")
    pipe.enable_group_offload("cpu", "cpu", offload_to_disk_path=str(tmp_path))
    files = list(tmp_path.glob("*.safetensors"))
    assert pipe.device == torch.device("cpu") and files
    # exact: the offloaded groups on disk hold the model's weights bit for bit, every one of them
    on_disk = [t for f in files for t in load_file(str(f)).values()]
    assert _fingerprints(on_disk) == _fingerprints(reference.transformer.state_dict().values())
    out = _estimate(pipe, clip)
    # outputs of two model instances: BLAS may pick other kernels for other buffers (measured max
    # difference 2.4e-6 in the decoded frames here, 3.6e-7 on another CPU), so no bit equality. Depth
    # values are read back from the decoded frames through the 256-entry colour map, where such a
    # difference can tip a pixel into the neighbouring entry: at most one entry's step, on a few pixels
    # (measured: 63 of 69,632 pixels, 1.7e-3 at most); a wrong weight moves far more of the map
    diff = (out.values - plain.values).abs()
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 2e-5).float().mean() < 0.005, (diff.max(), (diff > 2e-5).sum())


def test_bf16_fp8_storage_and_freed_text_encoder(clip, default_pipeline):
    ref = _estimate(default_pipeline, clip)
    pipe = UnityVideoPipeline.from_pretrained("default", dtype=torch.bfloat16)
    pipe.enable_layerwise_casting(torch.float8_e4m3fn, torch.bfloat16)
    pipe.free_text_encoder_after_encoding = True
    out = _estimate(pipe, clip)
    assert pipe.text_encoder is None
    err = (out.modality_frames - ref.modality_frames).abs().mean().item()
    print(f"bf16 compute + fp8 storage vs fp32: mean abs frame difference {err:.4f}")
    # measured 0.0056 (bf16 alone: 0.0019; seeds 3 vs 4 in fp32: 0.20); bound = measured x 2
    assert err < 0.0112
    again = _estimate(pipe, clip)  # the cached prompts serve a second call
    assert torch.equal(again.modality_frames, out.modality_frames)
    with pytest.raises(ValueError, match="text encoder was freed"):
        pipe.encode_prompt("a prompt never encoded")


def test_vae_tiling_engages_and_matches_untiled(carphone_path):
    """144x176 frames in 64-pixel tiles (stride 48): the tiled encode and decode run (diffusers'
    ``tiled_encode`` / ``tiled_decode``) and give nearly the untiled result. Measured here: latent
    mean abs difference 0.048 (latent std 0.92); reconstruction error 0.232 tiled vs 0.224
    untiled (the default codec is trained on 64x64 synthetic clips)."""
    from unittest import mock

    from unity_core.codec import frames_to_video
    from unity_core.io import read_video

    frames, _ = read_video(carphone_path)
    video = frames_to_video(torch.as_tensor(frames[:5]).float())  # [1, 3, 5, 144, 176] in [-1, 1]
    pipe = UnityVideoPipeline.from_pretrained("default")
    codec, vae = pipe.codec, pipe.codec.vae
    with torch.no_grad():
        latent = codec.encode(video)
        recon = codec.decode(latent)
        pipe.enable_vae_tiling(tile_sample_min_height=64, tile_sample_min_width=64, tile_sample_stride_height=48,
                               tile_sample_stride_width=48)
        assert vae.use_tiling
        with mock.patch.object(vae, "tiled_encode", wraps=vae.tiled_encode) as enc, \
                mock.patch.object(vae, "tiled_decode", wraps=vae.tiled_decode) as dec:
            latent_t = codec.encode(video)
            recon_t = codec.decode(latent_t)
    assert enc.call_count >= 1 and dec.call_count >= 1, "the tiled paths did not run"
    assert latent_t.shape == latent.shape and recon_t.shape == video.shape
    gap = (latent_t - latent).abs().mean().item()
    assert 0 < gap < 0.1  # tiles are really used (not bit-equal), and agree to 0.048 measured (x 2 margin)
    err, err_t = (recon - video).abs().mean().item(), (recon_t - video).abs().mean().item()
    assert err_t < 1.1 * err, (err_t, err)  # measured 3.6 % worse than untiled


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
