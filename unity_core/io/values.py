"""Values files: decoded modality values saved as ``.npz``, the one format the command line and
the ComfyUI Save Values node write.

Format (a NumPy ``.npz`` archive, zip-deflated by :func:`numpy.savez_compressed`, readable
with ``numpy.load(path)`` and no pickle):

============  ===============================================================================
entry         content
============  ===============================================================================
``values``    the values as :func:`unity_core.modalities.decode` (or a preprocessor) gives
              them, dtype and layout unchanged: depth ``[F, H, W]`` float32 relative depth in
              [0, 1] (0 near); raft ``[F, H, W, 2]`` float32 (u right, v down) in pixels;
              segmentation ``[F, H, W]`` int64 labels (0 background); skeleton
              ``[F, P, 18, 3]`` float32 (x, y pixels, confidence), OpenPose-18 order;
              densepose ``[F, H, W, 3]`` float32 (part 0..24, U, V in [0, 1])
``modality``  0-d unicode array: the release's modality name (``depth``, ``raft``,
              ``segmentation``, ``skeleton`` or ``densepose``), never an alias or UI label
============  ===============================================================================

A file is never overwritten: :func:`save_values` picks ``name_1.npz``, ``name_2.npz``, ... as
:func:`unity_core.io.video.unique_path` does for videos.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from unity_core.io.video import unique_path

PathLike = Union[str, Path]


class ModalityValues(NamedTuple):
    """A values file's content: the release's modality name and the values array (layout in
    the module docstring)."""

    modality: str
    values: np.ndarray


def _as_array(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on an accelerator
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object or array.ndim < 3:
        raise ValueError(f"values must be a numeric array with frames first (at least [F, H, W] or [F, P, 18, 3]), "
                         f"got dtype {array.dtype} and shape {array.shape}")
    return array


def save_values(path: PathLike, modality: str, values) -> Path:
    """Write decoded modality values as a values file (format in the module docstring).

    Args:
        path: wanted file name, ending in ``.npz``; if it exists, ``_1``, ``_2``, ... is added
            before the suffix. Missing parent folders are created.
        modality: any name :func:`unity_core.constants.resolve_modality` accepts; the release's
            name is stored.
        values: numpy array or torch tensor (any device), frames first.

    Returns:
        The path written.

    Raises:
        ValueError: a path not ending in ``.npz``, an unknown modality, or values that are not a
            numeric array of at least three dimensions.
    """
    from unity_core.constants import resolve_modality

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"a values file ends in .npz, got {path.name!r}; use e.g. {path.with_suffix('.npz').name!r}")
    name = resolve_modality(modality)
    array = _as_array(values)
    path = unique_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, values=array, modality=name)
    return path


def load_values(path: PathLike) -> ModalityValues:
    """Read a values file written by :func:`save_values` (or an older copy of the same format).

    Returns:
        :class:`ModalityValues` with the release's modality name and the values array.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz`` archive, or one without the ``values`` and ``modality``
            entries, or with an unknown modality.
    """
    from unity_core.constants import resolve_modality

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"values file {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not a values file (.npz archive): {err}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not a values file (.npz with 'values' and 'modality')")
    with archive:
        missing = {"values", "modality"} - set(archive.files)
        if missing:
            raise ValueError(f"{path} lacks the entries {sorted(missing)} of a values file; write it with save_values")
        return ModalityValues(resolve_modality(str(archive["modality"])), archive["values"])


__all__ = ["ModalityValues", "load_values", "save_values"]
