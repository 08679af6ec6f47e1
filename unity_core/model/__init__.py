"""The UnityVideo DiT: config presets, the transformer (a diffusers model), checkpoint I/O in every
layout (:mod:`.checkpoint`, reading through :mod:`.reader`, key names in :mod:`.keys`), LoRA
(:mod:`.lora`) and context parallelism (:mod:`unity_core.model.parallel`)."""

from unity_core.model.checkpoint import load_transformer, official_state_dict, save_transformer
from unity_core.model.keys import checkpoint_kind, ours_to_wan_key
from unity_core.model.lora import PeftLora, load_lora, lora_state_dict_to_peft, lora_target_keys
from unity_core.model.reader import CheckpointError
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
