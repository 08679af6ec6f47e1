"""World exploration (Yume): camera actions and their prompt text (:mod:`.actions`,
:mod:`.qcm`), each segment's prompt fitted to the text encoder (:mod:`.prompts`), compressed
history for models without trained history embeddings (:mod:`.history`), a walk's start from an
image or clip (:mod:`.start`), the two samplers of a walk (:mod:`.samplers`) and the walk itself
(:mod:`.long_video`, run by :meth:`unity_core.pipeline.UnityVideoPipeline.explore`); Yume-5B's own
forward is :mod:`unity_core.model.yume`."""
