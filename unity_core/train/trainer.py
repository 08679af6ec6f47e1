"""The UnityVideo trainer: dynamic task routing on precomputed latents.

Each step draws a task (joint generation / estimation / controllable generation) and a
modality with the release's probabilities, noises the task's stream(s) with logit-normal t
(shift 5) and regresses the flow-matching velocity (:func:`unity_core.train.objective.flow_matching_loss`).
AdamW with a 10x learning rate for UnityVideo's added parameters (as the release), gradient
clipping (1.5), EMA of the weights, 10 % content-prompt dropout for CFG. Checkpoints are one
safetensors file holding model, EMA, optimizer state, step and RNG state; resuming gives the
same parameters as an uninterrupted run.

Any preset trains the same way, the 5B included (load it with
:func:`unity_core.model.load_transformer` and build the latents with its codec).

Several processes (``torchrun`` or ``accelerate launch``) share ONE global data sampler: every
rank draws the same task, modality, batch indices, prompt dropout, t and noise for the global
batch of ``batch_size`` and keeps its own ``batch_size / world`` rows, so N processes take the
steps one process would. Two engines:

- ``fsdp=True``: PyTorch FSDP2 (``fully_shard`` per DiT block, then the root): parameters,
  gradients, optimizer states and the EMA are sharded (DTensors), optional bf16 mixed
  precision (``TrainConfig.mixed_precision``); checkpoints are sharded folders written with
  ``torch.distributed.checkpoint``'s safetensors storage (no pickle). Runs on CPU process
  groups (gloo) as on GPUs (nccl).
- ``use_accelerate=True``: Hugging Face Accelerate prepares the model as its launch config
  says (DDP, or FSDP2 with the example configs in ``configs/accelerate/``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch

from unity_core.constants import TRAIN_MODALITY_WEIGHTS, TRAIN_TASK_WEIGHTS
from unity_core.model.keys import ADDITION_PREFIXES
from unity_core.train.objective import EXPLORE_TASK, drop_prompts, flow_matching_loss, sample_modality, sample_task

OPTIMIZERS = ("adamw", "adamw8bit")


@dataclass
class TrainConfig:
    """Trainer settings (release defaults where the release has one)."""

    batch_size: int = 8
    lr: float = 2e-4
    added_lr_multiplier: float = 10.0
    weight_decay: float = 0.0
    grad_clip: float = 1.5
    ema_decay: float = 0.999
    timestep_shift: float = 5.0
    prompt_dropout: float = 0.1
    warmup_steps: int = 100
    task_weights: Dict[str, float] = field(default_factory=lambda: dict(TRAIN_TASK_WEIGHTS))
    modality_weights: Dict[str, float] = field(default_factory=lambda: dict(TRAIN_MODALITY_WEIGHTS))
    seed: int = 0
    #: None (fp32) or "bf16": FSDP2 computes in bf16 and reduces gradients in fp32
    mixed_precision: Optional[str] = None
    #: recompute each block's activations in the backward pass (diffusers' gradient checkpointing)
    gradient_checkpointing: bool = False
    #: "adamw" (torch) or "adamw8bit" (bitsandbytes, CUDA only)
    optimizer: str = "adamw"


@dataclass
class LatentData:
    """Precomputed training data.

    Attributes:
        rgb: ``[N, C, f, h, w]`` RGB latents.
        modalities: modality name -> ``[N, C, f, h, w]`` latents of its visualisation.
        prompts: ``[N, L, D]`` content prompt embeddings.
        modality_prompts: modality name -> ``[1, L, D]`` embedding of its fixed prompt.
        empty_prompt: ``[1, L, D]`` embedding of "" (for prompt dropout / CFG).
        walk_rgb, walk_prompts: optional ``[M, C, f, h, w]`` RGB latents and ``[M, L, D]``
            prompts of walk clips for the ``explore_segment`` task
            (:func:`unity_core.train.pool.render_walks`).
    """

    rgb: torch.Tensor
    modalities: Dict[str, torch.Tensor]
    prompts: torch.Tensor
    modality_prompts: Dict[str, torch.Tensor]
    empty_prompt: torch.Tensor
    walk_rgb: Optional[torch.Tensor] = None
    walk_prompts: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return self.rgb.shape[0]

    def save(self, path: Union[str, Path]) -> Path:
        """Write every tensor to one safetensors file (keys ``rgb``, ``modality.<m>``, ``prompts``,
        ``modality_prompt.<m>``, ``empty_prompt``, and ``walk.rgb`` / ``walk.prompts`` when set)."""
        from safetensors.torch import save_file

        tensors = {"rgb": self.rgb, "prompts": self.prompts, "empty_prompt": self.empty_prompt}
        if self.walk_rgb is not None:
            tensors.update({"walk.rgb": self.walk_rgb, "walk.prompts": self.walk_prompts})
        tensors.update({f"modality.{m}": v for m, v in self.modalities.items()})
        tensors.update({f"modality_prompt.{m}": v for m, v in self.modality_prompts.items()})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        return path

    @classmethod
    def load(cls, path: Union[str, Path], stream: bool = False) -> "LatentData":
        """Read a file written by :meth:`save`.

        Args:
            stream: keep the clip tensors (``rgb``, ``modality.*``, ``prompts``, ``walk.*``) in
                the file and read only the rows each batch indexes (memory-mapped), instead of
                holding them all in RAM; the small prompt tensors are read at once.
        """
        from safetensors import safe_open
        from safetensors.torch import load_file

        if stream:
            handle = safe_open(str(path), framework="pt", device="cpu")
            keys = list(handle.keys())
            small = ("empty_prompt",) + tuple(k for k in keys if k.startswith("modality_prompt."))
            t = {k: (handle.get_tensor(k) if k in small else StreamedRows(handle, k)) for k in keys}
        else:
            t = load_file(str(path))
        pick = lambda prefix: {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}  # noqa: E731
        return cls(rgb=t["rgb"], modalities=pick("modality."), prompts=t["prompts"],
                   modality_prompts=pick("modality_prompt."), empty_prompt=t["empty_prompt"],
                   walk_rgb=t.get("walk.rgb"), walk_prompts=t.get("walk.prompts"))


class StreamedRows:
    """Rows of one tensor of a safetensors file, read on indexing (``rows[idx]`` with an int
    tensor ``[K]`` -> ``[K, ...]``); ``shape`` and ``len`` as the tensor's."""

    def __init__(self, handle, key: str):
        self._slice = handle.get_slice(key)
        self.shape = torch.Size(self._slice.get_shape())

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            return self._slice[index]
        rows = torch.as_tensor(index).reshape(-1).tolist()
        return torch.cat([self._slice[i:i + 1] for i in rows]) if rows else self._slice[0:0]


