"""Yume-5B (Yume 1.5): the packed-history forward and the sampler against the float32 oracle of
the release's own code (stdstu12/YUME at 111c3fa; tests/fixtures/yume_oracle/, facts in its
JSON), and exploration with a Yume model."""

import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_DIT
from unity_core.explore.long_video import walk_frame_count
from unity_core.explore.samplers import YUME5B_DEFAULTS, generate_yume_walk, yume_history
from unity_core.model import load_transformer
from unity_core.model.yume import (
    chunk_grid,
    history_chunks,
    history_token_count,
    pack_release_history,
    packed_forward,
    pad_context,
    plain_forward,
)
from unity_core.sampling.schedule import flow_sigmas
from unity_core.sampling.yume import BlockCache, TimeTravel

ORACLE = Path(__file__).resolve().parent / "fixtures" / "yume_oracle"
META = json.loads((ORACLE / "yume_tiny_oracle.json").read_text())
CASES = META["cases"]
TEXT_LEN = META["tiny_config"]["from_config"]["text_len"]  # 16
#: The tiny model of the oracle as our config (not a preset): text_dim 4096 as the real model.
TINY = {**TINY_DIT, "dim": 32, "ffn_dim": 80, "in_channels": 48, "out_channels": 48, "text_dim": 4096,
        "modality_stream": False, "history_embeddings": True}
ATOL = 1e-5
FORWARD_CASES = [k for k, v in CASES.items() if v["kind"] == "forward"]


