"""Hide the optional extras from a child process: ``tests/test_packaging.py`` puts this folder on the
ComfyUI child's ``PYTHONPATH``, so Python imports this file at start-up (``sitecustomize``), and
from then on ``import mediapipe`` (peft, accelerate, bitsandbytes) raises ModuleNotFoundError as on
a machine without them, while the packages stay installed."""

import importlib.machinery
import sys

HIDDEN = {"mediapipe", "peft", "accelerate", "bitsandbytes"}


class _Hide(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in HIDDEN else super().find_spec(name, path, target)


sys.meta_path[:] = [_Hide if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