def shard_model(model, mesh=None, mixed_precision: Optional[str] = None):
    """FSDP2 over the default process group: ``fully_shard`` each DiT block, then the root (the
    embeddings, heads and bare parameters), so parameters, gradients and optimizer states are
    DTensors sharded over the ranks. ``mixed_precision="bf16"``: bf16 compute, fp32 gradient
    reduction and fp32 sharded master weights.

    Raises:
        RuntimeError: no initialised process group.
        ValueError: an unknown ``mixed_precision``.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("FSDP needs torch.distributed initialised: launch with torchrun (or accelerate launch)")
    if mixed_precision not in (None, "fp32", "bf16"):
        raise ValueError(f"mixed_precision must be None, 'fp32' or 'bf16', got {mixed_precision!r}")
    if mesh is None:
        device = next(model.parameters()).device
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy()
    if mixed_precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def _full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (a collective on every rank); a plain tensor as it is."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class Trainer:
    """Train a :class:`~unity_core.model.UnityVideoTransformer` on :class:`LatentData`.

    Args:
        model: the transformer (moved to ``device``).
        data: precomputed latents (:meth:`LatentData.load`, optionally streamed).
        config: :class:`TrainConfig`; ``batch_size`` is the GLOBAL batch over all processes.
        device: where this process trains (ignored with ``use_accelerate``).
        use_accelerate: let Accelerate prepare the model (from ``accelerate launch``).
        fsdp: shard with FSDP2 (:func:`shard_model`) over the initialised process group.

    Raises:
        ValueError: a global batch not divisible by the number of processes, no trainable
            modality, the explore task without walk clips, an unknown optimizer.
    """

    def __init__(self, model, data: LatentData, config: TrainConfig = TrainConfig(), device="cpu",
                 use_accelerate: bool = False, fsdp: bool = False):
        self.accelerator = None
        self.rank, self.world = 0, 1
        if use_accelerate:  # device and process come from `accelerate launch`
            from unity_core.extras import require

            Accelerator = require("accelerate", "train", "Trainer(use_accelerate=True)").Accelerator
            self.accelerator = Accelerator()
            device = self.accelerator.device
            self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        elif fsdp:
            import torch.distributed as dist

            if not dist.is_available() or not dist.is_initialized():
                raise RuntimeError("fsdp=True needs torch.distributed initialised: launch with torchrun")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if config.batch_size % self.world:
            raise ValueError(f"the global batch_size {config.batch_size} must be divisible by the {self.world} processes")
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {config.optimizer!r}; use one of {OPTIMIZERS}")
        self.model, self.data, self.config = model.to(device).train(), data, config
        self.device = torch.device(device)
        if config.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        if fsdp:
            shard_model(model, mixed_precision=config.mixed_precision)
        self.sharded = fsdp
        added = [p for n, p in model.named_parameters() if n.startswith(ADDITION_PREFIXES)]
        base = [p for n, p in model.named_parameters() if not n.startswith(ADDITION_PREFIXES)]
        groups = [{"params": base, "lr": config.lr}, {"params": added, "lr": config.lr * config.added_lr_multiplier}]
        self.optimizer = self._make_optimizer(groups)
        # one global sampler: every process draws the same global batch and keeps its rows
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        if self.accelerator is not None:
            self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
            # accelerate's FSDP2 (configs/accelerate/fsdp2.yaml) shards too: checkpoints go sharded then
            self.sharded = any(hasattr(p, "full_tensor") for p in self.model.parameters())
        self.ema = {n: p.detach().clone() for n, p in self._unwrapped().named_parameters()}
        self.available = [m for m in config.modality_weights if m in data.modalities]
        if not self.available:
            raise ValueError(f"no training modality among {list(data.modalities)}")
        if config.task_weights.get(EXPLORE_TASK, 0) > 0 and data.walk_rgb is None:
            raise ValueError(f"the {EXPLORE_TASK} task needs walk clips (LatentData.walk_rgb): render them with "
                             "unity_core.train.pool.render_walks (scripts/train_default.py --walks N)")

    def _make_optimizer(self, groups):
        cfg = self.config
        if cfg.optimizer == "adamw8bit":
            if self.device.type != "cuda":
                raise ValueError("the 8-bit optimizer (bitsandbytes) runs on CUDA only; use optimizer='adamw'")
            from unity_core.extras import require

            bnb = require("bitsandbytes", "gpu", "optimizer='adamw8bit'")
            return bnb.optim.AdamW8bit(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _lr_scale(self) -> float:
        return min(1.0, (self.step + 1) / max(1, self.config.warmup_steps))

    def train_step(self) -> Dict[str, float]:
        """One optimisation step; returns the loss (the global batch's mean) and what was drawn."""
        cfg, g, d = self.config, self.generator, self.data
        shard = (self.rank, self.world)
        local = cfg.batch_size // self.world
        rows = slice(self.rank * local, (self.rank + 1) * local)
        task = sample_task(g, cfg.task_weights)
        modality = sample_modality(g, cfg.modality_weights, self.available)
        idx = torch.randint(len(d), (cfg.batch_size,), generator=g)[rows]
        dev = self.device
        rgb, mod, prompts = d.rgb[idx].to(dev), d.modalities[modality][idx].to(dev), d.prompts[idx]
        if task == EXPLORE_TASK:  # a walk clip instead; the modality stream is not used
            walk = torch.randint(d.walk_rgb.shape[0], (cfg.batch_size,), generator=g)[rows]
            rgb, prompts = d.walk_rgb[walk].to(dev), d.walk_prompts[walk]
        ctx = drop_prompts(prompts, d.empty_prompt, cfg.prompt_dropout, g, shard=shard).to(dev)
        mctx = d.modality_prompts[modality].expand(local, -1, -1).to(dev)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = cfg.lr * (cfg.added_lr_multiplier if i == 1 else 1.0) * self._lr_scale()
        loss, info = flow_matching_loss(self.model, rgb, mod, task, modality, ctx, mctx, generator=g,
                                        timestep_shift=cfg.timestep_shift, shard=shard)
        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        info.update(loss=self._global_mean(loss.detach()), grad_norm=float(_full(grad_norm)), task=task,
                    modality=modality)
        return info

    def _global_mean(self, value: torch.Tensor) -> float:
        if self.world == 1:
            return float(value)
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        return float(value) / self.world

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for n, p in self._unwrapped().named_parameters():
            self.ema[n].lerp_(p.detach(), 1 - decay)

    def _unwrapped(self):
        return self.accelerator.unwrap_model(self.model) if self.accelerator is not None else self.model

    def train(self, steps: int, log: Optional[Callable[[str], None]] = print, log_every: int = 50,
              time_limit_s: Optional[float] = None) -> List[Dict[str, float]]:
        """Run ``steps`` steps (or until ``time_limit_s``); returns the per-step infos."""
        history, start = [], time.time()
        for _ in range(steps):
            info = self.train_step()
            history.append(info)
            if log and self.rank == 0 and (self.step % log_every == 0 or self.step == 1):
                recent = history[-log_every:]
                mean = sum(h["loss"] for h in recent) / len(recent)
                log(f"step {self.step}  loss {mean:.4f}  {time.time() - start:.0f}s")
            if time_limit_s and time.time() - start > time_limit_s:
                break
        return history

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, path: Union[str, Path]) -> Path:
        """Write model, EMA, optimizer state, step and RNG state: one safetensors file, or with
        FSDP a sharded folder (``torch.distributed.checkpoint`` with its safetensors storage: every
        rank writes its shards to ``shards/``; step and RNG in ``trainer_state.safetensors``).
        Either holds safetensors files only: resuming executes no code from the checkpoint."""
        if self.sharded:
            return self._save_sharded(Path(path))
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().contiguous() for k, v in self._unwrapped().state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in self.ema.items()})
        names = [n for n, _ in self._unwrapped().named_parameters()]
        opt_state = self.optimizer.state_dict()
        for i, st in opt_state["state"].items():
            for key, value in st.items():
                tensors[f"optim.{names[i]}.{key}"] = torch.as_tensor(value).contiguous()
        tensors["rng"] = self.generator.get_state()
        save_file(tensors, str(path), metadata=self._metadata())
        return path

    def _metadata(self) -> Dict[str, str]:
        return {"step": str(self.step), "config": json.dumps(asdict(self.config)),
                "model_config": self._unwrapped().unity_config.to_json()}

    def _sharded_state(self):
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(self.model, self.optimizer)
        return {"model": model_state, "optim": optim_state, "ema": self.ema}

    @staticmethod
    def _tensors_only(state):
        """The tensors of :meth:`_sharded_state`: the optimizer's ``param_groups`` (lr, betas, ...;
        plain Python values, rebuilt from the config) stay out, so every entry is a safetensors
        tensor and nothing in the folder needs unpickling."""
        return {"model": state["model"], "optim": {"state": state["optim"]["state"]}, "ema": state["ema"]}

    def _save_sharded(self, folder: Path) -> Path:
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp
        from safetensors.torch import save_file
        from torch.distributed.checkpoint import HuggingFaceStorageWriter

        if self.rank == 0:
            (folder / "shards").mkdir(parents=True, exist_ok=True)
        dist.barrier()
        # DCP's safetensors storage: each rank writes its shards, their offsets in the file's JSON
        # header (the default storage keeps its index in a pickle, which loading would unpickle)
        dcp.save(self._tensors_only(self._sharded_state()),
                 storage_writer=HuggingFaceStorageWriter(str(folder / "shards"), save_distributed=True))
        if self.rank == 0:  # the sampler's state is the same on every rank
            save_file({"rng": self.generator.get_state()}, str(folder / "trainer_state.safetensors"),
                      metadata=self._metadata())
        dist.barrier()
        return folder

    def resume(self, path: Union[str, Path]) -> None:
        """Restore a :meth:`save` checkpoint (same model config and data; a sharded folder for
        FSDP, which may come from another number of ranks)."""
        from safetensors import safe_open

        if self.sharded:
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint import HuggingFaceStorageReader
            from torch.distributed.checkpoint.state_dict import set_state_dict

            shards = Path(path) / "shards"
            if not shards.is_dir():
                raise FileNotFoundError(f"{path} holds no sharded trainer checkpoint ({shards} is missing); "
                                        "resume from a folder Trainer.save wrote with fsdp=True")
            state = self._sharded_state()
            # A parameter that never had a gradient (a modality not drawn yet) has no optimizer state in
            # the file, while the fresh state dict holds an initialised one: load the rest, then drop those
            # states so AdamW starts them afresh, as the uninterrupted run will.
            reader = HuggingFaceStorageReader(str(shards))  # safetensors headers (JSON), no pickle
            dcp.load(self._tensors_only(state), storage_reader=reader,
                     planner=dcp.DefaultLoadPlanner(allow_partial_load=True))
            set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                           optim_state_dict=state["optim"])
            saved = HuggingFaceStorageReader(str(shards)).read_metadata().state_dict_metadata
            for name, param in self.model.named_parameters():
                if f"optim.state.{name}.step" not in saved:
                    self.optimizer.state.pop(param, None)
            with safe_open(str(Path(path) / "trainer_state.safetensors"), framework="pt") as fh:
                self.generator.set_state(fh.get_tensor("rng"))
                self.step = int(fh.metadata()["step"])
            return
        with safe_open(str(path), framework="pt") as fh:
            keys = list(fh.keys())
            meta = fh.metadata()
            model = self._unwrapped()
            model.load_state_dict({k[6:]: fh.get_tensor(k) for k in keys if k.startswith("model.")})
            self.ema = {k[4:]: fh.get_tensor(k).to(self.device) for k in keys if k.startswith("ema.")}
            names = [n for n, _ in model.named_parameters()]
            state = self.optimizer.state_dict()
            state["state"] = {}
            for i, n in enumerate(names):
                entries = {k.split(".")[-1]: fh.get_tensor(k) for k in keys if k.startswith(f"optim.{n}.") and k.count(".") == n.count(".") + 2}
                if entries:
                    state["state"][i] = entries
            self.optimizer.load_state_dict(state)
            self.generator.set_state(fh.get_tensor("rng"))
            self.step = int(meta["step"])

    def ema_model(self):
        """A copy of the model with the EMA weights (what the default ships). With FSDP the EMA
        shards are gathered (call it on every rank) into a plain, unsharded model."""
        import copy

        if self.sharded:
            from unity_core.model import UnityVideoTransformer

            model = UnityVideoTransformer.from_config(self._unwrapped().unity_config).eval()
            model.load_state_dict({n: _full(e).cpu() for n, e in self.ema.items()})
            return model
        model = copy.deepcopy(self._unwrapped()).eval()
        model.load_state_dict(self.ema)
        return model


