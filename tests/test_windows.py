"""The whole-video window machinery (unity_core.video.windows): plan, alignment, stitching, sizes."""

import pytest
import torch

from unity_core.video.windows import (
    KnownFrames, Stitcher, fit_scale_shift, model_size, plan_windows, run_windows, select_range, to_source_size,
)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 18, 29, 30, 33, 50, 120, 129, 301])
@pytest.mark.parametrize("window,overlap", [(17, 0), (17, 1), (17, 5), (17, 9), (17, 16), (33, 8), (33, 13), (5, 1), (1, 0)])
def test_plan_emits_every_frame_exactly_once(n, window, overlap):
    plan = plan_windows(n, window, overlap)
    emitted = [p for w in plan.windows for p in range(*w.emit)]
    assert emitted == list(range(n))
    last = plan.windows[-1]
    if n >= window:
        assert plan.padded == 0 and last.positions[-1] == n - 1  # aligned to the clip's end
        for w in plan.windows:
            assert list(w.positions) == list(range(w.start, w.start + window))
            assert w.emit[0] == w.start and w.emit[1] <= w.start + window  # emits only what it covers
            assert (w.known - 1) % 4 == 0 or w.known == 0
            assert w.known <= w.shared and w.known <= window - 4 or w.known == 0
        for a, b in zip(plan.windows, plan.windows[1:]):
            assert b.shared == a.start + window - b.start
            assert b.shared >= overlap
    else:
        assert len(plan.windows) == 1 and plan.padded == window - n
        assert list(last.positions) == list(range(n)) + [n - 1] * (window - n)


@pytest.mark.parametrize("total,start,end,stride", [(120, 0, None, 1), (120, 3, 100, 2), (129, 10, 129, 7), (40, 0, 40, 3)])
def test_plan_with_range_and_stride_covers_the_selection(total, start, end, stride):
    sel = select_range(total, start, end, stride)
    plan = plan_windows(len(sel), 17, 5, source_indices=sel)
    out = [plan.source_indices[p] for w in plan.windows for p in range(*w.emit)]
    assert out == list(sel)


def test_plan_and_range_refuse_bad_settings():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(50, 17, 17)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(50, 17, -1)
    with pytest.raises(ValueError, match="4k\\+1"):
        plan_windows(50, 16, 4)
    with pytest.raises(ValueError, match="no frames"):
        plan_windows(0, 17, 4)
    with pytest.raises(ValueError, match="stride 500 steps past the end"):
        select_range(120, 0, None, 500)
    with pytest.raises(ValueError, match="past the clip"):
        select_range(120, 0, 200)
    with pytest.raises(ValueError, match="outside"):
        select_range(120, 120)
    with pytest.raises(ValueError, match="stride must be"):
        select_range(120, 0, None, 0)


def test_fit_scale_shift_recovers_a_known_scale_and_shift():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(5, 8, 10, generator=g)
    s, t = fit_scale_shift(pred, 1.7 * pred - 0.3)
    assert s == pytest.approx(1.7, abs=1e-6) and t == pytest.approx(-0.3, abs=1e-6)
    noisy = 0.5 * pred + 0.2 + 0.01 * torch.randn(pred.shape, generator=g)
    s, t = fit_scale_shift(pred, noisy)
    assert s == pytest.approx(0.5, abs=0.01) and t == pytest.approx(0.2, abs=0.01)
    assert fit_scale_shift(torch.ones(4), torch.full((4,), 3.0)) == (1.0, 2.0)


def test_depth_stitch_aligns_the_later_window_to_the_earlier():
    plan = plan_windows(30, 17, 5)
    truth = torch.linspace(0, 1, 30).view(30, 1, 1).expand(30, 4, 4) * torch.rand(1, 4, 4) * 0.8 + 0.1  # in [0, 1]
    st = Stitcher("depth", plan)
    out = []
    for k, w in enumerate(plan.windows):
        v = truth[list(w.positions)]
        if k == 1:
            v = 2.0 * v + 0.5  # another window, another scale and shift
        out.append(st.add(w, v))
    out = torch.cat(out)
    assert out.shape == truth.shape
    assert torch.allclose(out, truth, atol=1e-5)
    assert st.alignments[1][0] == pytest.approx(0.5, abs=1e-6)


def test_segmentation_labels_are_rematched_and_never_blended():
    plan = plan_windows(25, 17, 9)
    lab = torch.zeros(25, 6, 6, dtype=torch.long)
    lab[:, :3] = 1
    lab[:, 3:] = 2
    st = Stitcher("segmentation", plan)
    w0, w1 = plan.windows
    first = st.add(w0, lab[list(w0.positions)])
    second = st.add(w1, 3 - lab[list(w1.positions)])  # the later window swapped the label numbers
    out = torch.cat([first, second])
    assert torch.equal(out, lab)
    assert out.dtype == torch.long


