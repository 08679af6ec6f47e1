"""The UnityVideo DiT: config presets, the transformer (a diffusers model), checkpoint I/O in every
layout, LoRA key conversion and context parallelism (:mod:`unity_core.model.parallel`)."""

from unity_core.model.checkpoint import (CheckpointError, PeftLora, checkpoint_kind, load_lora, load_transformer,
                                         lora_state_dict_to_peft, lora_target_keys, official_state_dict,
                                         ours_to_wan_key, save_transformer)
from unity_core.model.config import PRESETS, UnityVideoConfig, get_config
from unity_core.model.transformer import UnityVideoTransformer, UnityVideoTransformerOutput

__all__ = [
    "CheckpointError",
    "PRESETS",
    "PeftLora",
    "UnityVideoConfig",
    "UnityVideoTransformer",
    "UnityVideoTransformerOutput",
    "checkpoint_kind",
    "get_config",
    "load_lora",
    "load_transformer",
    "lora_state_dict_to_peft",
    "lora_target_keys",
    "official_state_dict",
    "ours_to_wan_key",
    "save_transformer",
]
