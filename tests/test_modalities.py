"""Round trips of every modality codec through 8-bit video, with stated bounds."""

import pytest
import torch

from unity_core import modalities as M
from unity_core.io import read_video, write_video

G = torch.Generator().manual_seed(0)


def _through_webp(frames, tmp_path):
    """Lossless 8-bit storage, as a saved visualisation would be."""
    return read_video(write_video(tmp_path / "vis.webp", frames))[0]


def test_depth_round_trip_within_one_percent(tmp_path):
    depth = torch.rand(3, 32, 32, generator=G)
    back = M.decode("depth", _through_webp(M.encode("depth", depth), tmp_path))
    assert (back - depth).abs().max() < 0.01


def test_depth_is_warm_near_and_cool_far():
    vis = M.encode("depth", torch.tensor([[[0.0, 1.0]]]))[0, 0]
    near, far = vis[0], vis[1]
    assert near[0] > near[2] and far[2] > far[0]


def test_depth_encode_in_chunks_matches_the_whole_frame_formula():
    """The colour map is evaluated a chunk of pixels at a time (bounded memory at 1080p); the
    result is the formula on the whole frame at once, bit for bit, for any chunk size."""
    from unity_core.modalities import depth as D

    depth = torch.rand(2, 9, 13, generator=G)
    depth[0, 0, :3] = torch.tensor([0.0, 1.0, 0.5])
    whole = D.turbo(D.NEAR_X + (D.FAR_X - D.NEAR_X) * depth.double()).float()
    for chunk in (1, 7, 100, 1 << 16):
        vis = D.encode(depth, chunk=chunk)
        assert vis.shape == (2, 9, 13, 3) and vis.dtype == torch.float32
        assert torch.equal(vis, whole)


def test_flow_round_trip_epe_below_half_pixel(tmp_path):
    flow = (torch.rand(3, 32, 32, 2, generator=G) - 0.5) * 2 * 11  # |flow| <= 15.6 < max_flow 16
    back = M.decode("flow", _through_webp(M.encode("optical_flow", flow, max_flow=16), tmp_path), max_flow=16)
    assert (back - flow).norm(dim=-1).mean() < 0.5 and (back - flow).norm(dim=-1).max() < 1.0
    zero = M.encode("raft", torch.zeros(1, 2, 2, 2))
    assert torch.allclose(zero, torch.ones_like(zero))  # no motion is white


def test_flow_scale_follows_frame_width():
    """By default full saturation is 1/16 of the width per frame: 2 px at 32 px wide, 4 px at 64,
    so a visualisation resized with its frames decodes to the resized flow."""
    unit = torch.tensor([[[[2.0, 0.0]]]]).expand(1, 4, 32, 2)
    vis = M.encode("raft", unit)
    assert torch.allclose(vis, M.encode("raft", unit, max_flow=2.0))
    assert float(1 - vis.min()) > 0.99  # 2 px/frame at 32 px wide: fully saturated
    wide = vis.repeat_interleave(2, dim=2)  # the same picture at 64 px wide: twice the motion
    assert torch.allclose(M.decode("raft", wide)[..., 0], torch.full((1, 4, 64), 4.0), atol=1e-3)
    with pytest.raises(ValueError, match="max_flow"):
        M.encode("raft", unit, max_flow=0)


def test_segmentation_labels_exact(tmp_path):
    labels = torch.randint(0, 6, (2, 16, 16), generator=G)
    inst = M.decode("segmentation", _through_webp(M.encode("segmentation", labels, instances=True), tmp_path), instances=True)
    assert torch.equal(inst, labels)
    binary = M.decode("segmentation", M.encode("segmentation", labels))
    assert torch.equal(binary, (labels > 0).long())


def test_skeleton_keypoints_within_two_pixels(tmp_path):
    xs = torch.tensor([64, 64, 50, 44, 40, 78, 84, 88, 56, 54, 52, 72, 74, 76, 60, 68, 55, 73]).float()
    ys = torch.tensor([30, 44, 44, 60, 76, 44, 60, 76, 80, 100, 118, 80, 100, 118, 26, 26, 28, 28]).float()
    kp = torch.stack([xs, ys, torch.ones(18)], -1)[None, None].repeat(2, 1, 1, 1)
    kp[1, 0, :, 0] += 3.0
    back = M.decode("skeleton", _through_webp(M.encode("skeleton", kp, height=128, width=128), tmp_path))
    assert back.shape == kp.shape
    assert (back[..., :2] - kp[..., :2]).abs().max() <= 2.0
    assert (back[..., 2] > 0.5).all()


