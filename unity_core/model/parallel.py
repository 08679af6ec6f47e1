"""Context-parallel inference for :class:`~unity_core.model.UnityVideoTransformer` on diffusers' engine.

The joint token sequence (RGB and modality side by side, ``f*h*2w`` tokens) is split across the
ranks of a context-parallel group along the sequence, as diffusers' ``WanTransformer3DModel``
does: the model declares a ``_cp_plan`` (:func:`context_parallel_plan`) and diffusers' hooks
split the inputs of the first block and gather the output of the last, while the attention
dispatcher runs Ulysses (all-to-all over heads) or ring attention inside every self-attention.
What travels with the tokens, so that every block sees its shard:

- the RoPE table ``[N, head_dim / 2]``, computed once per forward by the ``rope`` module and
  split at its output, so every block gets its shard;
- the per-token stream index ``[N]`` (True for modality tokens), likewise from the
  ``stream_index`` module: dual-branch cross-attention picks each token's prompt from it
  instead of reshaping the full token grid.

The shared timestep modulation ``[B, 6, D]`` is not split; per-token modulation (Yume's history
at t = 0, the modality switcher) is refused with context parallelism.

Cross-attention keys (the text) are never split. Ulysses needs the heads and the tokens
divisible by the number of ranks: :func:`check_divisible` says so before any work.

Entry points: :func:`enable_context_parallel` (``torchrun`` on GPUs goes through diffusers'
``enable_parallelism``; on a CPU process group (gloo), where that divides by the accelerator
count and fails on diffusers 0.42, the same config is set up on a CPU device mesh and the plan
applied with ``apply_context_parallel``).
"""

from __future__ import annotations

from typing import Dict, Optional


def context_parallel_plan(num_layers: int) -> Dict[str, object]:
    """The ``_cp_plan`` of a model with ``num_layers`` blocks (diffusers' plan format)."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    return {
        "rope": {0: ContextParallelInput(split_dim=0, expected_dims=2, split_output=True)},
        "stream_index": {0: ContextParallelInput(split_dim=0, expected_dims=1, split_output=True)},
        "blocks.0": {"hidden_states": ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)},
        f"blocks.{num_layers - 1}": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }


def check_divisible(num_heads: int, tokens: Optional[int], ranks: int) -> None:
    """Ulysses splits heads and tokens over ``ranks`` (``tokens=None``: heads only).

    Raises:
        ValueError: heads or tokens not divisible, with what to change.
    """
    if num_heads % ranks:
        raise ValueError(f"context parallelism over {ranks} ranks needs the {num_heads} attention heads divisible by "
                         f"{ranks}; use a number of ranks that divides {num_heads}")
    if tokens is not None and tokens % ranks:
        raise ValueError(f"context parallelism over {ranks} ranks needs the token count ({tokens}) "
                         f"divisible by {ranks}; change the frame count or size, or the number of ranks")


def enable_context_parallel(model, ulysses_degree: Optional[int] = None, ring_degree: int = 1, mesh=None):
    """Split ``model``'s token sequence over the default process group (already initialised,
    e.g. by ``torchrun``).

    Args:
        model: a :class:`~unity_core.model.UnityVideoTransformer`.
        ulysses_degree: ranks for Ulysses attention (default: the world size / ``ring_degree``).
        ring_degree: ranks for ring attention (needs a backend that supports it: flash or cuDNN
            on CUDA; not on a CPU).
        mesh: an existing ``("ring", "ulysses")`` device mesh to use.

    Returns:
        The ``ContextParallelConfig`` in use.

    Raises:
        ImportError: diffusers older than 0.38 (its ``ContextParallelConfig`` takes no mesh).
        RuntimeError: no initialised process group.
        ValueError: heads not divisible by the Ulysses degree, or ring attention on a CPU.
    """
    import torch.distributed as dist

    from unity_core.extras import require_version

    require_version("diffusers", "0.38", "context parallelism (ContextParallelConfig with a device mesh)")
    from diffusers import ContextParallelConfig
    from diffusers.models._modeling_parallel import ParallelConfig

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("context parallelism needs torch.distributed initialised (run under torchrun)")
    world = dist.get_world_size()
    ulysses_degree = ulysses_degree or world // ring_degree
    check_divisible(model.config.num_heads, None, ulysses_degree)
    cp = ContextParallelConfig(ulysses_degree=ulysses_degree, ring_degree=ring_degree, mesh=mesh)
    device = next(model.parameters()).device
    if device.type == "cuda":
        model.enable_parallelism(config=cp)
    else:  # diffusers' enable_parallelism assumes an accelerator; the same steps on a CPU mesh (gloo)
        if ring_degree > 1:
            raise ValueError("ring attention needs a CUDA backend (flash / cuDNN); on a CPU use Ulysses only")
        from diffusers.hooks.context_parallel import apply_context_parallel
        from torch.distributed.device_mesh import init_device_mesh

        mesh = mesh or init_device_mesh("cpu", cp.mesh_shape, mesh_dim_names=cp.mesh_dim_names)
        config = ParallelConfig(context_parallel_config=cp)
        config.setup(dist.get_rank(), world, device, mesh=mesh)
        model._parallel_config = config
        for module in model.modules():
            processor = getattr(module, "processor", None)
            if processor is not None and hasattr(processor, "_parallel_config"):
                processor._parallel_config = config
        apply_context_parallel(model, cp, model._cp_plan)
    model._cp_ranks = ulysses_degree * ring_degree
    return cp
