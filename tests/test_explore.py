"""Yume's quantized camera motion: keys, scripts and sentences."""

import pytest

from unity_core.explore.actions import CameraAction
from unity_core.explore.qcm import action_from_keys, action_prompt, format_script, parse_script


def test_keys_to_actions():
    assert action_from_keys(["w", "a"]) == CameraAction("W+A", "·")
    assert action_from_keys(["ArrowUp", "ArrowRight", "s", "d"]) == CameraAction("S+D", "↑→")
    assert action_from_keys([]) == CameraAction()
    with pytest.raises(ValueError, match="opposite keys"):
        action_from_keys(["w", "s"])
    with pytest.raises(ValueError, match="opposite keys"):
        action_from_keys(["ArrowLeft", "ArrowRight"])
    with pytest.raises(ValueError, match="unknown key 'q'"):
        action_from_keys(["q"])


def test_script_round_trip():
    script = "W W W+A ← · S+D↓→ <"
    actions = parse_script(script)
    assert actions[2] == CameraAction("W+A", "·") and actions[3] == CameraAction("·", "←")
    assert actions[5] == CameraAction("S+D", "↓→") and actions[6] == CameraAction("·", "←")
    assert parse_script(format_script(actions)) == actions
    with pytest.raises(ValueError, match="entry 2: bad action 'X'"):
        parse_script("W X")
    with pytest.raises(ValueError, match="empty"):
        parse_script("  ")


@pytest.mark.parametrize("version,expect", [
    ("v1", "This video depicts a city walk scene with a first-person view (FPV). Person moves forward and left (W+A). Camera turns right (→)."),
    ("v1_5", "First-person perspective. The camera pushes forward and moves to the left (W+A). The camera pans to the right (→)."),
])
def test_sentences_for_both_versions(version, expect):
    assert action_prompt(CameraAction("W+A", "→"), version) == expect


def test_speed_sentence():
    text = action_prompt(CameraAction("W", "·"), "v1", speed={})
    assert "Actual distance moved:4.36973742880153 at 100 meters per second." in text
    with pytest.raises(ValueError, match="unknown sentence set"):
        action_prompt(CameraAction(), "v2")