@pytest.fixture(scope="module")
def model():
    """The oracle's weights (original Wan names + the five history convs, bf16 values) through our
    loader and key map, in float32."""
    return load_transformer(ORACLE / "yume_tiny_weights.safetensors", config=TINY, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def oracle():
    return load_file(str(ORACLE / "yume_tiny_oracle.safetensors"))


def _context(oracle, spec) -> torch.Tensor:
    key = spec if isinstance(spec, str) else spec["key"]
    key = key if key.startswith("shared.") else f"shared.context_{key}"
    return oracle[key][None]


def _max_diff(a, b) -> float:
    return (a - b).abs().max().item()


# ----------------------------------------------------------------------------------------------
# The forward
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_matches_the_release(model, oracle, case):
    spec = CASES[case]
    inp = spec["inputs"]
    x = oracle[f"case.{case}.in.x"][None]
    t = oracle[f"case.{case}.in.t"]
    ctx = _context(oracle, inp["context"])
    ref = oracle[f"case.{case}.out"][None]
    with torch.no_grad():
        if not inp["flag"]:
            out = plain_forward(model, x, t, ctx, seq_len=inp["seq_len"], text_len=TEXT_LEN)
        else:
            n = spec["history_frames"]
            # the sampler's t: zeros over the history's unpacked tokens, then sigma x 1000
            assert t.dtype == torch.float64 and t[0, 0] == 0 and t[0, -1] > 0
            assert int((t[0] == 0).sum()) == n * x.shape[-2] * x.shape[-1] // 4
            out = packed_forward(model, x[:, :, :n], x[:, :, n:], t[:, -1], ctx, text_len=TEXT_LEN)
    assert out.shape == ref.shape
    assert _max_diff(out, ref) <= ATOL, case


@pytest.mark.parametrize("case", [c for c in FORWARD_CASES if CASES[c]["inputs"]["flag"]])
def test_packing_follows_the_release_chunk_table(model, oracle, case):
    """Chunks (conv, frames, grid, temporal offset), the packed tokens and the RoPE indices of
    every token equal what the official forward built."""
    spec = CASES[case]
    n = spec["history_frames"]
    x = oracle[f"case.{case}.in.x"][None]
    h, w = x.shape[-2:]
    chunks = history_chunks(n)
    expect = [c for c in spec["chunks"] if not c.get("new_frames")]
    assert len(chunks) == len(expect)
    conv_of = {"1x": "patch_embedding", "2x": "patch_embedding_2x", "4x": "patch_embedding_4x",
               "8x": "patch_embedding_8x", "16x": "patch_embedding_16x",
               "64x": "patch_embedding_2x_f -> convpadd(32) -> patch_embedding_16x"}
    offset = 0
    for chunk, ref in zip(chunks, expect):
        first, _, last = ref["source_frames"].partition("..")
        frames = list(range(int(first), int(last or first) + 1))
        assert list(chunk.frames) == frames or (n <= 2 and set(chunk.frames) == set(frames))
        assert conv_of[chunk.name] == ref["conv"]
        assert list(chunk_grid(chunk.kernel, h, w)) == ref["grid_hw"] and ref["rope_t_offset"] == offset
        offset += len(chunk.frames)
    assert offset == (3 if n <= 2 else n) == spec["chunks"][-1]["rope_t_offset"]
    assert history_token_count(n, h, w) == spec["tokens"]["history"]
    with torch.no_grad():
        packed = pack_release_history(model, x[:, :, :n], x[:, :, n:])
    assert packed.num_history_tokens == spec["tokens"]["history"]
    assert torch.equal(packed.positions, oracle[f"case.{case}.dbg.rope_pos"])
    assert _max_diff(packed.tokens[0], oracle[f"case.{case}.dbg.tokens_in"]) <= ATOL


def test_the_tiers_cover_every_history_length():
    bounds = {1: 3, 2: 3, 3: 3, 6: 3, 7: 4, 22: 4, 23: 5, 86: 5, 87: 6, 342: 6, 343: 7, 1366: 7}
    for n, count in bounds.items():
        chunks = history_chunks(n)
        assert len(chunks) == count and all(c.frames for c in chunks)
        if n >= 3:  # every frame once, in time order
            assert [f for c in chunks for f in c.frames] == list(range(n))
        assert chunks[0].name == ("1x" if n <= 86 else "2x")
    assert [c.name for c in history_chunks(7)] == ["1x", "4x", "2x", "1x"]
    assert [len(c.frames) for c in history_chunks(1366)] == [1, 1024, 256, 64, 16, 2, 3]
    for bad in (0, 1367):
        with pytest.raises(ValueError, match="history"):
            history_chunks(bad)
    # 704 x 1280 (latent 44 x 80): the image-to-video first segment
    assert history_token_count(5, 44, 80) == 2420 and chunk_grid(128, 44, 80) == (1, 1)


def test_context_padding_and_model_checks(model):
    ctx = torch.randn(1, 5, 4096)
    padded = pad_context(ctx, 16)
    assert padded.shape == (1, 16, 4096) and torch.equal(padded[:, :5], ctx) and not padded[:, 5:].any()
    with pytest.raises(ValueError, match="text_len=4"):
        pad_context(ctx, 4)
    from unity_core.model import UnityVideoTransformer

    plain = UnityVideoTransformer.from_config({**TINY, "history_embeddings": False})
    with pytest.raises(ValueError, match="no Yume history patch embeddings"):
        packed_forward(plain, torch.zeros(1, 48, 2, 4, 4), torch.zeros(1, 48, 8, 4, 4), torch.zeros(1), ctx)
    with pytest.raises(ValueError, match="seq_len 2 is below"):
        plain_forward(model, torch.zeros(1, 48, 1, 4, 4), torch.zeros(1), ctx, seq_len=2, text_len=16)


# ----------------------------------------------------------------------------------------------
# The sampler
# ----------------------------------------------------------------------------------------------


def test_sigma_grid_is_the_release():
    sig = flow_sigmas(4, 7.0, dtype=torch.float64)
    assert sig.dtype == torch.float64
    torch.testing.assert_close(sig, torch.tensor([1.0, 21 / 22, 0.875, 0.7, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)
    assert float(sig[1]) * 1000 == 954.5454545454546  # the oracle's t of the packed cases
    assert (YUME5B_DEFAULTS["steps"], YUME5B_DEFAULTS["shift"], YUME5B_DEFAULTS["cfg"]) == (4, 7.0, 1.0)


def test_image_to_video_denoise_matches_the_release(model, oracle):
    hist = oracle["denoise.i2v.in.history"][None]
    noise = oracle["denoise.i2v.in.noise_new"][None]
    ctx = _context(oracle, "a")
    with torch.no_grad():
        # the two velocities of the 2-step run (t = 1000, then 875)
        v0 = packed_forward(model, hist, noise, torch.tensor([1000.0], dtype=torch.float64), ctx, text_len=TEXT_LEN)
        assert _max_diff(v0[0], oracle["denoise.i2v_2step.step0.v"]) <= ATOL
        x1 = noise + (0.875 - 1.0) * v0
        v1 = packed_forward(model, hist, x1, torch.tensor([875.0], dtype=torch.float64), ctx, text_len=TEXT_LEN)
        assert _max_diff(v1[0], oracle["denoise.i2v_2step.step1.v"]) <= ATOL
        for steps in (2, 4):
            out = generate_yume_walk(model, hist, [ctx], steps=steps, noise=[noise], text_len=TEXT_LEN)
            assert out.latent.shape == (1, 48, 13, 4, 6) and torch.equal(out.latent[:, :, :5], hist)
            assert _max_diff(out.latent[0, :, 5:], oracle[f"denoise.i2v_{steps}step.out_new"]) <= ATOL
            assert out.history_tokens == [CASES["packed_n5"]["tokens"]["history"]]


def test_text_to_video_chain_matches_the_release(model, oracle):
    ctx = _context(oracle, "a")
    noise = [oracle["denoise.t2v_chain.in.noise_seg0"][None], oracle["denoise.t2v_chain.in.noise_seg1_new"][None]]
    with torch.no_grad():
        out = generate_yume_walk(model, None, [ctx, ctx], steps=2, noise=noise, text_len=TEXT_LEN)
    assert out.latent.shape == (1, 48, 16, 4, 6) and out.history_tokens[0] == 0
    assert _max_diff(out.latent[0, :, :8], oracle["denoise.t2v_chain.seg0.out"]) <= ATOL
    assert _max_diff(out.latent[0, :, 8:], oracle["denoise.t2v_chain.seg1.out_new"]) <= ATOL


def test_history_modes_and_the_addons_off_are_plain(model, oracle):
    hist = oracle["denoise.i2v.in.history"][None]
    ctx = _context(oracle, "a")
    walk = dict(steps=2, seed=5, text_len=TEXT_LEN)
    with torch.no_grad():
        plain = generate_yume_walk(model, hist, [ctx] * 3, **walk)
        assert plain.latent.shape[2] == 5 + 3 * 8
        # all: history grows 5, 13, 21 latents; start+last keeps 5 + the last 8
        assert plain.history_tokens == [history_token_count(n, 4, 6) for n in (5, 13, 21)]
        web = generate_yume_walk(model, hist, [ctx] * 3, history_mode="start+last", **walk)
        assert web.history_tokens == [history_token_count(n, 4, 6) for n in (5, 13, 13)]
        assert torch.equal(web.latent[:, :, :21], plain.latent[:, :, :21])  # same until the history differs
        assert not torch.allclose(web.latent[:, :, 21:], plain.latent[:, :, 21:])
        off = generate_yume_walk(model, hist, [ctx] * 3, time_travel=TimeTravel(lookahead=0),
                                 cache=BlockCache(blocks=()), **walk)
        assert torch.equal(off.latent, plain.latent)
        cache = BlockCache(blocks=(1,), interval=2)
        cached = generate_yume_walk(model, hist, [ctx], cache=cache, **walk)
        assert cache.skipped == 1 and not torch.equal(cached.latent, plain.latent[:, :, :13])
        sde = generate_yume_walk(model, hist, [ctx], steps=4, seed=5, text_len=TEXT_LEN,
                                 time_travel=TimeTravel(interval=2, lookahead=1, sde=True))
        assert torch.isfinite(sde.latent).all()
    window = torch.arange(30.0).view(1, 1, 30, 1, 1)
    assert yume_history(window, 5, "start+last")[0, 0, :, 0, 0].tolist() == [*range(5), *range(22, 30)]
    assert torch.equal(yume_history(window, 5, "all"), window)
    with pytest.raises(ValueError, match="unknown history mode"):
        yume_history(window, 5, "last")
    with pytest.raises(ValueError, match="noise of segment 0"):
        generate_yume_walk(model, hist, [ctx], noise=[torch.zeros(1, 48, 8, 4, 8)], text_len=TEXT_LEN)


def test_walk_frame_count():
    assert walk_frame_count(1) == 33 and walk_frame_count(3) == 97  # 1 + 32 k
    assert walk_frame_count(2, 1) == 9  # the default model: 4 frames per segment
    assert walk_frame_count(2, image_start=False) == 61  # 29 + 32
    with pytest.raises(ValueError):
        walk_frame_count(0)


# ----------------------------------------------------------------------------------------------
# Exploration with a Yume model
# ----------------------------------------------------------------------------------------------


class _StubUMT5:
    """A deterministic 4096-wide stand-in for UMT5: each word (by its CRC) picks a row of a fixed
    random table; rows past the prompt are zero, as UMT5's."""

    max_length = 24
    dim = 4096

    def __init__(self):
        self.table = torch.randn(512, self.dim, generator=torch.Generator().manual_seed(7))

    def encode(self, prompts):
        out = torch.zeros(len(prompts), self.max_length, self.dim)
        for i, p in enumerate(prompts):
            ids = [zlib.crc32(word.encode()) % len(self.table) for word in p.split()[: self.max_length]]
            out[i, : len(ids)] = self.table[ids]
        return out


@pytest.fixture(scope="module")
def yume_pipe(model):
    from unity_core.codec import LatentCodec
    from unity_core.pipeline import UnityVideoPipeline

    torch.manual_seed(0)
    codec = LatentCodec.from_config(dict(base_dim=8, z_dim=48, dim_mult=[1, 2, 2, 2], num_res_blocks=1, attn_scales=[],
                                         temperal_downsample=[False, True, True], latents_mean=[0.0] * 48,
                                         latents_std=[1.0] * 48)).eval()
    return UnityVideoPipeline(model, codec, _StubUMT5(), {"defaults": {"height": 32, "width": 32}})


def test_explore_runs_the_yume_sampler(yume_pipe, model):
    image = torch.rand(32, 32, 3)
    res = yume_pipe.explore(image, "W D", "a street", event="It starts to rain.", seed=1)
    ratio = yume_pipe.codec.temporal_ratio
    assert res.info["sampler"] == "yume-5b" and (res.info["steps"], res.info["shift"]) == (4, 7.0)
    assert res.latent.shape[2] == 5 + 2 * 8  # 17 still frames -> 5 start latents, then 8 per segment
    assert res.frames.shape[0] == walk_frame_count(2, 8, ratio) == 65
    assert res.segment_frames == [(1, 33), (33, 65)]
    assert res.prompts[0].startswith("a street First-person perspective.") and "(W)" in res.prompts[0]
    assert all(p.endswith("It starts to rain.") for p in res.prompts) and "(D)" in res.prompts[1]
    assert res.info["history_tokens"] == [history_token_count(5, 4, 4), history_token_count(13, 4, 4)]
    # the start latents are the image's still clip, the same a direct walk gets
    direct = generate_yume_walk(model, res.latent[:, :, :5], [yume_pipe.encode_prompt(p) for p in res.prompts],
                                seed=1)
    assert torch.equal(direct.latent, res.latent)
    more = yume_pipe.explore(None, "←", "a street", history=res, decode=False, seed=2)
    assert torch.equal(more.latent[:, :, :21], res.latent) and more.segment_frames[-1] == (65, 97)
    assert more.info["start_latents"] == 5


def test_explore_refuses_what_the_model_lacks(yume_pipe):
    from unity_core.model import UnityVideoTransformer
    from unity_core.pipeline import UnityVideoPipeline

    with pytest.raises(ValueError, match="8 latent frames per segment"):
        yume_pipe.explore(torch.rand(32, 32, 3), "W", latent_frames_per_segment=2)
    with pytest.raises(ValueError, match="estimation needs UnityVideo.s modality stream, and this pipeline holds a Yume-5B"):
        yume_pipe.estimate(torch.rand(5, 32, 32, 3), "depth", steps=1)
    plain = UnityVideoPipeline(UnityVideoTransformer.from_config({**TINY, "history_embeddings": False}),
                               yume_pipe.codec, yume_pipe.text_encoder)
    for option in ({"time_travel": TimeTravel()}, {"cache": BlockCache((0,))}, {"history_mode": "start+last"}):
        with pytest.raises(ValueError, match="options of the Yume-5B sampler"):
            plain.explore(torch.rand(32, 32, 3), "W", **option)


def test_noise_is_sized_from_the_latent_at_544x960(model):
    """544 x 960 (latent 34 x 60, not multiples of the coarse kernels): the release's noise rule
    would make 44 x 78 noise here; ours is the latent's size and every tier pads bottom/right."""
    hist = torch.randn(1, 48, 5, 34, 60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = generate_yume_walk(model, hist, [torch.randn(1, 3, 4096)], steps=1, seed=0, text_len=TEXT_LEN)
    assert out.latent.shape == (1, 48, 13, 34, 60) and torch.isfinite(out.latent).all()
    assert out.history_tokens == [17 * 30 + 3 * 9 * 15 + 17 * 30]


def test_cli_explores_with_a_bare_yume_checkpoint(tmp_path, capsys):
    """``unityvideo explore --checkpoint <Yume file> --vae ... --text-encoder ...``: a tiny Yume
    transformer at the default codec's 16 channels and MiniLM's 384 (the layout of Yume-5B)."""
    import numpy as np
    from PIL import Image

    from unity_core.cli import main
    from unity_core.io import read_video
    from unity_core.model import UnityVideoTransformer, save_transformer
    from unity_core.pipeline import DEFAULT_DIR

    torch.manual_seed(0)
    tiny = UnityVideoTransformer.from_config({**TINY, "in_channels": 16, "out_channels": 16, "text_dim": 384,
                                              "ffn_dim": 64})
    ckpt = save_transformer(tiny, tmp_path / "yume_tiny.safetensors")
    png = tmp_path / "start.png"
    Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "walk.mp4"
    args = ["explore", "--image", str(png), "--actions", "W →", "--out", str(out), "--checkpoint", str(ckpt),
            "--size", "32x32", "--event", "Snow falls.", "--speed", "4.4,1,2"]
    assert main(args) == 2 and "bare transformer checkpoint" in capsys.readouterr().err
    assert main([*args, "--vae", str(DEFAULT_DIR / "codec"), "--text-encoder", "minilm"]) == 0
    assert read_video(out)[0].shape == (walk_frame_count(2), 32, 32, 3)
    record = json.loads((tmp_path / "walk.json").read_text(encoding="utf-8"))
    assert (record["sampler"], record["steps"], record["shift"], record["sentence_set"]) == ("yume-5b", 4, 7.0, "v1_5")
    assert [s["frames"] for s in record["segments"]] == [[1, 33], [33, 65]]
    assert all(s["prompt"].endswith("View rotation speed:2. Snow falls.") for s in record["segments"])
    assert "Actual distance moved:4 at 100 meters per second." in record["segments"][0]["prompt"]
    assert record["history"] == "all" and record["speed"] == {"distance": 4.4, "turn": 1.0, "rotation": 2.0}
