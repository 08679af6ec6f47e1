"""The in-process ComfyUI harness (tests/comfy_env.py) and the pack's V3 entry point, in a real ComfyUI.

The tests that need ComfyUI skip without ``COMFYUI_PATH``; the skip itself is tested always.
"""

import pytest

from tests.comfy_env import PACK_DIR_NAME, SKIP_MESSAGE, check, comfy_path, run_in_comfy

LOADING = r'''
import asyncio
import os
import sys

import nodes
from comfy_api.latest import ComfyExtension, io

@record("comfy_nodes")
def _():
    return {"file": os.path.realpath(nodes.__file__), "in_sys_modules": sys.modules["nodes"] is nodes}

@record("package")
def _():
    return {"name": pack.__name__, "file": pack.__file__, "nodes": pack.nodes.__name__,
            "explore": pack.nodes.explore.__name__, "schema": pack.nodes.schema.__name__,
            "top_level_ours": sorted(m for m in sys.modules if m == "nodes.explore" or m.startswith("nodes.")),
            "exports": sorted(n for n in ("comfy_entrypoint", "NODE_CLASS_MAPPINGS", "WEB_DIRECTORY")
                              if hasattr(pack, n)),
            "web": [os.path.realpath(d) for d in nodes.EXTENSION_WEB_DIRS.values()]}

@record("entry_point")
def _():
    extension = asyncio.run(pack.comfy_entrypoint())
    listed = asyncio.run(extension.get_node_list())
    return {"extension": isinstance(extension, ComfyExtension),
            "listed": [cls.GET_SCHEMA().node_id for cls in listed],
            "declared": [cls.NODE_ID for cls in pack.nodes.NODES],
            "table": sorted(pack.nodes.NODE_CLASS_MAPPINGS),
            "all_v3": all(issubclass(cls, io.ComfyNode) for cls in listed),
            "registered": all(nodes.NODE_CLASS_MAPPINGS.get(cls.NODE_ID) is cls for cls in listed),
            "modules": sorted({cls.RELATIVE_PYTHON_MODULE for cls in listed}),
            "display": {cls.NODE_ID: nodes.NODE_DISPLAY_NAME_MAPPINGS.get(cls.NODE_ID) for cls in listed}}

@record("schemas")
def _():
    found = {}
    for cls in pack.nodes.NODES:
        info = cls.GET_NODE_INFO_V1()  # what /object_info serves
        inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        found[info["name"]] = {
            "category": info["category"], "display": info["display_name"], "description": info["description"],
            "untipped_inputs": [k for k, (_, opts) in inputs.items() if not opts.get("tooltip")],
            "untipped_outputs": [n for n, t in zip(info["output_name"], info["output_tooltips"]) if not t],
            "outputs": len(info["output"]), "output_names": len(info["output_name"]),
            "custom_types": sorted({t for t, _ in inputs.values() if isinstance(t, str) and t.startswith("UNITYVIDEO")}
                                   | {t for t in info["output"] if isinstance(t, str) and t.startswith("UNITYVIDEO")})}
    return found

@record("helpers")
def _():
    before = "ModelSamplingSD3" in nodes.NODE_CLASS_MAPPINGS
    load_extras("nodes_model_advanced")
    (image,), ui = call_node("EmptyImage", width=8, height=4, batch_size=2, color=0xFF0000)  # a V1 core node
    return {"extra_before": before, "extra_after": "ModelSamplingSD3" in nodes.NODE_CLASS_MAPPINGS,
            "image": list(image.shape), "red": float(image[..., 0].min()), "ui": ui}

@record("missing_tooltip")
def _():
    class UnityVideoNoTooltip(pack.nodes.schema.UnityNode):
        """A node that forgot a tooltip."""

        DISPLAY = "UnityVideo No Tooltip"
        GROUP = "tests"
        INPUTS = [io.Int.Input("count", default=1)]

        @classmethod
        def execute(cls, count):
            return io.NodeOutput()

    from comfy_api.internal import shallow_clone_class

    clone_id = shallow_clone_class(pack.nodes.explore.UnityVideoExplore).NODE_ID  # as ComfyUI clones to run
    try:
        UnityVideoNoTooltip.GET_SCHEMA()
    except TypeError as err:
        return {"error": str(err), "clone_id": clone_id}
    return {"error": None, "clone_id": clone_id}
'''


@pytest.fixture(scope="module")
def loaded():
    return run_in_comfy(LOADING, timeout=300)


def test_comfy_path_skips_with_the_variable_named(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    with pytest.raises(pytest.skip.Exception, match="COMFYUI_PATH") as info:
        comfy_path()
    assert str(info.value) == SKIP_MESSAGE
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))  # a folder without ComfyUI in it
    with pytest.raises(pytest.skip.Exception, match="holds no ComfyUI"):
        run_in_comfy("emit({})")


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
        run_in_comfy("raise ValueError('boom 42')", timeout=300)
