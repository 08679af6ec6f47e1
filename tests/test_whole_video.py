"""Whole clips: streaming reading, windowed estimation and control at the source size and fps,
atomic outputs, and the bad inputs of the pipeline's and the CLI's doors."""

import struct
import weakref
from fractions import Fraction

import numpy as np
import pytest
import torch

from unity_core.cli import main
from unity_core.io import VideoReadError, load_values, read_video, write_video
from unity_core.io.output import atomic_output, publish
from unity_core.io.stream import VideoSource

FAST = ["--steps", "1"]


def _clip(n, h, w, seed=0):
    """A moving gradient clip [n, h, w, 3] in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, h, w, 3, generator=g)
    shift = torch.linspace(0, 1, n).view(n, 1, 1, 1)
    return ((base + shift) % 1.0).float()


@pytest.fixture(scope="module")
def pipe():
    from unity_core.pipeline import UnityVideoPipeline

    return UnityVideoPipeline.from_pretrained("default")


@pytest.fixture(scope="module")
def short_mp4(tmp_path_factory):
    """25 frames, 40x56, 12.5 fps: two windows of 17 at the default's model size 64x96."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", _clip(25, 40, 56), fps=12.5)


def test_cli_estimate_writes_every_frame_at_the_source_size_and_fps(tmp_path, short_mp4, capsys):
    out = tmp_path / "depth.mp4"
    args = ["estimate", "--modality", "depth", "--video", str(short_mp4), "--out", str(out), *FAST]
    assert main(args) == 0
    frames, fps = read_video(out)
    assert frames.shape == (25, 40, 56, 3) and fps == pytest.approx(12.5, rel=1e-3)
    values = load_values(out.with_suffix(".npz"))
    assert values.modality == "depth" and values.values.shape == (25, 40, 56)
    assert "25 frames, 56x40, 12.500 fps, 2 windows" in capsys.readouterr().out
    assert main(args) == 0  # never overwritten: the second run gets the next names, paired
    assert (tmp_path / "depth_1.mp4").is_file() and (tmp_path / "depth_1.npz").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_pipeline_estimate_takes_a_path_and_returns_the_whole_clip(pipe, short_mp4):
    out = pipe.estimate(short_mp4, "depth", steps=1, start=2, stride=2)
    assert out.values.shape == (12, 40, 56) and out.modality_frames.shape == (12, 40, 56, 3)
    assert out.fps == pytest.approx(6.25, rel=1e-3)
    assert out.info["source_indices"] == list(range(2, 25, 2)) and out.info["model_size"] == (64, 96)


def test_reader_holds_at_most_a_window_of_decoded_frames(pipe, tmp_path, monkeypatch):
    clip = write_video(tmp_path / "long.mp4", _clip(61, 32, 48, seed=1), fps=24)
    alive, peak = set(), [0]
    original = VideoSource.frames

    def spy(self, indices):
        for i, frame in original(self, indices):
            key = id(frame)
            alive.add(key)
            weakref.finalize(frame, alive.discard, key)
            peak[0] = max(peak[0], len(alive))
            yield i, frame
            del frame

    monkeypatch.setattr(VideoSource, "frames", spy)
    res = pipe.estimate(clip, "depth", steps=1, window=5, overlap=1, out=tmp_path / "d.mp4",
                        values_out=tmp_path / "d.npz")
    assert res.info["windows"] == 15 and res.values is None
    assert 1 <= peak[0] <= 5  # decoded source frames alive at once: at most one window's worth
    assert read_video(res.info["video"])[0].shape == (61, 32, 48, 3)
    assert load_values(res.info["values"]).values.shape == (61, 32, 48)


def test_streamed_values_chunks_read_back_at_the_source_size(pipe, tmp_path):
    from unity_core.io.stream import ValuesWriter
    from unity_core.io.values import iter_values

    writer = ValuesWriter(tmp_path / "v.npz", "raft", 30, (8, 12), (16, 36), fps=10, stream_bytes=1)
    for start in (0, 12, 24):
        writer.add(start, torch.ones(min(12, 30 - start), 8, 12, 2))
    path = writer.close()
    with np.load(path) as z:
        assert sorted(k for k in z.files if k.startswith("values_")) == ["values_000000", "values_000012", "values_000024"]
    chunks = list(iter_values(path))
    assert [s for s, _ in chunks] == [0, 12, 24]
    whole = load_values(path).values
    assert whole.shape == (30, 16, 36, 2)
    assert np.allclose(whole[..., 0], 3.0) and np.allclose(whole[..., 1], 2.0)  # vectors scaled with the size


