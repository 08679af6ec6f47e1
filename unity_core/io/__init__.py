"""Video reading, frame selection, resizing and writing; values files (``.npz``) of decoded
modality values (:mod:`unity_core.io.values`); outputs created atomically without replacing
anything (:mod:`unity_core.io.output`); streaming reading and writing of whole clips
(:mod:`unity_core.io.stream`)."""

from unity_core.io.video import (
    VideoReadError, check_frame_count, check_same_length, check_unit_frames, floor_frame_count, frames_to_uint8,
    latent_frame_count, read_video, resize_center_crop, select_frames, to_uint8, VideoEncoder, write_video,
)
from unity_core.io.output import atomic_output, check_output_suffix, publish, write_new_text
from unity_core.io.values import ModalityValues, load_values, save_values

__all__ = ["ModalityValues", "VideoReadError", "check_frame_count", "check_same_length", "check_unit_frames",
           "floor_frame_count", "frames_to_uint8", "latent_frame_count", "load_values", "read_video", "resize_center_crop", "save_values", "select_frames",
           "to_uint8", "VideoEncoder", "write_video", "atomic_output", "check_output_suffix",
           "publish", "write_new_text"]
