"""ComfyUI nodes: a thin layer over unity_core, declared in ComfyUI's V3 schema (``comfy_api.latest``).

:data:`NODES` lists every node class, in menu order; the root ``__init__.py`` hands them to ComfyUI
through the V3 entry point :func:`comfy_entrypoint` (a ``ComfyExtension``). The V1-style tables
``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` are derived here for tools and tests; the
root package does not export them, because ComfyUI prefers such a table over the entry point.

Importing this package needs ComfyUI (``comfy``, ``comfy_api``, ``folder_paths`` on ``sys.path``:
inside ComfyUI, or a test run with ``COMFYUI_PATH`` set, see ``tests/comfy_env.py``);
:mod:`unity_core` works without it.
"""

try:
    from comfy_api.latest import ComfyExtension
except ImportError as err:  # plain Python: say what is needed instead of a bare ModuleNotFoundError
    raise ImportError(f"the UnityVideo nodes run inside ComfyUI (they import comfy_api: {err}); outside it use "
                      "unity_core, or put ComfyUI on sys.path (tests: set COMFYUI_PATH=/path/to/ComfyUI)") from err

from .codec import UnityVideoDecode, UnityVideoEncode
from .conditioning import UnityVideoSplit, UnityVideoTask, UnityVideoTextEncode
from .explore import UnityVideoExplore
from .loaders import UnityVideoLoader
from .modalities import (UnityVideoEstimate, UnityVideoModalityDecode, UnityVideoModalityEncode, UnityVideoPreprocess,
                         UnityVideoSaveValues)
from .sampling import UnityVideoAAMSampler, UnityVideoBlockCache, UnityVideoControlGuider, UnityVideoTimeTravelSampler
from .video import UnityVideoLoadVideo, UnityVideoSaveVideo
from .windows import UnityVideoWindowedSampling
from .yume import UnityVideoYumeSegment

NODES = [
    UnityVideoLoader,
    UnityVideoLoadVideo,
    UnityVideoTextEncode,
    UnityVideoTask,
    UnityVideoSplit,
    UnityVideoWindowedSampling,
    UnityVideoControlGuider,
    UnityVideoTimeTravelSampler,
    UnityVideoBlockCache,
    UnityVideoAAMSampler,
    UnityVideoEncode,
    UnityVideoDecode,
    UnityVideoEstimate,
    UnityVideoModalityEncode,
    UnityVideoModalityDecode,
    UnityVideoPreprocess,
    UnityVideoSaveValues,
    UnityVideoSaveVideo,
    UnityVideoExplore,
    UnityVideoYumeSegment,
]

NODE_CLASS_MAPPINGS = {cls.NODE_ID: cls for cls in NODES}
NODE_DISPLAY_NAME_MAPPINGS = {cls.NODE_ID: cls.DISPLAY for cls in NODES}


class UnityVideoExtension(ComfyExtension):
    """The pack as ComfyUI's V3 extension: its node list is :data:`NODES`."""

    async def get_node_list(self):
        return list(NODES)


async def comfy_entrypoint() -> UnityVideoExtension:
    """ComfyUI's V3 entry point (called by ``nodes.load_custom_node``)."""
    return UnityVideoExtension()
