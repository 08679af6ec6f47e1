"""unity_core: UnityVideo (arXiv 2512.07831) and Yume (arXiv 2507.17744) on one video DiT.

The library knows nothing of ComfyUI; ``nodes/`` wraps it. See README.md for the layout.
"""

__version__ = "0.1.0"
