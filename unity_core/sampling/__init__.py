"""Tasks (dynamic noising), flow-matching samplers, Yume's samplers and the training objective."""

from unity_core.sampling.objective import drop_prompts, flow_matching_loss, sample_modality, sample_task, sample_timesteps
from unity_core.sampling.progress import SamplingInterrupted
from unity_core.sampling.sampler import SCHEDULERS, SampleResult, sample
from unity_core.sampling.schedule import flow_sigmas, shift_sigmas
from unity_core.sampling.tasks import add_noise, noised_streams
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, rank_blocks_by_removal

__all__ = [
    "AAM", "BlockCache", "SCHEDULERS", "SampleResult", "SamplingInterrupted", "TimeTravel", "add_noise",
    "drop_prompts", "flow_matching_loss", "flow_sigmas", "noised_streams", "rank_blocks_by_removal", "sample",
    "sample_modality", "sample_task", "sample_timesteps", "shift_sigmas",
]
