"""Diffusers' step caches on our transformer: configs from short specs, the MagCache ratio recorder
and a counter of the block work a cache saved.

:class:`~unity_core.model.UnityVideoTransformer` is a diffusers ``CacheMixin``, so
``model.enable_cache(config)`` takes diffusers' configs directly. :func:`cache_config` builds them
from specs such as ``"first-block:0.05"`` with what our model needs filled in (its timestep
callback, its block and attention names, the calibrated MagCache ratios):

=================== ============================================================================
spec                what is reused (diffusers' hook), and which of our forwards it serves
=================== ============================================================================
``first-block:T``   all blocks after the first, when the first block's residual changed by less
                    than T (relative L1) since the last full evaluation (FirstBlockCache,
                    ParaAttention); default T = 0.05
``mag:T:K:R``       all blocks, while the error accumulated from the calibrated ratios of
                    residual magnitudes stays below T, at most K evaluations in a row, never in
                    the first R of the steps (MagCache, arXiv 2506.14451); default 0.06:3:0.2
``taylorseer:N:O``  every block's self-attention, cross-attention and FFN outputs, predicted by a
                    Taylor series of order O for N - 1 of every N evaluations after the first 3
                    (TaylorSeer, arXiv 2503.06923); default 5:1
``pab:N``           every block's self-attention output, recomputed every N-th evaluation while
                    the timestep is in (100, 800) (Pyramid Attention Broadcast, arXiv
                    2408.12588); default 2
``faster:N``        every block's self-attention output, extrapolated from the last two for
                    N - 1 of every N evaluations while the timestep is below 681 (FasterCache,
                    arXiv 2410.19355, in its guidance-free form); default 2
=================== ============================================================================

Every one of them serves the RGB-only, the joint two-stream and the Yume packed forward: the
block caches (first block, MagCache) decide on the residual of the whole token sequence, and in
the joint forward RGB and modality tokens pass every block as one sequence, so one decision
covers both streams; the attention caches (TaylorSeer, PAB, FasterCache) hook the attention and
FFN modules, which run once per block on the whole sequence (both streams' cross-attention is one
call, see :class:`~unity_core.model.transformer.UnityVideoAttnProcessor`).

What the caches need from the sampler, and get from ours (:func:`step_cache_context`,
:func:`reset_step_caches`): a cache context around every evaluation (with the timestep, which
PAB and FasterCache read through ``model.current_timestep``), the state reset before and after
every run (and between the segments of a walk, whose sequence length changes), and one
evaluation per step for MagCache (its ratios are indexed by evaluation: time travel's extra
look-ahead evaluations shift them). FasterCache runs in its guidance-free form
(``is_guidance_distilled=True``): its skipping of the unconditional half of a CFG batch assumes
``[uncond; cond]`` batches with one output, while ours are ``[cond; uncond]`` with two outputs in
the joint forward; with CFG the attention approximation applies to the whole batch.

Which cache where: these step caches for the library, the pipeline and the CLI (``--cache``); in
ComfyUI, core's ``EasyCache`` node (it wraps any model's sampling, ours included); Yume's block
cache (:class:`~unity_core.sampling.yume.BlockCache`) for a fixed set of blocks reused every other
evaluation, as Yume ships it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

#: Spec names accepted by :func:`cache_config`.
CACHE_NAMES = ("first-block", "mag", "taylorseer", "pab", "faster")
#: The file of calibrated MagCache ratios in a pipeline folder.
MAG_RATIOS_FILE = "mag_ratios.json"
#: The context name of every evaluation of our samplers (one batched forward per evaluation).
CONTEXT = "cond"
#: TaylorSeer's modules in our blocks: the outputs it predicts.
TAYLORSEER_MODULES = [r"blocks\.\d+\.(attn1|attn2|ffn)"]


def _numbers(text: str, spec: str, count: int) -> List[float]:
    parts = [p for p in text.split(":") if p != ""] if text else []
    if len(parts) > count:
        raise ValueError(f"cache spec {spec!r} takes at most {count} values after the name")
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"cache spec {spec!r}: values must be numbers, e.g. 'first-block:0.05'") from None


def load_mag_ratios(folder: Optional[Path], task: str) -> Optional[List[float]]:
    """The calibrated MagCache ratios of ``task`` from ``folder/mag_ratios.json`` (written by
    ``python -m unity_core.sampling.mag_calibration``), or None when the folder has none for the task."""
    if folder is None:
        return None
    path = Path(folder) / MAG_RATIOS_FILE
    if not path.is_file():
        return None
    table = json.loads(path.read_text())
    entry = table.get("tasks", {}).get(task)
    return None if entry is None else [float(r) for r in entry["ratios"]]


def cache_config(spec: str, model, *, steps: int = 20, mag_ratios: Optional[Sequence[float]] = None):
    """A diffusers cache config for ``model`` from a spec (see the module docstring).

    Args:
        spec: ``name[:value[:value...]]``, name one of :data:`CACHE_NAMES`.
        model: the transformer the config is for (its ``current_timestep`` feeds PAB and
            FasterCache).
        steps: sampling steps of the runs (MagCache interpolates its ratios to them).
        mag_ratios: MagCache's calibrated ratios (:func:`load_mag_ratios`); needed for ``mag``.

    Raises:
        ValueError: unknown name, bad values, or ``mag`` without ratios (calibrate first:
            ``python -m unity_core.sampling.mag_calibration --help``).
    """
    from diffusers.hooks import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        PyramidAttentionBroadcastConfig,
        TaylorSeerCacheConfig,
    )

    name, _, rest = spec.strip().partition(":")
    name = name.lower().replace("_", "-")
    timestep = lambda: model.current_timestep  # noqa: E731

    if name == "first-block":
        (threshold,) = _numbers(rest, spec, 1) or [0.05]
        return FirstBlockCacheConfig(threshold=threshold)
    if name == "mag":
        values = _numbers(rest, spec, 3)
        threshold, max_skip, retention = values + [0.06, 3, 0.2][len(values):]
        if mag_ratios is None:
            raise ValueError("the 'mag' cache needs ratios calibrated for this checkpoint and task; the embedded "
                             "default ships them, for another checkpoint run `python -m unity_core.sampling.mag_calibration "
                             "--checkpoint FOLDER` (writes FOLDER/mag_ratios.json)")
        return MagCacheConfig(threshold=threshold, max_skip_steps=int(max_skip), retention_ratio=retention,
                              num_inference_steps=int(steps), mag_ratios=torch.tensor(list(mag_ratios)))
    if name == "taylorseer":
        values = _numbers(rest, spec, 2)
        interval, order = values + [5, 1][len(values):]
        return TaylorSeerCacheConfig(cache_interval=int(interval), max_order=int(order), disable_cache_before_step=3,
                                     taylor_factors_dtype=torch.float32, cache_identifiers=list(TAYLORSEER_MODULES))
    if name == "pab":
        (skip,) = _numbers(rest, spec, 1) or [2]
        return PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=int(skip),
                                               spatial_attention_timestep_skip_range=(100, 800),
                                               current_timestep_callback=timestep)
    if name == "faster":
        (skip,) = _numbers(rest, spec, 1) or [2]
        return FasterCacheConfig(spatial_attention_block_skip_range=int(skip),
                                 spatial_attention_timestep_skip_range=(-1, 681), tensor_format="BCFHW",
                                 is_guidance_distilled=True, current_timestep_callback=timestep,
                                 attention_weight_callback=lambda _: 0.5)
    raise ValueError(f"unknown cache {name!r} in {spec!r}; use one of {', '.join(CACHE_NAMES)} "
                     "(e.g. 'first-block:0.05', 'mag', 'taylorseer:5', 'pab:2', 'faster:2')")


def cache_enabled(model) -> bool:
    """Whether a diffusers step cache is enabled on ``model``."""
    return bool(getattr(model, "is_cache_enabled", False))


def step_cache_context(model, timestep, name: str = CONTEXT):
    """The context one evaluation of ``model`` runs in: ``model.cache_context(name, timestep=...)``
    when a step cache is enabled, else nothing. ``timestep``: ``[B]`` flow time x 1000. Evaluations
    of another shape in the same step (control guidance's RGB-only forward) take another name."""
    if not cache_enabled(model):
        return contextlib.nullcontext()
    return model.cache_context(name, timestep=timestep)


def check_step_cache(model, control_cfg: float = 1.0) -> None:
    """Refuse, before any work, a run the enabled step cache cannot serve: Pyramid Attention
    Broadcast and FasterCache keep one state per attention module (not per cache context), so
    control guidance's second forward per step (RGB tokens only, half the sequence) would be
    served the joint forward's attention.

    Raises:
        ValueError: PAB or FasterCache enabled with ``control_cfg != 1``.
    """
    config = getattr(model, "_cache_config", None)
    if config is None or float(control_cfg) == 1.0:
        return
    from diffusers.hooks import FasterCacheConfig, PyramidAttentionBroadcastConfig

    if isinstance(config, (FasterCacheConfig, PyramidAttentionBroadcastConfig)):
        raise ValueError(f"{type(config).__name__} keeps one state per attention module and cannot serve control "
                         "guidance's two forwards per step; use control_cfg=1, or the first-block, mag or taylorseer "
                         "cache")


def reset_step_caches(model) -> None:
    """Forget every step cache's state (before and after a run, between a walk's segments)."""
    if cache_enabled(model):
        model._reset_stateful_cache()


@contextlib.contextmanager
def enabled_cache(model, config):
    """Enable ``config`` on ``model`` for the ``with`` body, then disable it (None: nothing).

    Raises:
        ValueError: another cache is already enabled on the model.
    """
    if config is None:
        yield model
        return
    model.enable_cache(config)
    try:
        yield model
    finally:
        model.disable_cache()


# ----------------------------------------------------------------------------------------------
# Counting the work a cache saved
# ----------------------------------------------------------------------------------------------


@dataclass
class CacheCounter:
    """Counts the block parts that really ran: each block's self-attention (``attn1.to_out``),
    cross-attention (``attn2.to_out``) and FFN (``ffn.net[2]``) output layers, which no cache
    hooks, so a part whose output a cache reused or predicted is not counted. Use as a context
    manager around the runs; :attr:`forwards` counts the root forwards.
    """

    model: object
    forwards: int = 0
    parts: Dict[str, int] = field(default_factory=lambda: {"attn1": 0, "attn2": 0, "ffn": 0})
    last_block_runs: int = 0
    _handles: list = field(default_factory=list, repr=False)

    def __enter__(self) -> "CacheCounter":
        def count(part, last=False):
            def hook(*_):
                self.parts[part] += 1
                if last:
                    self.last_block_runs += 1
            return hook

        blocks = self.model.blocks
        for i, block in enumerate(blocks):
            self._handles.append(block.attn1.to_out[0].register_forward_hook(count("attn1")))
            self._handles.append(block.attn2.to_out[0].register_forward_hook(count("attn2")))
            self._handles.append(block.ffn.net[2].register_forward_hook(count("ffn", i == len(blocks) - 1)))
        self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._forward()))
        return self

    def _forward(self) -> None:
        self.forwards += 1

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def computed_fraction(self) -> float:
        """Block parts that ran over those an uncached run would run (1.0: nothing saved)."""
        total = 3 * len(self.model.blocks) * self.forwards
        return sum(self.parts.values()) / total if total else 1.0

    @property
    def skipped_evaluations(self) -> int:
        """Forwards whose last block did not run (the block caches' skipped evaluations)."""
        return self.forwards - self.last_block_runs

    def summary(self) -> Dict[str, float]:
        return {"forwards": self.forwards, "skipped_evaluations": self.skipped_evaluations,
                "computed_fraction": round(self.computed_fraction, 4), **{f"{k}_runs": v for k, v in self.parts.items()}}


