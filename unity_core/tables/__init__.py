"""The JSON tables that :mod:`unity_core.constants` loads (data, not code; read them through
``constants``, never directly).

``unityvideo_prompts.json``
    UnityVideo's modality list, fixed modality prompts, task table, training weights and
    inference defaults (release commit e79e9b6), plus our modality aliases.
``yume_qcm.json``
    Yume's quantized-camera-motion vocabulary and its sentence sets ``v1`` and ``v1_5``.

Installed as package data (``[tool.setuptools.package-data]`` in ``pyproject.toml``).
"""
