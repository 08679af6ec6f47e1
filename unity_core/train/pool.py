"""A pool of rendered synthworld clips with every modality's visualisation, kept as uint8.

Training the default model draws its examples from such a pool (rendering is the slow part).
Stored as safetensors: ``rgb`` and one tensor per modality ``[N, F, H, W, 3]`` uint8, prompts in
the metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Union

import torch

from unity_core.constants import MODALITIES


@dataclass
class ClipPool:
    """``videos["rgb" | modality]``: ``[N, F, H, W, 3]`` uint8; ``prompts``: N training prompts."""

    videos: Dict[str, torch.Tensor]
    prompts: List[str]

    def __len__(self) -> int:
        return len(self.prompts)

    def frames(self, stream: str, index) -> torch.Tensor:
        """Float frames in [0, 1] for clip(s) ``index``."""
        return self.videos[stream][index].float() / 255.0

    def save(self, path: Union[str, Path]) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.videos.items()}, str(path), metadata={"prompts": json.dumps(self.prompts)})
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ClipPool":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            # safetensors lists keys alphabetically: restore the rendering order (rgb, then MODALITIES)
            order = {name: i for i, name in enumerate(("rgb", *MODALITIES))}
            videos = {k: fh.get_tensor(k) for k in sorted(fh.keys(), key=lambda k: order.get(k, len(order)))}
            prompts = json.loads(fh.metadata()["prompts"])
        return cls(videos, prompts)


def render_pool(seeds: Iterable[int], num_frames: int = 17, height: int = 64, width: int = 64, log=print,
                one_action_per_clip: bool = True) -> ClipPool:
    """Render synthworld clips and encode every modality's visualisation.

    ``one_action_per_clip``: each clip holds one camera action (drawn from its seed) for all its
    segments, so its prompt names one action, as each segment of an exploration walk does;
    False draws one action per 4-frame segment.
    """
    from unity_core import modalities as M
    from unity_core.data.synthworld import held_actions, modality_values, render_clip
    from unity_core.io import to_uint8

    videos: Dict[str, List[torch.Tensor]] = {"rgb": [], **{m: [] for m in MODALITIES}}
    prompts = []
    seeds = list(seeds)
    for i, seed in enumerate(seeds):
        actions = held_actions(seed, num_frames) if one_action_per_clip else None
        clip = render_clip(seed, num_frames, height, width, actions=actions)
        videos["rgb"].append(clip.rgb)
        for m in MODALITIES:
            videos[m].append(M.encode(m, modality_values(clip, m), size=(height, width)))
        prompts.append(clip.prompt)
        if log and (i + 1) % 50 == 0:
            log(f"rendered {i + 1}/{len(seeds)} clips")
    return ClipPool({k: to_uint8(torch.stack(v)) for k, v in videos.items()}, prompts)


#: First synthworld seed of the walk clips (apart from the pool's 0..N-1 and the benches' 100000+ and 200000+).
WALK_SEED0 = 300000


def render_walks(seeds: Iterable[int], num_frames: int = 17, height: int = 64, width: int = 64,
                 still_share: float = 0.3, log=print):
    """Walk clips for the ``explore_segment`` task: a history, then one last 4-frame segment
    under a new random action, prompted as :meth:`unity_core.pipeline.UnityVideoPipeline.explore`
    prompts that segment (content, Yume v1 prefix and the new action's sentences only).

    The history's segments take random actions, or (``still_share`` of the clips) stand still,
    as a walk's first segment does after the repeated start image.

    Returns:
        (rgb ``[M, F, H, W, 3]`` uint8, prompts: M strings).
    """
    import numpy as np

    from unity_core.data.synthworld import FRAMES_PER_SEGMENT, random_actions, render_clip
    from unity_core.explore.actions import CameraAction
    from unity_core.explore.qcm import segment_prompt
    from unity_core.io import to_uint8

    rgb, prompts = [], []
    seeds = list(seeds)
    history = max(1, (num_frames - 1) // FRAMES_PER_SEGMENT) - 1
    for i, seed in enumerate(seeds):
        rng = np.random.default_rng([seed, 2])
        still = rng.random() < still_share
        actions = [CameraAction("·", "·")] * history if still else random_actions(rng, history)
        new = random_actions(rng, 1)[0]
        clip = render_clip(seed, num_frames, height, width, actions=actions + [new])
        rgb.append(clip.rgb)
        prompts.append(segment_prompt(clip.caption, new))
        if log and (i + 1) % 100 == 0:
            log(f"rendered {i + 1}/{len(seeds)} walk clips")
    return to_uint8(torch.stack(rgb)), prompts


def load_or_render_pool(path: Union[str, Path], clips: int, log=print, num_frames: int = 17) -> ClipPool:
    """The pool cached at ``path``, or seeds ``0..clips-1`` rendered (``num_frames`` frames, 64x64)
    and saved there first.

    Raises:
        ValueError: the cached pool's clips are not ``num_frames`` long, or it holds another
            number of clips (pick another path).
    """
    import time

    path = Path(path)
    if path.exists():
        pool = ClipPool.load(path)
        if pool.videos["rgb"].shape[1] != num_frames:
            raise ValueError(f"{path} holds {pool.videos['rgb'].shape[1]}-frame clips, not {num_frames}; "
                             "give another pool path or the matching frame count")
        if len(pool) != clips:
            raise ValueError(f"{path} holds {len(pool)} clips, not {clips}; give another pool path or --clips {len(pool)}")
        return pool
    start = time.time()
    pool = render_pool(range(clips), num_frames=num_frames, log=log)
    pool.save(path)
    if log:
        log(f"rendered {clips} clips in {time.time() - start:.0f}s -> {path}")
    return pool
