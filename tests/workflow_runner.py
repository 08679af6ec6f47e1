"""A minimal in-process executor for API-format workflows (no ComfyUI needed): validates
inputs against each node's INPUT_TYPES and runs the graph in dependency order."""

from __future__ import annotations

from typing import Any, Dict

from nodes import NODE_CLASS_MAPPINGS

CORE_NODES = {"CLIPLoader", "VAELoader", "CLIPTextEncode", "VAEEncode", "VAEDecode"}


def validate(workflow: Dict[str, Any]) -> None:
    """Raise AssertionError for unknown nodes, missing/unknown inputs, bad links or values."""
    for nid, node in workflow.items():
        cls_name = node["class_type"]
        if cls_name in CORE_NODES:
            continue
        assert cls_name in NODE_CLASS_MAPPINGS, f"node {nid}: unknown class {cls_name}"
        spec = NODE_CLASS_MAPPINGS[cls_name].INPUT_TYPES()
        known = {**spec.get("required", {}), **spec.get("optional", {})}
        for name in spec.get("required", {}):
            assert name in node["inputs"], f"node {nid} ({cls_name}): missing input {name}"
        for name, value in node["inputs"].items():
            assert name in known, f"node {nid} ({cls_name}): unknown input {name}"
            typ, *rest = known[name]
            opts = rest[0] if rest else {}
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in workflow:
                src = workflow[value[0]]
                if src["class_type"] in NODE_CLASS_MAPPINGS:
                    out_type = NODE_CLASS_MAPPINGS[src["class_type"]].RETURN_TYPES[value[1]]
                    assert out_type == typ, f"node {nid}.{name}: link gives {out_type}, wants {typ}"
            elif isinstance(typ, list):
                assert value in typ or cls_name == "UnityVideoLoader", f"node {nid}.{name}: {value!r} not in {typ}"
            elif typ in ("INT", "FLOAT"):
                assert opts.get("min", -float("inf")) <= value <= opts.get("max", float("inf")), f"node {nid}.{name} out of range"


def execute(workflow: Dict[str, Any]) -> Dict[str, Any]:
    """Run every node; returns node id -> outputs tuple (or the ui dict of output nodes)."""
    validate(workflow)
    results: Dict[str, Any] = {}

    def run(nid: str):
        if nid in results:
            return results[nid]
        node = workflow[nid]
        cls = NODE_CLASS_MAPPINGS[node["class_type"]]
        kwargs = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in workflow:
                kwargs[name] = run(value[0])[value[1]]
            else:
                kwargs[name] = value
        out = getattr(cls(), cls.FUNCTION)(**kwargs)
        results[nid] = out["result"] if isinstance(out, dict) else out
        if isinstance(out, dict):
            results[nid + ":ui"] = out["ui"]
        return results[nid]

    for nid in workflow:
        run(nid)
    return results
