"""Metrics against hand-computed values."""

import math

import pytest
import torch

from unity_core.metrics import abs_rel, action_accuracy, align_scale_shift, delta1, epe, miou, pck, warping_error


def test_abs_rel_and_delta1_by_hand():
    target = torch.tensor([1.0, 2.0, 4.0, 8.0])
    pred = torch.tensor([1.1, 2.0, 3.0, 8.0])
    assert math.isclose(abs_rel(pred, target), (0.1 + 0 + 0.25 + 0) / 4, rel_tol=1e-6)
    assert delta1(pred, target) == 0.75  # 4/3 > 1.25 fails


def test_scale_shift_alignment_recovers_an_affine_prediction():
    target = torch.tensor([1.0, 2.0, 3.0, 5.0])
    pred = 0.5 * target - 2.0
    torch.testing.assert_close(align_scale_shift(pred, target), target)
    assert abs_rel(pred, target, align=True) < 1e-6 and abs_rel(pred, target) > 1


def test_epe_miou_pck_by_hand():
    assert epe(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.zeros(2, 2)) == 2.5
    pred = torch.tensor([[0, 1], [1, 1]])
    target = torch.tensor([[0, 1], [0, 1]])
    assert math.isclose(miou(pred, target), (1 / 2 + 2 / 3) / 2)
    t = torch.tensor([[0.0, 0.0, 1], [10.0, 0.0, 1], [0.0, 10.0, 1]])
    p = t.clone()
    p[1, 0] += 0.9   # within 0.1 * 10
    p[2, 1] += 1.5   # outside
    assert math.isclose(pck(p, t), 2 / 3)


def test_warping_error_is_zero_for_a_true_shift():
    frames = torch.rand(2, 8, 8, 1)
    frames[1, :, 1:] = frames[0, :, :-1]  # content moves one pixel right
    flow = torch.zeros(2, 8, 8, 2)
    flow[..., 0] = 1.0
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[:, :, :-1] = True
    assert warping_error(frames, flow, mask) < 1e-6


def test_action_accuracy():
    out = action_accuracy([("W", "·"), ("A", "→")], [("W", "·"), ("A", "←")])
    assert out == {"overall": 0.5, "movement": 1.0, "rotation": 0.5}
    with pytest.raises(ValueError):
        action_accuracy([], [])


def test_masks_must_be_boolean():
    flow = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 0.0]]]])
    mask = torch.tensor([[[True]], [[False]]])
    assert epe(flow, target, mask) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        epe(flow, target, mask.long())  # an int 0/1 mask would index frames, not mask them
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        abs_rel(torch.ones(4), torch.ones(4), torch.ones(4, dtype=torch.int64))
