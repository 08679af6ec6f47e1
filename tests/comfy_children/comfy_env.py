"""Run by tests/test_comfy_env.py: how the pack loads in ComfyUI, and the harness's own helpers."""

import asyncio
import os
import sys

import nodes
from comfy_api.latest import ComfyExtension, io


def loading(child):
    """Where ``nodes`` and the pack come from, the entry point, the schemas and the harness's helpers,
    each under its name (``@record``)."""
    pack, record, call_node, load_extras = child.pack, child.record, child.call_node, child.load_extras

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



def boom(child):
    """Raise, so the test sees a child's error reach it (nothing is emitted)."""
    raise ValueError("boom 42")
