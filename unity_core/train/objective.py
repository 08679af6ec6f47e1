"""UnityVideo's training objective: conditional flow matching with dynamic task routing.

Per step (release defaults, from ``train.py``): draw a task (text2all 0.5, video2flow 0.25,
flow2video 0.25) and a modality (depth 0.2, densepose 0.2, raft 0.2, segmentation 0.4,
skeleton 0.4), draw t = sigmoid(N(0, 1)) shifted towards noise with shift 5, noise the
stream(s) of the task (the clean stream is fed exactly, t = 0), and regress the velocity
noise - x with a float32 MSE per supervised stream, summed.

One task is ours, not the release's: ``text2video`` (:data:`RGB_ONLY_TASK`), plain text-to-video
on the RGB stream with no modality tokens at all. The 5B inherits that ability from Wan; a model
trained from scratch (the shipped default) must learn it, because world exploration
(:mod:`unity_core.explore`) runs the RGB stream alone.

A second is ``explore_segment`` (:data:`EXPLORE_TASK`), one exploration segment after a history,
as :meth:`unity_core.pipeline.UnityVideoPipeline.explore` samples it: the whole clip is noised to one t
(Yume re-noises the history to the current level), and only the last ``new_frames`` latent
frames are supervised. Its clips change action at that last segment and their prompt names only
the new action, so the motion of the history does not give the answer away: the prompt does.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

from unity_core.constants import TRAIN_MODALITY_WEIGHTS, TRAIN_TASK_WEIGHTS, resolve_task
from unity_core.sampling.schedule import TIMESTEP_SCALE, shift_sigmas
from unity_core.sampling.tasks import add_noise, noised_streams


#: Training-only task: RGB alone, no modality stream (what Wan was trained on; exploration runs it).
RGB_ONLY_TASK = "text2video"
#: Training-only task: RGB alone, loss on the last segment of a walk clip (see the module docstring).
EXPLORE_TASK = "explore_segment"


def _choose(weights: Mapping[str, float], generator: Optional[torch.Generator]) -> str:
    names = list(weights)
    probs = torch.tensor([float(weights[n]) for n in names], dtype=torch.float64)
    if (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {dict(weights)}")
    return names[int(torch.multinomial(probs, 1, generator=generator))]


def sample_task(generator: Optional[torch.Generator] = None, weights: Mapping[str, float] = TRAIN_TASK_WEIGHTS) -> str:
    """Draw a task name with the given probabilities (normalised)."""
    return _choose(weights, generator)


def sample_modality(
    generator: Optional[torch.Generator] = None,
    weights: Mapping[str, float] = TRAIN_MODALITY_WEIGHTS,
    available: Optional[Sequence[str]] = None,
) -> str:
    """Draw a modality; ``available`` restricts the draw to the modalities a clip has."""
    if available is not None:
        weights = {k: v for k, v in weights.items() if k in set(available)}
        if not weights:
            raise ValueError(f"none of {list(available)} has a training weight")
    return _choose(weights, generator)


def sample_timesteps(batch: int, shift: float = 5.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Logit-normal flow times ``[batch]`` in (0, 1): sigmoid(N(0, 1)), then shifted."""
    u = torch.sigmoid(torch.randn(batch, generator=generator))
    return shift_sigmas(u, shift)


def _shard_rows(rows: int, shard: Tuple[int, int]) -> slice:
    """This rank's rows of a global batch: ``rows`` local rows, ``shard`` = (rank, world)."""
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
    return slice(rank * rows, (rank + 1) * rows)


