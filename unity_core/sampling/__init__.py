"""Tasks (dynamic noising), flow-matching samplers and Yume's samplers (the training objective
lives in :mod:`unity_core.train.objective`)."""

from unity_core.sampling.progress import SamplingInterrupted
from unity_core.sampling.sampler import SCHEDULERS, SampleResult, sample
from unity_core.sampling.schedule import flow_sigmas, shift_sigmas
from unity_core.sampling.tasks import add_noise, noised_streams
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, rank_blocks_by_removal

__all__ = [
    "AAM", "BlockCache", "SCHEDULERS", "SampleResult", "SamplingInterrupted", "TimeTravel", "add_noise",
    "flow_sigmas", "noised_streams", "rank_blocks_by_removal", "sample", "shift_sigmas",
]