def _encode_videos(codec, v: torch.Tensor, batch: int) -> torch.Tensor:
    from unity_core.codec import frames_to_video

    out = []
    for s in range(0, v.shape[0], batch):
        chunk = v[s:s + batch]
        chunk = chunk.float() / 255.0 if chunk.dtype == torch.uint8 else chunk.float()
        out.append(codec.encode(frames_to_video(chunk)))
    return torch.cat(out)


def _encode_prompts(text_encoder, prompts: Sequence[str]) -> torch.Tensor:
    return torch.cat([text_encoder.encode(list(prompts[s:s + 32])) for s in range(0, len(prompts), 32)])


@torch.no_grad()
def build_latent_data(codec, text_encoder, videos: Mapping[str, torch.Tensor], prompts: Sequence[str],
                      batch: int = 8, log: Optional[Callable[[str], None]] = print) -> LatentData:
    """Encode clips (``videos["rgb" | modality]``: ``[N, F, H, W, 3]`` uint8 or float in [0, 1])
    and prompts into :class:`LatentData` with ``codec`` and ``text_encoder``."""
    from unity_core.constants import MODALITY_PROMPTS

    latents = {}
    for name, v in videos.items():
        start = time.time()
        latents[name] = _encode_videos(codec, v, batch)
        if log:
            log(f"encoded {name}: {tuple(latents[name].shape)} in {time.time() - start:.0f}s")
    return LatentData(
        rgb=latents.pop("rgb"), modalities=latents, prompts=_encode_prompts(text_encoder, prompts),
        modality_prompts={m: text_encoder.encode([p]) for m, p in MODALITY_PROMPTS.items()},
        empty_prompt=text_encoder.encode([""]),
    )


@torch.no_grad()
def add_walks(data: LatentData, codec, text_encoder, rgb: torch.Tensor, prompts: Sequence[str], batch: int = 8) -> LatentData:
    """Encode walk clips (``rgb`` ``[M, F, H, W, 3]`` uint8 or float in [0, 1], with their
    prompts; :func:`unity_core.train.pool.render_walks`) into ``data.walk_rgb`` /
    ``data.walk_prompts`` for the ``explore_segment`` task; returns ``data``.

    Raises:
        ValueError: the walk clips' latent shape differs from the other clips'.
    """
    walk_rgb = _encode_videos(codec, rgb, batch)
    if walk_rgb.shape[1:] != data.rgb.shape[1:]:
        raise ValueError(f"walk latents {tuple(walk_rgb.shape[1:])} differ from the clips' {tuple(data.rgb.shape[1:])}: "
                         "render the walks with the pool's frame count and size")
    data.walk_rgb, data.walk_prompts = walk_rgb, _encode_prompts(text_encoder, prompts)
    return data