def drop_prompts(context: torch.Tensor, empty: torch.Tensor, p: float, generator: Optional[torch.Generator] = None,
                 shard: Tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Replace each sample's content prompt ``[B, L, D]`` by ``empty`` ``[1, L, D]`` with
    probability ``p`` (the release drops 10 % so CFG works; the modality prompt is never dropped).

    ``shard`` = (rank, world): ``context`` is this rank's B rows of a global batch of
    ``B * world``; the draw covers the global batch, so every rank sees the draws one process
    would (the trainer's global sampler)."""
    if p <= 0:
        return context
    rows = _shard_rows(context.shape[0], shard)
    drop = (torch.rand(context.shape[0] * shard[1], generator=generator) < p)[rows]
    return torch.where(drop[:, None, None].to(context.device), empty.to(context).expand_as(context), context)


def flow_matching_loss(
    model,
    rgb_x: torch.Tensor,
    modality_x: torch.Tensor,
    task: str,
    modality: str,
    context: torch.Tensor,
    modality_context: Optional[torch.Tensor],
    generator: Optional[torch.Generator] = None,
    timestep_shift: float = 5.0,
    t: Optional[torch.Tensor] = None,
    new_frames: int = 1,
    shard: Tuple[int, int] = (0, 1),
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Velocity-matching loss of one UnityVideo task on a batch.

    Args:
        rgb_x, modality_x: clean latents ``[B, C, F, H, W]``.
        task: task name (or :data:`RGB_ONLY_TASK`, :data:`EXPLORE_TASK`); decides which
            streams are noised and supervised.
        modality: the modality of ``modality_x``.
        context, modality_context: prompt tokens ``[B, L, text_dim]``.
        generator: CPU generator for t and the noise (RGB noise first, then modality).
        timestep_shift: shift of the logit-normal t (5 in the release).
        t: optional flow times ``[B]`` instead of drawing them.
        new_frames: latent frames supervised by :data:`EXPLORE_TASK` (the last ones).
        shard: (rank, world) when the batch is this rank's rows of a global batch of
            ``B * world``: t and the noise are drawn for the global batch and sliced, so N
            ranks draw what one process would (the loss is this rank's mean).

    Returns:
        (loss, info) where loss is the sum of per-stream float32 MSEs over the supervised
        streams, and info has ``t`` and the per-stream losses as floats.

    Raises:
        ValueError: ``new_frames`` outside 1 to the clip's latent frames (for the explore task).
    """
    if task == EXPLORE_TASK and not 1 <= int(new_frames) <= rgb_x.shape[2]:
        raise ValueError(f"new_frames must be 1 to {rgb_x.shape[2]} (the clip's latent frames), got {new_frames}")
    rgb_only = task in (RGB_ONLY_TASK, EXPLORE_TASK)
    rgb_noised, mod_noised = (True, False) if rgb_only else noised_streams(resolve_task(task))
    batch = rgb_x.shape[0]
    rows, world = _shard_rows(batch, shard), shard[1]
    if t is None:
        t = sample_timesteps(batch * world, timestep_shift, generator)[rows]
    t = t.to(rgb_x.device)

    def noise(like):
        return torch.randn((like.shape[0] * world, *like.shape[1:]), generator=generator)[rows].to(like)

    noise_rgb = noise(rgb_x) if rgb_noised else None
    noise_mod = noise(modality_x) if mod_noised else None
    z_rgb = add_noise(rgb_x, noise_rgb, t) if rgb_noised else rgb_x
    z_mod = add_noise(modality_x, noise_mod, t) if mod_noised else modality_x
    timestep = (t.to(torch.float32) * TIMESTEP_SCALE)
    if rgb_only:
        v_rgb, v_mod = model(z_rgb, timestep, context, return_dict=False)
    else:
        v_rgb, v_mod = model(z_rgb, timestep, context, z_mod, modality, modality_context, return_dict=False)
    info: Dict[str, float] = {"t": float(t.mean())}
    loss = torch.zeros((), device=rgb_x.device, dtype=torch.float32)
    if rgb_noised:
        err = v_rgb.float() - (noise_rgb - rgb_x).float()
        l_rgb = torch.mean((err[:, :, -new_frames:] if task == EXPLORE_TASK else err) ** 2)
        loss = loss + l_rgb
        info["loss_rgb"] = float(l_rgb.detach())
    if mod_noised:
        l_mod = torch.mean((v_mod.float() - (noise_mod - modality_x).float()) ** 2)
        loss = loss + l_mod
        info["loss_modality"] = float(l_mod.detach())
    return loss, info
