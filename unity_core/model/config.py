"""Model configurations: the one preset table of the suite, and a validated view of a config.

The schema is the signature of ``UnityVideoTransformer.__init__`` (diffusers' ``@register_to_config``
records those keyword arguments as ``model.config`` and writes them to ``config.json``), as in
diffusers' ``WanTransformer3DModel``: its parameters are the fields, its defaults the defaults.
Nothing here lists the fields again; :class:`UnityVideoConfig` reads them from that signature and
adds the validation and the derived values (``head_dim``, ``rope_dims``), which live only here.

``wan2.2-ti2v-5b`` is the public UnityVideo release (KlingTeam/UnityVideo, built on
Wan2.2-TI2V-5B); its config is the signature's defaults. ``unityvideo-small`` is the default model
this project trains and ships (sized from the CPU calibration: about 9 M parameters). Any other
size is a plain config.
"""

from __future__ import annotations

import functools
import inspect
import json
from types import MappingProxyType
from typing import Any, Dict, Mapping, Tuple, Union


@functools.lru_cache(maxsize=None)
def config_schema() -> Mapping[str, Any]:
    """The config fields, name -> default, read from ``UnityVideoTransformer.__init__`` (read-only).

    The meaning of every field is documented on :class:`~unity_core.model.UnityVideoTransformer`.
    """
    from unity_core.model.transformer import UnityVideoTransformer  # the schema's owner imports this module

    params = list(inspect.signature(UnityVideoTransformer.__init__).parameters.values())[1:]  # after self
    return MappingProxyType({p.name: p.default for p in params})


class UnityVideoConfig:
    """A validated view of a transformer config: the fields of :func:`config_schema` (those not
    given take the ``__init__`` defaults) as attributes, plus the derived values.

    ``UnityVideoConfig(**kwargs)`` takes ``UnityVideoTransformer.__init__``'s keyword arguments;
    ``model.unity_config`` is the view of ``model.config``. ``patch_size`` and ``modalities`` are
    normalised to tuples; two views are equal when their fields are.

    Raises:
        ValueError: unknown field names (the message lists the valid ones), ``dim`` not divisible
            by ``num_heads``, an odd head dim (RoPE needs pairs), a ``patch_size`` that is not
            three entries, or ``modality_switcher`` without ``modality_stream``.
    """

    def __init__(self, **fields: Any) -> None:
        schema = config_schema()
        unknown = sorted(set(fields) - set(schema))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(schema)}")
        self.__dict__.update({**schema, **fields})
        self.patch_size = tuple(int(p) for p in self.patch_size)
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
        """Per-head width ``dim // num_heads``."""
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

    def to_kwargs(self) -> Dict[str, Any]:
        """The ``UnityVideoTransformer.__init__`` keyword arguments (tuples kept, as the presets give them)."""
        return {name: getattr(self, name) for name in config_schema()}

    def to_dict(self) -> Dict[str, Any]:
        """The fields as JSON types (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.to_kwargs().items()}

    def to_json(self) -> str:
        """The fields as JSON, keys sorted (the form checkpoints record)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UnityVideoConfig":
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        return cls(**dict(data))

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any]) -> "UnityVideoConfig":
        """The view of a diffusers ``model.config``, whose bookkeeping keys (``_class_name``,
        ``_use_default_values``, ...: those starting with ``_``) are not fields."""
        return cls(**{k: v for k, v in config.items() if not k.startswith("_")})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnityVideoConfig):
            return NotImplemented
        return self.to_kwargs() == other.to_kwargs()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq

    def __repr__(self) -> str:
        return f"UnityVideoConfig({', '.join(f'{k}={v!r}' for k, v in self.to_kwargs().items())})"


#: Named presets: ``UnityVideoTransformer.__init__`` keyword arguments (resolve with :func:`get_config`).
PRESETS: Dict[str, Dict[str, Any]] = {
    # KlingTeam/UnityVideo = Wan2.2-TI2V-5B + UnityVideo additions: the __init__ defaults.
    "wan2.2-ti2v-5b": {},
    # Yume-5B (stdstu12/YUME, Yume 1.5): stock Wan2.2-TI2V-5B plus five history patch embeddings.
    "yume-5b": dict(modality_stream=False, history_embeddings=True),
    # The shipped default: MiniLM text (384), a small Wan-style VAE with 16 latent channels.
    "unityvideo-small": dict(
        dim=256, num_layers=8, num_heads=4, ffn_dim=1024, in_channels=16, out_channels=16, text_dim=384
    ),
}


def get_config(spec: Union[str, Mapping[str, Any], UnityVideoConfig]) -> UnityVideoConfig:
    """Resolve a preset name, a mapping or a config into a fresh :class:`UnityVideoConfig`.

    Raises:
        ValueError: unknown preset name (the message lists the presets) or unknown keys.
    """
    if isinstance(spec, UnityVideoConfig):
        return UnityVideoConfig(**spec.to_kwargs())
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown preset {spec!r}; use one of: {', '.join(PRESETS)}")
        return UnityVideoConfig(**PRESETS[spec])
    if isinstance(spec, Mapping):
        return UnityVideoConfig.from_dict(spec)
    raise ValueError(f"cannot make a config from {type(spec).__name__}")
