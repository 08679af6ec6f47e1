"""The latent codec and the built-in text encoder."""

import pytest
import torch

from tests.conftest import TINY_VAE
from unity_core.codec import LatentCodec, frames_to_video, small_vae_config, video_to_frames
from unity_core.text import MiniLMTextEncoder, load_text_encoder

TINY_VAE = {**TINY_VAE, "latents_mean": [0.5] * 4, "latents_std": [2.0] * 4}  # a normalisation that does something


def test_codec_shapes_ratios_and_ranges():
    codec = LatentCodec.from_config(TINY_VAE).eval()
    assert (codec.temporal_ratio, codec.spatial_ratio, codec.latent_channels) == (2, 4, 4)
    assert codec.latent_shape(9, 32, 16) == (4, 5, 8, 4)
    frames = torch.rand(9, 32, 16, 3)
    with torch.no_grad():
        z = codec.encode(frames_to_video(frames))
        video = codec.decode(z)
    assert z.shape == (1, 4, 5, 8, 4)
    assert video.shape == (1, 3, 9, 32, 16) and video.abs().max() <= 1
    assert video_to_frames(video).shape == (1, 9, 32, 16, 3)


@pytest.mark.parametrize("ratio", [4, 8])
def test_small_vae_config_sets_the_ratios(ratio):
    codec = LatentCodec.from_config(small_vae_config(ratio, base_dim=8, z_dim=4))
    assert (codec.temporal_ratio, codec.spatial_ratio, codec.latent_channels) == (4, ratio, 4)
    assert codec.latent_shape(17, 64, 32) == (4, 5, 64 // ratio, 32 // ratio)
    with pytest.raises(ValueError, match="4 or 8"):
        small_vae_config(16)


def test_windowed_encoding_codes_each_latent_from_its_own_window():
    """``window``: latent j of a long clip comes from the window of frames ending with its chunk
    (the first ones from one pass over the first window); no window, or one at least as long as
    the clip, is the plain causal pass."""
    torch.manual_seed(0)
    codec = LatentCodec.from_config(TINY_VAE).eval()  # 2x in time: windows are 2k+1 frames
    x = torch.rand(1, 3, 13, 16, 16) * 2 - 1
    with torch.no_grad():
        whole, windowed = codec.encode(x), codec.encode(x, window=5)
        assert torch.equal(codec.encode(x, window=13), whole)
        assert torch.equal(windowed[:, :, :3], codec.encode(x[:, :, :5]))
        for j in range(3, 7):  # latent j codes frames 2j-1, 2j; its window is frames 2j-4 .. 2j
            torch.testing.assert_close(windowed[:, :, j], codec.encode(x[:, :, 2 * j - 4:2 * j + 1])[:, :, -1])
        assert (windowed[:, :, 3:] - whole[:, :, 3:]).abs().max() > 1e-4  # the cache reaches past the window
        codec.encode_window = 5  # the pipeline sets it from pipeline.json's codec_window
        assert torch.equal(codec.encode(x), windowed)
    with pytest.raises(ValueError, match="2k\\+1"):
        codec.encode(x, window=4)


def test_codec_rejects_bad_sizes():
    codec = LatentCodec.from_config(TINY_VAE)
    with pytest.raises(ValueError, match="not 4k\\+1"):
        codec.latent_shape(8, 32, 32)
    with pytest.raises(ValueError, match="multiples of 4"):
        codec.latent_shape(9, 30, 32)
    with pytest.raises(ValueError, match=r"\[B, 3, F, H, W\]"):
        codec.encode(torch.zeros(1, 9, 32, 32))


def test_codec_save_load_round_trip(tmp_path):
    codec = LatentCodec.from_config(TINY_VAE).eval()
    codec.save_pretrained(tmp_path / "codec")
    again = LatentCodec.from_pretrained(tmp_path / "codec")
    x = frames_to_video(torch.rand(5, 16, 16, 3))
    ref = codec.state_dict()  # exact: the same weights bit for bit
    assert all(torch.equal(v, ref[k]) for k, v in again.state_dict().items()) and set(again.state_dict()) == set(ref)
    with torch.no_grad():  # two instances: BLAS may pick other kernels, so a tight tolerance
        torch.testing.assert_close(codec.encode(x), again.encode(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(FileExistsError):
        codec.save_pretrained(tmp_path / "codec")
    with pytest.raises(FileNotFoundError):
        LatentCodec.from_pretrained(tmp_path / "missing")


def test_minilm_embeddings_offline():
    enc = MiniLMTextEncoder(max_length=16)
    a = enc.encode(["a person walks forward", "depth map visualization", "a person walks forward"])
    assert a.shape == (3, 16, 384)
    torch.testing.assert_close(a[0], a[2])
    assert (a[0] - a[1]).abs().max() > 0.1
    tokens = int((a[0].abs().sum(-1) > 0).sum())
    assert 3 <= tokens < 16 and a[0, tokens:].abs().max() == 0  # zero rows past the prompt, like the release
    with pytest.raises(ValueError, match="unknown text encoder"):
        load_text_encoder("t5-from-the-internet")


def test_shipped_codec_codes_every_chunk_of_a_whole_clip():
    """The shipped codec must code late 4-frame chunks as well as the first ones: a Wan VAE
    trained on too-short crops never learns the feature cache between chunks, and its later
    latent frames decode to noise (the first shipped codec did: L1 0.25 on frames 8-16)."""
    from unity_core.data.synthworld import modality_values, render_clip
    from unity_core.modalities import encode
    from unity_core.pipeline import DEFAULT_DIR

    codec = LatentCodec.from_pretrained(DEFAULT_DIR / "codec")
    clip = render_clip(100003, 17, 64, 64)
    for frames in (clip.rgb, encode("depth", modality_values(clip, "depth"))):
        with torch.no_grad():
            back = video_to_frames(codec.decode(codec.encode(frames_to_video(frames))))[0]
        err = (back - frames).abs().mean(dim=(1, 2, 3))  # per frame, [0, 1] scale
        first, last = float(err[1:5].mean()), float(err[13:17].mean())
        assert last < 0.08 and last < 2 * first + 0.02, (first, last)


@pytest.mark.parametrize("decoder_only", [False, True])
def test_codec_training_moves_only_the_parts_it_should(decoder_only):
    """``train_codec(decoder_only=True)`` (``scripts/train_codec.py --decoder-only``) leaves the
    encoder, and so the latents a transformer was trained on, bit for bit as they were."""
    from unity_core.train.codec import train_codec
    from unity_core.train.pool import render_pool

    pool = render_pool(range(2), num_frames=5, height=16, width=16, log=None)
    codec = LatentCodec.from_config(TINY_VAE)
    before = {k: v.clone() for k, v in codec.vae.state_dict().items()}
    x = frames_to_video(pool.frames("rgb", slice(0, 1)))
    with torch.no_grad():
        z_before = codec.eval().encode(x)
    stats = train_codec(codec, pool, steps=2, batch=2, crop_size=16, lr=1e-2, log=None, decoder_only=decoder_only)
    after = codec.vae.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert stats["steps"] == 2 and any(k.startswith("decoder.") for k in moved)
    assert any(k.startswith("encoder.") for k in moved) != decoder_only
    with torch.no_grad():
        assert torch.equal(codec.encode(x), z_before) == decoder_only
    assert all(p.requires_grad for p in codec.vae.parameters())


def test_shipped_codec_codes_a_walk_longer_than_its_training_clips():
    """Exploration decodes a whole walk in one pass. The first shipped decoder, trained on
    17-frame clips, drifted past them (RGB L1 0.06 on frames 0-16 of 33-frame walks, 0.13-0.15
    on frames 17-32 of these two); the shipped one, fine-tuned on 33-frame clips of latents
    encoded in 17-frame windows (pipeline.json ``codec_window``), codes both halves alike."""
    import json

    import numpy as np

    from unity_core.data.synthworld import random_actions, render_clip
    from unity_core.pipeline import DEFAULT_DIR

    codec = LatentCodec.from_pretrained(DEFAULT_DIR / "codec")
    codec.encode_window = json.loads((DEFAULT_DIR / "pipeline.json").read_text())["codec_window"]
    assert codec.encode_window == 17
    for seed in (200003, 200011):  # bench/explore.py's held-out walks
        clip = render_clip(seed, 33, 64, 64, actions=random_actions(np.random.default_rng(seed), 8))
        with torch.no_grad():
            back = video_to_frames(codec.decode(codec.encode(frames_to_video(clip.rgb))))[0]
        err = (back - clip.rgb).abs().mean(dim=(1, 2, 3))
        early, late = float(err[:17].mean()), float(err[17:].mean())
        assert late < 0.09 and late < 1.3 * early, (early, late)


def test_a_bad_encode_window_is_refused_even_for_a_short_clip():
    codec = LatentCodec.from_config()
    with pytest.raises(ValueError, match="window must be 4k\\+1 frames"):
        codec.posterior(torch.zeros(1, 3, 5, 16, 16), window=16)
