"""Segmentation labels <-> mask videos.

Values: ``[F, H, W]`` int64 labels, 0 = background. The release's modality prompt is
"segmentation mask of foreground objects against background", so the default visualisation
is binary: white foreground on black. ``instances=True`` colours each label with a fixed,
well-separated palette instead (decoded by nearest palette colour).
"""

from __future__ import annotations

import colorsys

import torch

MAX_INSTANCES = 32


def palette(n: int = MAX_INSTANCES) -> torch.Tensor:
    """Colours ``[n + 1, 3]`` in [0, 1]: black for label 0, then golden-ratio hues at two
    brightness levels so neighbouring labels differ strongly."""
    cols = [(0.0, 0.0, 0.0)]
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        v = 1.0 if i % 2 == 0 else 0.65
        cols.append(colorsys.hsv_to_rgb(h, 0.9, v))
    return torch.tensor(cols, dtype=torch.float32)


def encode(labels: torch.Tensor, instances: bool = False) -> torch.Tensor:
    """Labels ``[F, H, W]`` -> frames ``[F, H, W, 3]`` in [0, 1].

    Raises:
        ValueError: wrong shape, labels that are not whole numbers (a soft mask: threshold it,
            e.g. ``(mask > 0.5).long()``), negative labels, or more than ``MAX_INSTANCES``
            instances.
    """
    if labels.ndim != 3:
        raise ValueError(f"labels must be [F, H, W], got {tuple(labels.shape)}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("labels must be whole numbers (0 = background); threshold a soft mask first, "
                         "e.g. (mask > 0.5).long()")
    labels = labels.long()
    if labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background)")
    if not instances:
        return (labels > 0).float()[..., None].expand(*labels.shape, 3).contiguous()
    if labels.max() > MAX_INSTANCES:
        raise ValueError(f"at most {MAX_INSTANCES} instances can be coloured, got label {int(labels.max())}")
    return palette()[labels]


def decode(frames: torch.Tensor, instances: bool = False) -> torch.Tensor:
    """Frames ``[F, H, W, 3]`` -> labels ``[F, H, W]`` int64 (binary: 1 where brightness > 0.5)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    if not instances:
        return (frames.float().mean(-1) > 0.5).long()
    pal = palette()
    d = torch.cdist(frames.reshape(-1, 3).float(), pal)
    return d.argmin(1).reshape(frames.shape[:3])