# ----------------------------------------------------------------------------------------------
# MagCache calibration
# ----------------------------------------------------------------------------------------------


class MagRatioRecorder:
    """Records MagCache's magnitude ratios during an uncached run, as diffusers' calibration mode
    computes them: per evaluation, the residual r = (last block's output) - (first block's input)
    over all tokens (both streams in the joint forward) and the ratio
    ``mean_tokens(||r_t|| / (||r_{t-1}|| + 1e-8))``, 1.0 for the first evaluation. A block runner
    (the ``cache=`` argument of :func:`~unity_core.sampling.sample`), so it runs nothing itself.
    """

    def __init__(self, num_blocks: int):
        self.num_blocks = int(num_blocks)
        self.ratios: List[float] = []
        self._previous: Optional[torch.Tensor] = None
        self._head: Optional[torch.Tensor] = None

    def start_evaluation(self) -> None:
        pass

    def reset(self) -> None:
        self.ratios, self._previous, self._head = [], None, None

    def clear(self) -> None:
        self._previous, self._head = None, None

    def __call__(self, index: int, fn, x: torch.Tensor) -> torch.Tensor:
        if index == 0:
            self._head = x
        out = fn(x)
        if index == self.num_blocks - 1:
            residual = (out - self._head).float()
            if self._previous is None:
                self.ratios.append(1.0)
            else:
                norm = torch.linalg.norm(residual, dim=-1)
                previous = torch.linalg.norm(self._previous, dim=-1)
                self.ratios.append((norm / (previous + 1e-8)).mean().item())
            self._previous = residual
        return out
