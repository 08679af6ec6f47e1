"""ComfyUI entry point of the UnityVideo node suite (this folder is a ComfyUI custom node).

ComfyUI loads this folder as a package (``custom_nodes/<folder>/__init__.py``, whatever the
folder is called) and calls :func:`comfy_entrypoint`, the V3 way: it returns a ``ComfyExtension``
whose node list is ``nodes.NODES``. ``WEB_DIRECTORY`` is the frontend extension (the explore
keyboard widget, modality legends).

There is deliberately no ``NODE_CLASS_MAPPINGS`` here: ComfyUI reads such a table first and would
then never call the entry point.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
try:  # installed (pip install -e .) or not: the library beside this file
    import unity_core  # noqa: F401
except ImportError:
    # appended, not prepended: this folder's `nodes/` and `tests/` must not shadow ComfyUI's own
    # top-level `nodes` module and `tests` package
    sys.path.append(_HERE)

from .nodes import comfy_entrypoint  # noqa: E402

WEB_DIRECTORY = "./web"
__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
