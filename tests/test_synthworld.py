"""Synthworld's ground truth is self-consistent and deterministic."""

import math

import pytest
import torch

from unity_core.data.csv_dataset import CSVVideoDataset, export_synthworld
from unity_core.data.synthworld import CAMERA_HEIGHT, render_clip
from unity_core.explore.actions import CameraAction, movement_key_from_direction, rotation_key_from_angles
from unity_core.metrics import warping_error


@pytest.fixture(scope="module")
def clip():
    return render_clip(3, 17, 64, 64)


def test_same_seed_same_clip_other_seed_other_clip(clip):
    again = render_clip(3, 17, 64, 64)
    other = render_clip(4, 17, 64, 64)
    assert torch.equal(clip.rgb, again.rgb) and torch.equal(clip.flow, again.flow) and clip.prompt == again.prompt
    assert not torch.equal(clip.rgb, other.rgb)


def test_shapes_and_units(clip):
    assert clip.rgb.shape == (17, 64, 64, 3) and 0 <= clip.rgb.min() and clip.rgb.max() <= 1
    assert clip.depth.shape == (17, 64, 64) and clip.depth.min() > 0.1
    assert clip.flow.shape == (17, 64, 64, 2) and clip.flow_valid.float().mean() > 0.8
    assert clip.keypoints.shape[2:] == (18, 3) and clip.densepose.shape == (17, 64, 64, 3)
    assert len(clip.actions) == 4 and "(" in clip.action_caption


def test_flow_warps_frame_t_plus_1_onto_frame_t(clip):
    with_flow = warping_error(clip.rgb, clip.flow, clip.flow_valid)
    without = warping_error(clip.rgb, torch.zeros_like(clip.flow), clip.flow_valid)
    assert with_flow < 0.5 * without, (with_flow, without)
    assert with_flow < 0.01


def test_depth_agrees_with_floor_geometry(clip):
    """Back-project floor pixels (bottom rows, no object) with the depth: they lie on y = 0."""
    K, pose = clip.intrinsics, clip.camera_poses[0]
    v, u = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    points = rays * clip.depth[0][..., None] @ pose[:3, :3].T + pose[:3, 3]
    floor = (clip.instances[0] == 0) & (v > 56)
    assert floor.sum() > 50
    assert points[floor][:, 1].abs().max() < 1e-3
    assert math.isclose(-float(pose[1, 3]), CAMERA_HEIGHT, rel_tol=1e-6)


def test_keypoints_project_inside_their_figure(clip):
    inside = total = 0
    for f in range(17):
        for p in range(clip.keypoints.shape[1]):
            for x, y, vis in clip.keypoints[f, p]:
                if vis > 0:
                    total += 1
                    xi, yi = int(x.clamp(0, 63)), int(y.clamp(0, 63))
                    window = clip.instances[f, max(0, yi - 1):yi + 2, max(0, xi - 1):xi + 2]
                    inside += int((window == p + 1).any())
    assert total > 50 and inside / total > 0.9, (inside, total)


@pytest.mark.parametrize("movement,rotation", [("W", "·"), ("D", "·"), ("S+A", "·"), ("·", "→"), ("·", "↑"), ("W", "←")])
def test_camera_motion_matches_its_action(movement, rotation):
    clip = render_clip(0, 5, 16, 16, actions=[CameraAction(movement, rotation)])
    a, b = clip.camera_poses[0], clip.camera_poses[4]
    rel_t = a[:3, :3].T @ (b[:3, 3] - a[:3, 3])
    rel_r = a[:3, :3].T @ b[:3, :3]
    yaw = math.atan2(float(rel_r[0, 2]), float(rel_r[2, 2]))
    pitch = math.asin(-float(rel_r[1, 2]))
    assert movement_key_from_direction(float(rel_t[0]), float(rel_t[2])) == movement
    assert rotation_key_from_angles(yaw, pitch) == rotation


def test_bad_arguments():
    with pytest.raises(ValueError, match="4k\\+1"):
        render_clip(0, 16)
    with pytest.raises(ValueError, match="need 4 actions"):
        render_clip(0, 17, actions=[CameraAction()])


def test_export_in_the_release_csv_format(tmp_path):
    csv_path = export_synthworld(tmp_path / "set", seeds=[1, 2], num_frames=5, height=32, width=32)
    header = csv_path.read_text().splitlines()[0]
    assert header == "video,prompt,depth,raft,segmentation,skeleton,densepose"
    ds = CSVVideoDataset(csv_path, num_frames=5, size=(32, 32))
    item = ds[1]
    assert item["rgb"].shape == (5, 32, 32, 3) and item["depth"].shape == (5, 32, 32, 3)
    assert "moves" in item["prompt"] or "still" in item["prompt"]
    with pytest.raises(FileExistsError):
        export_synthworld(tmp_path / "set", seeds=[3])
