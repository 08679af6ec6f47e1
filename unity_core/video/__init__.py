"""Whole videos of any length: the window plan, stitching of windowed predictions, the model-size
choice and the way back to the source resolution (:mod:`unity_core.video.windows`)."""

from unity_core.video.windows import (
    KnownFrames, Stitcher, Window, WindowPlan, fit_scale_shift, model_size, plan_windows, resize_frames,
    run_windows, to_source_size,
)

__all__ = ["KnownFrames", "Stitcher", "Window", "WindowPlan", "fit_scale_shift", "model_size", "plan_windows",
           "resize_frames", "run_windows", "to_source_size"]
