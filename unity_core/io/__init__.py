"""Video reading, frame selection, resizing and writing."""

from unity_core.io.video import (
    VideoReadError, check_frame_count, check_same_length, check_unit_frames, frames_to_uint8, read_video,
    resize_center_crop, select_frames, to_uint8, unique_path, write_video,
)

__all__ = ["VideoReadError", "check_frame_count", "check_same_length", "check_unit_frames", "frames_to_uint8",
           "read_video", "resize_center_crop", "select_frames", "to_uint8", "unique_path", "write_video"]
