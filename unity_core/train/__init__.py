"""Training: the flow-matching objective with UnityVideo's task routing, the UnityVideo trainer,
the codec trainer and the synthworld clip pool."""

from unity_core.train.objective import (
    EXPLORE_TASK, RGB_ONLY_TASK, drop_prompts, flow_matching_loss, sample_modality, sample_task, sample_timesteps,
)
from unity_core.train.trainer import LatentData, TrainConfig, Trainer, add_walks, build_latent_data

__all__ = ["EXPLORE_TASK", "LatentData", "RGB_ONLY_TASK", "TrainConfig", "Trainer", "add_walks", "build_latent_data",
           "drop_prompts", "flow_matching_loss", "sample_modality", "sample_task", "sample_timesteps"]
