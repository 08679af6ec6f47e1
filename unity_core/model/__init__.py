"""The UnityVideo DiT: config presets, the transformer and checkpoint I/O."""

from unity_core.model.checkpoint import CheckpointError, load_transformer, official_state_dict, save_transformer
from unity_core.model.config import PRESETS, UnityVideoConfig, get_config
from unity_core.model.transformer import UnityVideoTransformer

__all__ = [
    "CheckpointError",
    "PRESETS",
    "UnityVideoConfig",
    "UnityVideoTransformer",
    "get_config",
    "load_transformer",
    "official_state_dict",
    "save_transformer",
]
