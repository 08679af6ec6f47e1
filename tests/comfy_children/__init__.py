"""The code the ComfyUI tests run inside a real ComfyUI process, one module per test file.

Each module here is imported only in the child process that :func:`tests.comfy_env.run_child`
starts, after ComfyUI is set up and the pack is loaded (see ``tests/comfy_env.py``), under the
package name ``unityvideo_comfy_children`` (not ``tests``: ComfyUI has a ``tests`` package of its
own). So a top-level ``import nodes`` here is ComfyUI's ``nodes.py``, not this repo's ``nodes/``
(the pack's own node modules are ``child.pack.nodes.<module>``), and nothing here is importable in
the pytest process (nor collected by it: no file is named ``test_*.py``).

A function the test names is called as ``function(child, **kwargs)``: ``child`` is a
:class:`tests.comfy_env.ComfyChild` (``child.pack``, ``child.BASE``, ``child.record``,
``child.call_node``, ...) and ``kwargs`` are the JSON values the test passed. It hands its
results back with ``child.emit(dict)`` or ``@child.record(name)``; the test reads them with
:func:`tests.comfy_env.check`.

============================  ==================================  ====================================
module                        functions                           run by
============================  ==================================  ====================================
``comfy_env``                 ``loading``, ``boom``               ``tests/test_comfy_env.py``
``comfy_native``              ``main``                            ``tests/test_comfy_native.py``
``comfy_windows``             ``main``                            ``tests/test_comfy_windows.py``
``explore_node``              ``node_checks``, ``yume_checks``,   ``tests/test_explore_node.py``
                              ``yume_setup`` (shared)
``media_nodes``               ``main``                            ``tests/test_media_nodes.py``
``pack_nodes``                ``main``                            ``tests/test_nodes.py``
``packaging_checks``          ``without_extras``,                 ``tests/test_packaging.py``
                              ``extra_model_paths``
``workflows``                 ``main``                            ``tests/workflow_runner.py``
``yume_native``               ``main``                            ``tests/test_yume_native.py``
============================  ==================================  ====================================

``hide_extras/sitecustomize.py`` is not a child module: ``tests/test_packaging.py`` puts its folder
on the child's ``PYTHONPATH`` to hide the optional extras (mediapipe, peft, accelerate,
bitsandbytes) from the child.
"""
