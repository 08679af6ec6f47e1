"""Video reading/writing, frame selection and bad input."""

import pytest
import torch

from unity_core.io import (VideoReadError, check_frame_count, check_same_length, floor_frame_count, latent_frame_count,
                           read_video, select_frames, write_video)


def test_real_clip_uniform_sampling_and_resize(carphone_path):
    frames, fps = read_video(carphone_path, num_frames=17, size=(64, 96))
    assert frames.shape == (17, 64, 96, 3) and frames.dtype == torch.float32
    assert 0 <= frames.min() and frames.max() <= 1 and frames.std() > 0.05
    assert 0 < fps < 30


def test_stride_sampling_takes_consecutive_frames():
    assert select_frames(100, 5, "stride", stride=2, start=3) == [3, 5, 7, 9, 11]
    assert select_frames(100, 5, "uniform") == [0, 25, 50, 74, 99]
    with pytest.raises(ValueError, match="only 3 frames"):
        select_frames(6, 5, "stride", stride=2)


def test_write_never_overwrites_and_round_trips(tmp_path):
    frames = torch.rand(5, 32, 48, 3)
    first = write_video(tmp_path / "out.mp4", frames, fps=8)
    second = write_video(tmp_path / "out.mp4", frames, fps=8)
    assert first.name == "out.mp4" and second.name == "out_1.mp4" and first.stat().st_size > 0
    back, fps = read_video(first)
    assert back.shape == frames.shape and fps == 8
    webp = write_video(tmp_path / "out.webp", frames, fps=4)
    assert torch.allclose(read_video(webp)[0], (frames * 255).round() / 255)


def test_image_folder(tmp_path):
    import imageio.v3 as iio

    for i in range(3):
        iio.imwrite(tmp_path / f"{i:03d}.png", (torch.full((16, 16, 3), i * 40)).to(torch.uint8).numpy())
    frames, _ = read_video(tmp_path)
    assert frames.shape == (3, 16, 16, 3) and frames[2].mean() > frames[0].mean()


def test_frame_counts_must_be_4k_plus_1():
    assert check_frame_count(17) == 17
    with pytest.raises(ValueError, match="frame count 16 is not 4k\\+1; use 13 or 17"):
        check_frame_count(16)


def test_frame_count_helpers_follow_the_4k_plus_1_rule():
    # the largest 4k+1 not above n, and the latent frames of a 4k+1 clip (k + 1)
    assert [floor_frame_count(n) for n in (1, 4, 5, 16, 17, 20, 33)] == [1, 1, 5, 13, 17, 17, 33]
    assert [latent_frame_count(n) for n in (1, 5, 17, 33, 81)] == [1, 2, 5, 9, 21]
    assert all(check_frame_count(floor_frame_count(n)) == floor_frame_count(n) for n in range(1, 40))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoReadError, match="cannot decode"):
        read_video(tmp_path / "junk.mp4")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(VideoReadError, match="no images"):
        read_video(tmp_path / "nothing")
    with pytest.raises(ValueError, match="multiples of 16"):
        read_video(write_video(tmp_path / "a.mp4", torch.rand(2, 16, 16, 3)), size=(20, 16))


def test_control_and_rgb_length_mismatch():
    with pytest.raises(ValueError, match="differ in frames"):
        check_same_length(torch.zeros(17, 8, 8, 3), torch.zeros(9, 8, 8, 3))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_single_image_files_read_as_one_frame(tmp_path, suffix):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"img{suffix}")
    frames, _ = read_video(tmp_path / f"img{suffix}", num_frames=1)
    assert frames.shape == (1, 12, 20, 3)
    assert torch.equal((frames[0] * 255).round().to(torch.uint8), torch.from_numpy(pixels))


def test_fractional_fps_grey_folders_and_bad_selections(tmp_path):
    import imageio.v3 as iio
    import numpy as np

    frames = torch.rand(5, 16, 16, 3)
    _, fps = read_video(write_video(tmp_path / "slow.mp4", frames, fps=7.5))
    assert fps == 7.5  # kept, not rounded to 8
    with pytest.raises(ValueError, match="fps must be positive"):
        write_video(tmp_path / "x.mp4", frames, fps=0)
    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(3):
        iio.imwrite(folder / f"{i}.png", np.full((20, 40), 60 * i, np.uint8))
    grey, _ = read_video(folder)
    assert grey.shape == (3, 20, 40, 3) and torch.equal(grey[..., 0], grey[..., 2])
    iio.imwrite(folder / "3.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(VideoReadError, match="differ in size"):
        read_video(folder)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        select_frames(10, 0)
    with pytest.raises(ValueError, match="start frame -2 is outside the video's 10 frames"):
        select_frames(10, 3, "stride", 1, -2)


def test_values_files_round_trip_every_modality_and_never_overwrite(tmp_path):
    """The one values format: dtype and layout kept bit for bit, the release's name stored."""
    import numpy as np

    from unity_core import modalities as M
    from unity_core.constants import resolve_modality
    from unity_core.io import load_values, save_values

    g = torch.Generator().manual_seed(0)
    decoded = {
        "depth": M.decode("depth", M.encode("depth", torch.rand(2, 8, 8, generator=g))),
        "optical flow (raft)": M.decode("raft", M.encode("raft", torch.randn(2, 8, 8, 2, generator=g))),
        "segmentation": torch.randint(0, 2, (2, 8, 8), generator=g),
        "skeleton": torch.rand(2, 1, 18, 3, generator=g).numpy(),
        "densepose": torch.rand(2, 8, 8, 3, generator=g),
    }
    for name, values in decoded.items():
        path = save_values(tmp_path / "sub" / "v.npz", name, values)
        back = load_values(path)
        want = np.asarray(values)
        assert back.values.dtype == want.dtype and np.array_equal(back.values, want)
        assert back.modality == resolve_modality(name) and str(np.load(path)["modality"]) == back.modality
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["v.npz", "v_1.npz", "v_2.npz", "v_3.npz", "v_4.npz"]
    assert load_values(tmp_path / "sub" / "v_1.npz").modality == "raft"  # the label was resolved


def test_values_files_refuse_bad_input(tmp_path):
    import numpy as np

    from unity_core.io import load_values, save_values

    with pytest.raises(ValueError, match="ends in .npz.*'d.npz'"):
        save_values(tmp_path / "d.mp4", "depth", np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="unknown modality 'normals'"):
        save_values(tmp_path / "d.npz", "normals", np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="at least"):
        save_values(tmp_path / "d.npz", "depth", np.zeros((4, 4)))
    assert not list(tmp_path.iterdir())  # nothing written before the checks passed
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_values(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", frames=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks the entries \['modality', 'values'\]"):
        load_values(tmp_path / "other.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        load_values(tmp_path / "single.npy")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a values file"):
        load_values(tmp_path / "text.npz")
