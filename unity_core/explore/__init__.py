"""World exploration (Yume): camera actions and their prompt text (:mod:`.actions`,
:mod:`.qcm`), compressed history for models without trained history embeddings
(:mod:`.history`), and walks segment by segment with either sampler (:mod:`.long_video`,
:func:`~unity_core.explore.long_video.explore`); Yume-5B's own forward is
:mod:`unity_core.model.yume`."""
