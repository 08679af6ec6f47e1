"""Datasets in the release's training format: a CSV with columns ``video, prompt, <modality>...``
(paths relative to the CSV, one column per modality visualisation video).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from unity_core.constants import MODALITIES, resolve_modality


def export_synthworld(out_dir: Union[str, Path], seeds: Iterable[int], num_frames: int = 17, height: int = 64,
                      width: int = 64, modalities: Sequence[str] = MODALITIES, fps: float = 8.0) -> Path:
    """Render synthworld clips and write them in the release's format: ``videos/<seed>.mp4``,
    ``<modality>/<seed>.mp4`` and ``metadata.csv``. Returns the CSV path.

    Raises:
        FileExistsError: ``out_dir/metadata.csv`` exists (nothing is overwritten).
    """
    from unity_core import modalities as M
    from unity_core.data.synthworld import modality_values, render_clip
    from unity_core.io.video import write_video

    out = Path(out_dir)
    csv_path = out / "metadata.csv"
    if csv_path.exists():
        raise FileExistsError(f"{csv_path} exists; export into a new folder")
    names = [resolve_modality(m) for m in modalities]
    rows = []
    for seed in seeds:
        clip = render_clip(seed, num_frames, height, width)
        row = {"video": str(write_video(out / "videos" / f"{seed:06d}.mp4", clip.rgb, fps).relative_to(out)),
               "prompt": clip.prompt}
        for m in names:
            vis = M.encode(m, modality_values(clip, m), size=(height, width))
            row[m] = str(write_video(out / m / f"{seed:06d}.mp4", vis, fps).relative_to(out))
        rows.append(row)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["video", "prompt", *names])
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


class CSVVideoDataset(torch.utils.data.Dataset):
    """Rows of a release-format CSV as dicts: ``rgb`` ``[F, H, W, 3]``, ``prompt`` and one
    ``[F, H, W, 3]`` visualisation per available modality (empty cells are skipped).

    Raises:
        ValueError: no ``video`` / ``prompt`` column, no rows, an unknown modality column, or a
            requested modality without a column.
    """

    def __init__(self, csv_path: Union[str, Path], num_frames: int = 17, size=(64, 64),
                 modalities: Optional[Sequence[str]] = None):
        self.root = Path(csv_path).parent
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            self.rows: List[Dict[str, str]] = list(reader)
            cols = set(reader.fieldnames or [])
        if not {"video", "prompt"} <= cols:
            raise ValueError(f"{csv_path} needs 'video' and 'prompt' columns, has {sorted(cols)}")
        if not self.rows:
            raise ValueError(f"{csv_path} has a header but no rows")
        #: release modality name -> the CSV column holding it (a column may use an alias, e.g. "flow")
        self.columns: Dict[str, str] = {resolve_modality(c): c for c in sorted(cols - {"video", "prompt"})}
        self.modalities = [resolve_modality(m) for m in (modalities or self.columns)]
        absent = [m for m in self.modalities if m not in self.columns]
        if absent:
            raise ValueError(f"{csv_path} has no column for {absent}; its modality columns are {sorted(self.columns)}")
        self.num_frames, self.size = num_frames, tuple(size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Dict[str, object]:
        from unity_core.io.video import read_video

        row = self.rows[i]
        item: Dict[str, object] = {"prompt": row["prompt"],
                                   "rgb": read_video(self.root / row["video"], self.num_frames, size=self.size)[0]}
        for m in self.modalities:
            cell = row.get(self.columns[m])
            if cell:
                item[m] = read_video(self.root / cell, self.num_frames, size=self.size)[0]
        return item

    def stacked(self) -> Tuple[Dict[str, torch.Tensor], List[str]]:
        """Every row in memory, for :func:`unity_core.train.build_latent_data`: streams ``"rgb"``
        and each of ``self.modalities`` as ``[N, F, H, W, 3]`` uint8, and the N prompts.

        Raises:
            ValueError: a row without one of the modalities (name the ones to train with
                ``modalities=``, or fill the cell).
        """
        from unity_core.io import to_uint8

        videos: Dict[str, List[torch.Tensor]] = {"rgb": [], **{m: [] for m in self.modalities}}
        prompts = []
        for i in range(len(self)):
            item = self[i]
            missing = [m for m in self.modalities if m not in item]
            if missing:
                raise ValueError(f"row {i + 2} of the CSV has no {missing} video; pass modalities= without them "
                                 "or fill the cells")
            for name in videos:
                videos[name].append(to_uint8(item[name]))
            prompts.append(str(item["prompt"]))
        return {k: torch.stack(v) for k, v in videos.items()}, prompts