def test_short_clip_is_padded_reported_and_trimmed(pipe, tmp_path, capsys):
    clip = write_video(tmp_path / "tiny.mp4", _clip(7, 32, 32), fps=5)
    out = pipe.estimate(clip, "depth", steps=1)
    assert out.values.shape == (7, 32, 32) and out.info["padded"] == 10
    assert "7 frames are fewer than one window of 17: padded with 10 copies" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])  # mp4: index at the end, unreadable; mkv: breaks mid-stream
def test_broken_clip_is_a_clear_error_and_leaves_nothing(pipe, tmp_path, suffix):
    whole = write_video(tmp_path / f"whole{suffix}", _clip(41, 32, 32), fps=10)
    data = whole.read_bytes()
    whole.unlink()
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "d.mp4"
    with pytest.raises(VideoReadError, match="complete"):
        pipe.estimate(broken, "depth", steps=1, window=5, out=out, values_out=tmp_path / "d.npz")
    assert list(tmp_path.iterdir()) == [broken]  # no output, no temporary file


def test_interrupt_between_windows_leaves_nothing(pipe, tmp_path, short_mp4):
    from unity_core.sampling import SamplingInterrupted

    calls = iter([False, True])
    with pytest.raises(SamplingInterrupted, match="before window 2 of 2"):
        pipe.estimate(short_mp4, "depth", steps=1, out=tmp_path / "d.mp4", values_out=tmp_path / "d.npz",
                      should_interrupt=lambda: next(calls))
    assert list(tmp_path.iterdir()) == []


def test_bad_options_fail_before_sampling(pipe, short_mp4, monkeypatch):
    monkeypatch.setattr(pipe, "_sample", lambda *a, **k: pytest.fail("sampled"))
    with pytest.raises(ValueError, match="overlap must be"):
        pipe.estimate(short_mp4, "depth", overlap=17)
    with pytest.raises(ValueError, match="stride 40 steps past the end"):
        pipe.estimate(short_mp4, "depth", stride=40)
    with pytest.raises(ValueError, match="30 frames asked for, but .* holds only 25"):
        pipe.estimate(short_mp4, "depth", max_frames=30)
    with pytest.raises(ValueError, match="unsupported suffix '.avi'"):
        pipe.estimate(short_mp4, "depth", out="x.avi")
    with pytest.raises(ValueError, match="window 16 is not 4k\\+1"):
        pipe.estimate(short_mp4, "depth", window=16)


def test_pipeline_door_frames(pipe):
    frames = _clip(5, 32, 32)
    as_uint8 = (frames * 255).round().to(torch.uint8)
    ref = pipe.estimate(as_uint8.float() / 255, "depth", steps=1, seed=0)
    for given in (as_uint8, as_uint8.numpy()):  # uint8 is converted explicitly, never wrapped
        assert torch.equal(pipe.estimate(given, "depth", steps=1, seed=0).values, ref.values)
    legacy = pipe.estimate(as_uint8, "depth", steps=1, seed=0, num_frames=5)
    assert torch.equal(legacy.values, pipe.estimate(as_uint8.float() / 255, "depth", steps=1, seed=0, num_frames=5).values)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pipe.estimate(frames * 255, "depth", steps=1)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pipe.estimate(frames * 255, "depth", steps=1, num_frames=5)
    with pytest.raises(ValueError, match="one frame .*frames\\[None\\]"):
        pipe.estimate(frames[0], "depth", steps=1)
    with pytest.raises(ValueError, match="one frame .*frames\\[None\\]"):
        pipe.estimate(frames[0], "depth", steps=1, num_frames=1)
    streamed = pipe.estimate((f for f in as_uint8.numpy()), "depth", steps=1, seed=0)  # an iterator of frames
    assert torch.equal(streamed.values, ref.values)
    with pytest.raises(ValueError, match="no frames"):
        pipe.estimate(frames[:0], "depth", steps=1)
    with pytest.raises(ValueError, match="no frames"):
        pipe.control(frames[:0], "depth", "", steps=1, num_frames=1)


