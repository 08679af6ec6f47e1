"""Model configurations: the one preset table of the suite.

``wan2.2-ti2v-5b`` is the public UnityVideo release (KlingTeam/UnityVideo, built on
Wan2.2-TI2V-5B). ``unityvideo-small`` is the default model this project trains and ships
(sized from the CPU calibration: about 9 M parameters). Any other size is a plain config.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple, Union

from unity_core.constants import MODALITIES


@dataclass
class UnityVideoConfig:
    """Hyper-parameters of :class:`~unity_core.model.UnityVideoTransformer`.

    Attributes:
        dim: model width D (3072 for the 5B).
        num_layers: number of DiT blocks.
        num_heads: attention heads; head dim ``dim // num_heads`` must be even.
        ffn_dim: hidden width of the feed-forward network.
        in_channels: latent channels C of both streams (48 for the Wan2.2 VAE).
        out_channels: velocity channels (equal to ``in_channels`` for flow matching).
        text_dim: width of the text encoder's token embeddings (4096 UMT5-XXL, 384 MiniLM).
        freq_dim: width of the sinusoidal timestep embedding.
        patch_size: (pt, ph, pw) patch of the Conv3d patch embeddings.
        eps: epsilon of every LayerNorm / RMSNorm.
        rope_theta: RoPE base.
        modalities: modality names that get a learned embedding (the release's five).
        modality_switcher: the paper's modality-adaptive switcher (modality-specific AdaLN
            parameters from MLP(L_m + t_emb)) for newly trained models. The release does not use
            it (False), and neither does its key layout.
        modality_stream: True (UnityVideo) builds the release's additions for the modality stream
            (``flow_patch_embedding``, ``flow_in``, ``modality_embeddings``, ``flow_head``);
            False leaves a plain Wan2.2 DiT (the base of Yume-5B), which runs the RGB stream only.
        history_embeddings: True builds Yume-5B's five patch embeddings for compressed history
            (``patch_embedding_2x`` / ``_4x`` / ``_8x`` / ``_16x`` with kernels (1, 2k, 2k) for
            k = 2, 4, 8, 16 over the latent, and ``patch_embedding_2x_f``, a latent-to-latent
            (1, 4, 4) kernel feeding the 16x one for the coarsest tier), as in stdstu12/YUME.
    """

    dim: int = 3072
    num_layers: int = 30
    num_heads: int = 24
    ffn_dim: int = 14336
    in_channels: int = 48
    out_channels: int = 48
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: Tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    rope_theta: float = 10000.0
    modalities: Tuple[str, ...] = field(default_factory=lambda: tuple(MODALITIES))
    modality_switcher: bool = False
    modality_stream: bool = True
    history_embeddings: bool = False

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)  # type: ignore[assignment]
        self.modalities = tuple(self.modalities)
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head dim {self.head_dim} must be even for RoPE; change dim or num_heads")
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size must have 3 entries (pt, ph, pw), got {self.patch_size}")
        if self.modality_switcher and not self.modality_stream:
            raise ValueError("modality_switcher needs the modality stream; set modality_stream=True")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_dims(self) -> Tuple[int, int, int]:
        """Real RoPE dims per axis (frame, height, width), summing to ``head_dim``.

        Height and width get ``2 * (head_dim // 6)`` each and frames the rest. For head dims
        where the release's DiffSynth split works (e.g. 128 -> 44/42/42, 32 -> 12/10/10) this is
        the same split; for others (e.g. 64 -> 24/20/20, where DiffSynth's table has the wrong
        length) it is diffusers' ``WanRotaryPosEmbed`` split.
        """
        hw = 2 * (self.head_dim // 6)
        return (self.head_dim - 2 * hw, hw, hw)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        d["modalities"] = list(self.modalities)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UnityVideoConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**dict(data))


PRESETS: Dict[str, UnityVideoConfig] = {
    # KlingTeam/UnityVideo = Wan2.2-TI2V-5B + UnityVideo additions.
    "wan2.2-ti2v-5b": UnityVideoConfig(),
    # Yume-5B (stdstu12/YUME, Yume 1.5): stock Wan2.2-TI2V-5B plus five history patch embeddings.
    "yume-5b": UnityVideoConfig(modality_stream=False, history_embeddings=True),
    # The shipped default: MiniLM text (384), a small Wan-style VAE with 16 latent channels.
    "unityvideo-small": UnityVideoConfig(
        dim=256, num_layers=8, num_heads=4, ffn_dim=1024, in_channels=16, out_channels=16, text_dim=384
    ),
}


def get_config(spec: Union[str, Mapping[str, Any], UnityVideoConfig]) -> UnityVideoConfig:
    """Resolve a preset name, a mapping or a config into a fresh :class:`UnityVideoConfig`.

    Raises:
        ValueError: unknown preset name (the message lists the presets) or unknown keys.
    """
    if isinstance(spec, UnityVideoConfig):
        return dataclasses.replace(spec)
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown preset {spec!r}; use one of: {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[spec])
    if isinstance(spec, Mapping):
        return UnityVideoConfig.from_dict(spec)
    raise ValueError(f"cannot make a config from {type(spec).__name__}")
