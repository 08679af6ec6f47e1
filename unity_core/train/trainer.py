"""The UnityVideo trainer: dynamic task routing on precomputed latents.

Each step draws a task (joint generation / estimation / controllable generation) and a
modality with the release's probabilities, noises the task's stream(s) with logit-normal t
(shift 5) and regresses the flow-matching velocity (:func:`unity_core.sampling.flow_matching_loss`).
AdamW with a 10x learning rate for UnityVideo's added parameters (as the release), gradient
clipping (1.5), EMA of the weights, 10 % content-prompt dropout for CFG. Checkpoints are one
safetensors file holding model, EMA, optimizer state, step and RNG state; resuming gives the
same parameters as an uninterrupted run.

Any preset trains the same way, the 5B included (load it with
:func:`unity_core.model.load_transformer` and build the latents with its codec). Several GPUs:
launch with ``accelerate launch`` and pass ``use_accelerate=True`` (Hugging Face Accelerate
wraps the model in DDP and averages gradients); on one device it is plain PyTorch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch

from unity_core.constants import TRAIN_MODALITY_WEIGHTS, TRAIN_TASK_WEIGHTS
from unity_core.sampling import drop_prompts, flow_matching_loss, sample_modality, sample_task
from unity_core.sampling.objective import EXPLORE_TASK

_ADDED = ("flow_patch_embedding.", "flow_in.", "modality_embeddings.", "flow_head.", "switcher_")


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
    def load(cls, path: Union[str, Path]) -> "LatentData":
        """Read a file written by :meth:`save`."""
        from safetensors.torch import load_file

        t = load_file(str(path))
        pick = lambda prefix: {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}  # noqa: E731
        return cls(rgb=t["rgb"], modalities=pick("modality."), prompts=t["prompts"],
                   modality_prompts=pick("modality_prompt."), empty_prompt=t["empty_prompt"],
                   walk_rgb=t.get("walk.rgb"), walk_prompts=t.get("walk.prompts"))


class Trainer:
    """Train a :class:`~unity_core.model.UnityVideoTransformer` on :class:`LatentData`."""

    def __init__(self, model, data: LatentData, config: TrainConfig = TrainConfig(), device="cpu", use_accelerate: bool = False):
        self.accelerator = None
        if use_accelerate:  # device and process come from `accelerate launch`
            from accelerate import Accelerator

            self.accelerator = Accelerator()
            device = self.accelerator.device
        self.model, self.data, self.config = model.to(device).train(), data, config
        self.device = torch.device(device)
        added = [p for n, p in model.named_parameters() if n.startswith(_ADDED)]
        base = [p for n, p in model.named_parameters() if not n.startswith(_ADDED)]
        self.optimizer = torch.optim.AdamW(
            [{"params": base, "lr": config.lr}, {"params": added, "lr": config.lr * config.added_lr_multiplier}],
            lr=config.lr, weight_decay=config.weight_decay)
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        self.generator = torch.Generator().manual_seed(config.seed + rank)  # each process draws its own batches
        self.step = 0
        if self.accelerator is not None:
            self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.ema = {n: p.detach().clone() for n, p in self._unwrapped().named_parameters()}
        self.available = [m for m in config.modality_weights if m in data.modalities]
        if not self.available:
            raise ValueError(f"no training modality among {list(data.modalities)}")
        if config.task_weights.get(EXPLORE_TASK, 0) > 0 and data.walk_rgb is None:
            raise ValueError(f"the {EXPLORE_TASK} task needs walk clips (LatentData.walk_rgb): render them with "
                             "unity_core.train.pool.render_walks (scripts/train_default.py --walks N)")

    def _lr_scale(self) -> float:
        return min(1.0, (self.step + 1) / max(1, self.config.warmup_steps))

    def train_step(self) -> Dict[str, float]:
        """One optimisation step; returns the loss and what was drawn."""
        cfg, g, d = self.config, self.generator, self.data
        task = sample_task(g, cfg.task_weights)
        modality = sample_modality(g, cfg.modality_weights, self.available)
        idx = torch.randint(len(d), (cfg.batch_size,), generator=g)
        dev = self.device
        rgb, mod, prompts = d.rgb[idx].to(dev), d.modalities[modality][idx].to(dev), d.prompts[idx]
        if task == EXPLORE_TASK:  # a walk clip instead; the modality stream is not used
            walk = torch.randint(d.walk_rgb.shape[0], (cfg.batch_size,), generator=g)
            rgb, prompts = d.walk_rgb[walk].to(dev), d.walk_prompts[walk]
        ctx = drop_prompts(prompts, d.empty_prompt, cfg.prompt_dropout, g).to(dev)
        mctx = d.modality_prompts[modality].expand(cfg.batch_size, -1, -1).to(dev)
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = cfg.lr * (cfg.added_lr_multiplier if i == 1 else 1.0) * self._lr_scale()
        loss, info = flow_matching_loss(self.model, rgb, mod, task, modality, ctx, mctx, generator=g,
                                        timestep_shift=cfg.timestep_shift)
        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        else:
            loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        info.update(loss=float(loss.detach()), grad_norm=float(grad_norm), task=task, modality=modality)
        return info

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
            if log and (self.step % log_every == 0 or self.step == 1):
                recent = history[-log_every:]
                mean = sum(h["loss"] for h in recent) / len(recent)
                log(f"step {self.step}  loss {mean:.4f}  {time.time() - start:.0f}s")
            if time_limit_s and time.time() - start > time_limit_s:
                break
        return history

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, path: Union[str, Path]) -> Path:
        """Write model, EMA, optimizer state, step and RNG state to one safetensors file."""
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
        meta = {"step": str(self.step), "config": json.dumps(asdict(self.config)),
                "model_config": self._unwrapped().config.to_json()}
        save_file(tensors, str(path), metadata=meta)
        return path

    def resume(self, path: Union[str, Path]) -> None:
        """Restore a :meth:`save` checkpoint (same model config and data)."""
        from safetensors import safe_open

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
        """A copy of the model with the EMA weights (what the default ships)."""
        import copy

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
