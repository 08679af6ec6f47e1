"""Training: the UnityVideo trainer, the codec trainer and the synthworld clip pool."""

from unity_core.train.trainer import LatentData, TrainConfig, Trainer, add_walks, build_latent_data

__all__ = ["LatentData", "TrainConfig", "Trainer", "add_walks", "build_latent_data"]