def test_grey_alpha_and_odd_sizes(pipe, tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(3):
        iio.imwrite(folder / f"{i:03d}.png", (np.random.default_rng(i).random((31, 45)) * 255).astype(np.uint8))
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for i in range(3):
        iio.imwrite(rgba / f"{i:03d}.png", (np.random.default_rng(i).random((31, 45, 4)) * 255).astype(np.uint8))
    for src in (folder, rgba):
        res = pipe.estimate(src, "depth", steps=1, window=5, out=tmp_path / f"{src.name}.mp4")
        frames, fps = read_video(res.info["video"])
        assert frames.shape == (3, 31, 45, 3) and fps == pytest.approx(8.0)  # odd sizes kept (4:4:4)


def _rotated(path, out):
    """A copy of an mp4 whose track header carries a 90-degree display matrix (a phone clip)."""
    data = bytearray(path.read_bytes())
    i = data.index(b"tkhd")
    off = i + 4 + 4 + (28 if data[i + 4] == 1 else 20) + 16
    data[off:off + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    out.write_bytes(bytes(data))
    return out


def test_rotated_phone_clip_comes_out_upright(tmp_path):
    frames = torch.zeros(3, 32, 48, 3)
    frames[:, :, :8] = 1.0  # a white strip on the left of the stored image
    rot = _rotated(write_video(tmp_path / "a.mp4", frames, fps=10), tmp_path / "rot.mp4")
    src = VideoSource.open(rot)
    assert (src.height, src.width, src.rotation) == (48, 32, 90)
    up, _ = src.read_all()
    assert up.shape == (3, 48, 32, 3)
    assert up[:, :8].mean() > 0.9 and up[:, 10:].mean() < 0.1  # turned clockwise: the strip is on top


def test_variable_frame_rate_gives_the_average_rate(tmp_path):
    import av

    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1000)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        pts = [0, 40, 80, 200, 240, 400]  # 6 frames over 0.4 s: 12.5 fps on average
        for t in pts:
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = t, s.codec_context.time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    src = VideoSource.open(path)
    assert src.num_frames == 6 and src.fps == pytest.approx(12.5, rel=1e-3)


def test_publish_never_replaces_and_atomic_output_cleans_up(tmp_path):
    wanted = tmp_path / "a.mp4"
    with atomic_output(wanted) as out:
        out.tmp.write_bytes(b"first")
        wanted.write_bytes(b"someone else")  # another writer takes the name meanwhile
    assert out.path == tmp_path / "a_1.mp4" and wanted.read_bytes() == b"someone else"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "b.mp4") as out:
            out.tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "a_1.mp4"]
    tmps = []
    for _ in range(3):
        t = tmp_path / f".t{len(tmps)}"
        t.write_bytes(b"x")
        tmps.append(publish(t, tmp_path / "c.json"))
    assert [p.name for p in tmps] == ["c.json", "c_1.json", "c_2.json"]


@pytest.mark.parametrize("command", [
    ["estimate", "--modality", "depth", "--video", "{clip}"],
    ["generate", "--modality", "depth", "--prompt", "x"],
    ["control", "--modality", "depth", "--control", "{clip}", "--prompt", "x"],
    ["explore", "--image", "{clip}", "--actions", "W"],
])
def test_cli_refuses_an_unsupported_suffix_before_any_work(command, tmp_path, short_mp4, capsys, monkeypatch):
    import unity_core.cli as cli

    monkeypatch.setattr(cli, "load_pipeline", lambda *a: pytest.fail("loaded the model"))
    args = [a.replace("{clip}", str(short_mp4)) for a in command] + ["--out", str(tmp_path / "out.avi")]
    assert main(args) == 2
    assert "unsupported suffix '.avi'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_frames_past_the_clip_is_a_range_error(tmp_path, short_mp4, capsys):
    assert main(["estimate", "--modality", "depth", "--video", str(short_mp4), "--out", str(tmp_path / "d.mp4"),
                 "--frames", "40"]) == 2
    assert "40 frames asked for" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_control_whole_clip(tmp_path, short_mp4):
    out = tmp_path / "c.mp4"
    assert main(["control", "--modality", "depth", "--control", str(short_mp4), "--prompt", "a room", "--out", str(out),
                 *FAST, "--frames", "17"]) == 0
    assert read_video(out)[0].shape == (17, 40, 56, 3)
    assert read_video(tmp_path / "c_control.mp4")[0].shape == (17, 40, 56, 3)


def test_pipeline_control_returns_the_whole_clip(pipe):
    control = _clip(7, 24, 40)
    out = pipe.control(control, "depth", "a room", steps=1, window=5, overlap=1, fps=10)
    assert out.rgb.shape == (7, 24, 40, 3) and out.modality_frames.shape == (7, 24, 40, 3)
    assert out.fps == 10 and out.info["windows"] == 2


def test_cli_ctrl_c_leaves_no_output(tmp_path, short_mp4, monkeypatch, capsys):
    import unity_core.video.clip as clip_module

    real = clip_module._window_sampler

    def interrupted(*args):
        sample = real(*args)

        def sample_window(window, frames, known):
            if window.index == 1:
                raise KeyboardInterrupt
            return sample(window, frames, known)

        return sample_window

    monkeypatch.setattr(clip_module, "_window_sampler", interrupted)
    out = tmp_path / "d.mp4"
    assert main(["estimate", "--modality", "depth", "--video", str(short_mp4), "--out", str(out), *FAST]) == 130
    assert "cancelled; nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_published_files_have_the_usual_permissions(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = write_video(tmp_path / "a.mp4", torch.rand(2, 16, 16, 3))
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