def test_densepose_parts_never_blended_and_skeleton_people_rematched():
    plan = plan_windows(25, 17, 9)
    w0, w1 = plan.windows
    iuv = torch.zeros(25, 4, 4, 3)
    iuv[..., 0] = 3.0
    iuv[..., 1:] = 0.5
    other = iuv.clone()
    other[..., 0] = 5.0
    st = Stitcher("densepose", plan)
    out = torch.cat([st.add(w0, iuv[list(w0.positions)]), st.add(w1, other[list(w1.positions)])])
    assert set(out[..., 0].unique().tolist()) <= {3.0, 5.0}  # never 4
    kp = torch.zeros(25, 2, 18, 3)
    kp[:, 0, :, :2], kp[:, 1, :, :2], kp[..., 2] = 10.0, 50.0, 1.0
    st = Stitcher("skeleton", plan)
    a = st.add(w0, kp[list(w0.positions)])
    b = st.add(w1, kp[list(w1.positions)].flip(1))  # the later window lists the people the other way round
    out = torch.cat([a, b])
    assert torch.allclose(out, kp)


def test_upsampling_rules_per_modality():
    flow = torch.zeros(2, 8, 10, 2)
    flow[..., 0], flow[..., 1] = 1.0, -2.0
    up = to_source_size("raft", flow, (8, 10), (24, 40))
    assert up.shape == (2, 24, 40, 2)
    assert torch.allclose(up[..., 0], torch.tensor(4.0)) and torch.allclose(up[..., 1], torch.tensor(-6.0))
    seg = torch.randint(0, 4, (2, 8, 10))
    up = to_source_size("segmentation", seg, (8, 10), (19, 33))
    assert up.dtype == seg.dtype and set(up.unique().tolist()) <= set(seg.unique().tolist())
    depth = torch.rand(2, 8, 10)
    up = to_source_size("depth", depth, (8, 10), (16, 20))
    assert up.shape == (2, 16, 20) and up.min() >= depth.min() - 1e-6 and up.max() <= depth.max() + 1e-6
    kp = torch.tensor([[[[4.5, 3.5, 0.9]]]])
    up = to_source_size("skeleton", kp, (8, 10), (16, 40))
    assert up[0, 0, 0].tolist() == pytest.approx([19.5, 7.5, 0.9])
    iuv = torch.zeros(1, 8, 10, 3)
    iuv[:, :, :5] = torch.tensor([7.0, 0.2, 0.8])
    iuv[:, :, 5:] = torch.tensor([9.0, 0.6, 0.4])
    up = to_source_size("densepose", iuv, (8, 10), (17, 23))
    assert set(up[..., 0].unique().tolist()) == {7.0, 9.0}
    with pytest.raises(ValueError, match="unknown modality 'flow'"):  # the callers resolve aliases
        to_source_size("flow", flow, (8, 10), (24, 40))


def test_model_size_keeps_the_aspect():
    assert model_size(144, 176) == (64, 80)          # carphone
    assert model_size(1080, 1920) == (64, 112)
    assert model_size(1920, 1080) == (112, 64)       # portrait
    assert model_size(1080, 1920, short_side=256) == (256, 448)
    assert model_size(97, 131) == (64, 80)           # odd sizes
    assert model_size(144, 176, size=(64, 64)) == (64, 64)
    with pytest.raises(ValueError, match="multiples of 16"):
        model_size(144, 176, size=(60, 64))


def test_run_windows_conditions_on_the_previous_output_and_emits_each_frame_once():
    plan = plan_windows(40, 17, 5)
    seen = []

    def frames_for(w):
        return torch.full((17, 4, 4, 3), float(w.index) / 10)

    def sample_window(w, frames, known):
        seen.append(None if known is None else known.shape[0])
        return torch.linspace(0, 1, 17).view(17, 1, 1, 1).expand(17, 4, 4, 3).clone()

    chunks = list(run_windows(plan, frames_for, sample_window, "rgb"))
    assert sum(v.shape[0] for _, v, _ in chunks) == 40
    assert seen[0] is None and all(k == 5 for k in seen[1:-1])


def test_known_frames_replace_the_produced_stream():
    calls = []

    def model(rgb, t, context, mod=None, *a, **k):
        calls.append(mod.clone())
        return rgb, mod

    known = torch.ones(1, 2, 1, 3, 3)
    wrap = KnownFrames(model, known, "modality", "clean")
    wrap(torch.zeros(1, 2, 3, 3, 3), torch.tensor([500.0]), None, torch.zeros(1, 2, 3, 3, 3))
    assert torch.equal(calls[-1][:, :, :1], known) and calls[-1][:, :, 1:].abs().sum() == 0
    noised = KnownFrames(model, known, "modality", "noised", torch.Generator().manual_seed(0))
    noised(torch.zeros(1, 2, 3, 3, 3), torch.tensor([0.0]), None, torch.zeros(1, 2, 3, 3, 3))
    assert torch.allclose(calls[-1][:, :, :1], known)  # t = 0: clean
    assert torch.equal(wrap.apply(torch.zeros(1, 2, 3, 3, 3))[:, :, :1], known)
