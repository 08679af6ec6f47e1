"""Tasks (dynamic noising), the one flow-matching integrator (:mod:`~unity_core.sampling.integrator`)
with its CFG helper, the samplers built on it and Yume's add-ons (the training objective lives in
:mod:`unity_core.train.objective`)."""

from unity_core.sampling.integrator import Guidance, integrate
from unity_core.sampling.progress import SamplingInterrupted
from unity_core.sampling.sampler import SCHEDULERS, SampleResult, sample
from unity_core.sampling.schedule import flow_sigmas, shift_sigmas
from unity_core.sampling.tasks import add_noise, noised_streams
from unity_core.sampling.yume import AAM, BlockCache, TimeTravel, rank_blocks_by_removal

__all__ = [
    "AAM", "BlockCache", "Guidance", "SCHEDULERS", "SampleResult", "SamplingInterrupted", "TimeTravel", "add_noise",
    "flow_sigmas", "integrate", "noised_streams", "rank_blocks_by_removal", "sample", "shift_sigmas",
]
