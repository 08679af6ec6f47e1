"""Video reading, frame selection, resizing and writing; values files (``.npz``) of decoded
modality values (:mod:`unity_core.io.values`)."""

from unity_core.io.video import (
    VideoReadError, check_frame_count, check_same_length, check_unit_frames, frames_to_uint8, read_video,
    resize_center_crop, select_frames, to_uint8, unique_path, write_video,
)
from unity_core.io.values import ModalityValues, load_values, save_values

__all__ = ["ModalityValues", "VideoReadError", "check_frame_count", "check_same_length", "check_unit_frames",
           "frames_to_uint8", "load_values", "read_video", "resize_center_crop", "save_values", "select_frames",
           "to_uint8", "unique_path", "write_video"]
