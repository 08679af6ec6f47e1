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
``fps``       0-d float: the clip's frames per second (files written since whole-video
              estimation; absent in older files)
============  ===============================================================================

**Long clips** (values at the source size over 256 MB, see
:class:`unity_core.io.stream.ValuesWriter`) are streamed window by window into the same kind
of archive, with the values split into chunks kept at the model's size:

================  =============================================================================
entry             content
================  =============================================================================
``values_NNNNNN`` frames ``NNNNNN, NNNNNN + 1, ...`` of the values above at the model's size
                  (zero-padded start frame, so sorted names are in frame order)
``source_size``   ``[2]`` int (height, width) of the source video
``model_size``    ``[2]`` int (height, width) the model saw
``num_frames``    0-d int: frames in the clip; ``modality`` and ``fps`` as above
================  =============================================================================

:func:`iter_values` reads either layout chunk by chunk at the source size (each modality's rule
of :func:`unity_core.video.windows.to_source_size`: depth bilinear, flow bilinear with its
vectors scaled, labels and DensePose parts by nearest neighbour, keypoints scaled), so memory
follows a chunk; :func:`load_values` returns the whole array. In Python without this package:
``z = numpy.load(path)``; ``sorted(k for k in z.files if k.startswith("values_"))``.

A file is never overwritten: :func:`save_values` publishes the finished file as ``name.npz``,
``name_1.npz``, ... without replacing anything (:mod:`unity_core.io.output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Union

import numpy as np
import torch

from unity_core.io.output import atomic_output

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
    with atomic_output(path) as out:
        with open(out.tmp, "wb") as fh:  # a file object: numpy would add ".npz" to the ".part" name
            np.savez_compressed(fh, values=array, modality=name)
    return out.path


def _chunks(archive, path: Path):
    names = sorted(k for k in archive.files if k.startswith("values_"))
    if "values" in archive.files:
        return [(0, "values")], None
    if not names:
        raise ValueError(f"{path} lacks the entries ['modality', 'values'] of a values file; write it with save_values")
    model = tuple(int(v) for v in archive["model_size"])
    source = tuple(int(v) for v in archive["source_size"])
    return [(int(k.split("_")[1]), k) for k in names], (model, source)


def iter_values(path: PathLike):
    """Read a values file chunk by chunk at the source size (both layouts of the module docstring).

    Yields:
        ``(start_frame, values)`` with values as numpy arrays, frames first.

    Raises:
        FileNotFoundError / ValueError: as :func:`load_values`.
    """
    from unity_core.video.windows import to_source_size

    archive, name = _open(path)
    with archive:
        chunks, sizes = _chunks(archive, Path(path))
        for start, key in chunks:
            v = archive[key]
            if sizes is not None:
                v = to_source_size(name, torch.from_numpy(v), *sizes).numpy()
            yield start, v


def _open(path: PathLike):
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
    present = set(archive.files) | ({"values"} if any(k.startswith("values_") for k in archive.files) else set())
    missing = sorted({"modality", "values"} - present)
    if missing:
        archive.close()
        raise ValueError(f"{path} lacks the entries {missing} of a values file; write it with save_values")
    return archive, resolve_modality(str(archive["modality"]))


def load_values(path: PathLike) -> ModalityValues:
    """Read a values file written by :func:`save_values` or streamed by
    :class:`~unity_core.io.stream.ValuesWriter` (whole clip at the source size), or an older copy
    of the same format.

    Returns:
        :class:`ModalityValues` with the release's modality name and the values array.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz`` archive, or one without the ``values`` (or ``values_*``) and
            ``modality`` entries, or with an unknown modality.
    """
    archive, name = _open(path)
    archive.close()
    parts = [v for _, v in iter_values(path)]
    return ModalityValues(name, parts[0] if len(parts) == 1 else np.concatenate(parts))


__all__ = ["ModalityValues", "iter_values", "load_values", "save_values"]
