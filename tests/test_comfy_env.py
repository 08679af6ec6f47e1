"""The in-process ComfyUI harness (tests/comfy_env.py) and the pack's V3 entry point, in a real ComfyUI.

The tests that need ComfyUI skip without ``COMFYUI_PATH``; the skip itself is tested always.
"""

import pytest

from tests.comfy_env import PACK_DIR_NAME, SKIP_MESSAGE, check, comfy_path, run_child


@pytest.fixture(scope="module")
def loaded():
    return run_child("comfy_env", "loading", timeout=300)  # tests/comfy_children/comfy_env.py


def test_comfy_path_skips_with_the_variable_named(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    with pytest.raises(pytest.skip.Exception, match="COMFYUI_PATH") as info:
        comfy_path()
    assert str(info.value) == SKIP_MESSAGE
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))  # a folder without ComfyUI in it
    with pytest.raises(pytest.skip.Exception, match="holds no ComfyUI"):
        run_child("comfy_env", "loading")


def test_nodes_inside_is_comfyuis_nodes_py(loaded):
    info = check(loaded, "comfy_nodes")
    assert info["file"] == str(comfy_path() / "nodes.py") and info["in_sys_modules"]


def test_pack_loads_as_a_package_with_relative_imports(loaded):
    info = check(loaded, "package")
    assert info["name"].endswith(f"custom_nodes/{PACK_DIR_NAME}")  # ComfyUI names a folder module by its path
    assert info["nodes"] == info["name"] + ".nodes" and info["explore"] == info["name"] + ".nodes.explore"
    assert info["schema"] == info["name"] + ".nodes.schema"
    assert info["top_level_ours"] == []  # our `nodes` package never became the top-level `nodes`
    # the V3 entry point only: with a NODE_CLASS_MAPPINGS table ComfyUI would never call it
    assert info["exports"] == ["WEB_DIRECTORY", "comfy_entrypoint"]
    assert any(d.endswith("/web") for d in info["web"])


def test_entry_point_lists_every_node(loaded):
    info = check(loaded, "entry_point")
    assert info["extension"] and info["all_v3"] and info["registered"]
    assert info["listed"] == info["declared"] and sorted(info["listed"]) == info["table"]
    assert len(set(info["listed"])) == len(info["listed"]) >= 16
    assert {"UnityVideoLoader", "UnityVideoExplore", "UnityVideoLoadVideo", "UnityVideoSaveVideo"} \
        <= set(info["listed"])
    assert info["modules"] == [f"custom_nodes.{PACK_DIR_NAME}"]
    assert all(name and name.startswith("UnityVideo") for name in info["display"].values())


def test_every_socket_has_a_tooltip(loaded):
    for name, node in check(loaded, "schemas").items():
        assert node["untipped_inputs"] == [] and node["untipped_outputs"] == [], name
        assert node["category"].startswith("UnityVideo/") and node["display"].startswith("UnityVideo"), name
        assert node["description"], name
        assert node["outputs"] == node["output_names"], name
        assert all(t.startswith("UNITYVIDEO_") for t in node["custom_types"]), name


def test_schema_helper_refuses_a_missing_tooltip_and_keeps_ids_in_clones(loaded):
    info = check(loaded, "missing_tooltip")
    assert info["error"] == ("node UnityVideoNoTooltip: input 'count' has no tooltip; every socket needs one")
    assert info["clone_id"] == "UnityVideoExplore"


def test_helpers_register_extras_and_call_v1_nodes(loaded):
    info = check(loaded, "helpers")
    assert info["extra_before"] is False and info["extra_after"] is True
    assert info["image"] == [2, 4, 8, 3] and info["red"] == 1.0 and info["ui"] is None


def test_child_errors_reach_the_test():
    comfy_path()
    with pytest.raises(AssertionError, match="ValueError: boom 42"):
        run_child("comfy_env", "boom", timeout=300)
