import math
import re

import pytest

from unity_core import constants as C
from unity_core.explore import actions as A


def test_tables_match_the_release():
    assert C.MODALITIES == ("depth", "raft", "segmentation", "skeleton", "densepose")
    assert set(C.MODALITY_PROMPTS) == set(C.MODALITIES)
    assert set(C.TASKS) == {"text2all", "video2flow", "flow2video"}
    assert math.isclose(sum(C.TRAIN_TASK_WEIGHTS.values()), 1.0)


@pytest.mark.parametrize("name,expected", [("flow", "raft"), ("Depth", "depth"), ("optical_flow", "raft")])
def test_modality_aliases(name, expected):
    assert C.resolve_modality(name) == expected


def test_ui_labels_resolve_back_like_the_old_option_values():
    """Saved workflows hold a release name, an alias or a UI label; each loads as the release name."""
    assert set(C.MODALITY_LABELS) == set(C.MODALITIES) and C.MODALITY_LABELS["raft"] == "optical flow (raft)"
    for name, label in C.MODALITY_LABELS.items():
        assert C.resolve_modality(label) == name and C.resolve_modality(f" {label.upper()} ") == name
        assert C.modality_label(name) == label
    assert C.modality_label("flow") == C.modality_label("optical_flow") == "optical flow (raft)"
    with pytest.raises(ValueError, match="unknown modality 'optical flow'"):
        C.modality_label("optical flow")


def test_tables_load_from_their_own_package():
    from importlib import resources

    shipped = {p.name for p in resources.files("unity_core.tables").iterdir() if p.name.endswith(".json")}
    assert shipped == {"unityvideo_prompts.json", "yume_qcm.json"}
    assert C.load_table("yume_qcm.json") == C.YUME_QCM


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown modality 'normals'.*depth"):
        C.resolve_modality("normals")
    with pytest.raises(ValueError, match="unknown task 'inpaint'.*text2all"):
        C.resolve_task("inpaint")
    assert C.resolve_task("estimation") == "video2flow"


def test_inner_check_takes_release_names_only():
    """The library's inner functions take what the edges resolved: release names pass unchanged,
    aliases and labels are refused with the release's names listed."""
    for name in C.MODALITIES:
        assert C.check_release_modality(name) == name
    assert C.check_release_modality("rgb", ("rgb",)) == "rgb"
    for user_name in ("flow", "optical flow (raft)", "Depth", "rgb"):
        with pytest.raises(ValueError, match=re.escape(f"unknown modality {user_name!r}") + ".*depth, raft, .*resolve_modality"):
            C.check_release_modality(user_name)


def test_action_geometry_round_trips_through_quantisation():
    for key in A.MOVEMENT_KEYS:
        x, _, z = A.movement_direction(key)
        assert A.movement_key_from_direction(0.01 * x, 0.01 * z) == key
    for key in A.ROTATION_KEYS:
        yaw, pitch = A.rotation_signs(key)
        assert A.rotation_key_from_angles(0.02 * yaw, 0.02 * pitch) == key


def test_bad_action_keys():
    with pytest.raises(ValueError, match="unknown movement 'Q'"):
        A.CameraAction(movement="Q")
    with pytest.raises(ValueError, match="unknown rotation"):
        A.rotation_signs("→→")