def test_densepose_parts_exact_and_uv_close(tmp_path):
    iuv = torch.zeros(2, 16, 16, 3)
    iuv[..., 0] = torch.randint(0, 25, (2, 16, 16), generator=G).float()
    iuv[..., 1:] = torch.rand(2, 16, 16, 2, generator=G) * (iuv[..., :1] > 0)
    back = M.decode("densepose", _through_webp(M.encode("densepose", iuv), tmp_path))
    assert torch.equal(back[..., 0], iuv[..., 0])
    assert (back[..., 1:] - iuv[..., 1:]).abs().max() < 1 / 255 + 1e-6


def test_legends_exist_for_every_modality_and_mean_what_the_decoders_read():
    for name in ("depth", "flow", "segmentation", "skeleton", "densepose"):
        legend = M.legend(name)
        assert legend["stops"] and all(len(c) == 3 for _, c in legend["stops"])
    as_frame = lambda c: torch.tensor(c, dtype=torch.float32).view(1, 1, 1, 3) / 255  # noqa: E731
    for position, colour in M.legend("depth")["stops"]:  # each stop decodes back to its depth
        assert abs(float(M.decode("depth", as_frame(colour))) - position) < 0.02
    directions = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}
    for label, colour in M.legend("flow")["stops"]:  # each stop decodes to its direction
        uv = M.decode("flow", as_frame(colour)).view(2)
        assert torch.allclose(uv / uv.norm(), torch.tensor(directions[label], dtype=torch.float32), atol=0.05)


def test_bad_modality_inputs():
    with pytest.raises(ValueError, match="unknown modality 'normal'"):
        M.encode("normal", torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\[F, H, W, 2\]"):
        M.encode("flow", torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\[F, P, 18, 3\]"):
        M.encode("skeleton", torch.zeros(1, 17, 3), height=8, width=8)


def test_skeleton_decoder_never_mixes_two_people():
    base = torch.tensor([[32, 10], [32, 18], [26, 18], [24, 26], [22, 34], [38, 18], [40, 26], [42, 34], [28, 36],
                         [28, 46], [28, 56], [36, 36], [36, 46], [36, 56], [30, 8], [34, 8], [28, 9], [36, 9]],
                        dtype=torch.float32) * 2
    kp = torch.zeros(1, 2, 18, 3)
    kp[0, 0, :, :2], kp[0, 1, :, :2] = base, base + torch.tensor([100.0, 0.0])
    kp[..., 2] = 1
    kp[0, 0, 4, 2] = 0  # the left person's right wrist is not drawn
    back = M.decode("skeleton", M.encode("skeleton", kp, size=(128, 256)), max_people=2)
    assert back[0, 0, 4].abs().sum() == 0  # not filled with the other person's wrist
    others = [k for k in range(18) if k != 4]
    assert (back[0, :, others, :2] - kp[0, :, others, :2]).norm(dim=-1).max() < 1.0
    assert (back[0, 1, 4, :2] - kp[0, 1, 4, :2]).norm() < 1.0
    one = M.decode("skeleton", M.encode("skeleton", kp, size=(128, 256)), max_people=1)
    assert (one[0, 0, :, :2] - kp[0, 1, :, :2]).norm(dim=-1).max() < 1.0  # the complete person, whole


def test_values_outside_their_range_are_refused():
    with pytest.raises(ValueError, match="relative depth must be in \\[0, 1\\].*relative_depth"):
        M.encode("depth", torch.full((1, 4, 4), 3.0))  # metres
    with pytest.raises(ValueError, match="threshold a soft mask first"):
        M.encode("segmentation", torch.full((1, 4, 4), 0.9))
    assert M.encode("segmentation", torch.ones(1, 4, 4)).min() == 1.0  # a hard float mask is fine
