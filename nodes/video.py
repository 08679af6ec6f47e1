"""Video file nodes: read a clip from ComfyUI's input folder into IMAGE frames, save frames as a video."""

from __future__ import annotations

from comfy_api.latest import io

from unity_core.io import check_frame_count, read_video, write_video

from . import _comfy
from .common import MAX_FRAMES, size_inputs
from .schema import UnityNode, out


class UnityVideoLoadVideo(UnityNode):
    """Read a video (mp4, webm, gif, webp, mov, mkv or an image folder) from ComfyUI's input folder
    into IMAGE frames [F, H, W, 3] in [0, 1], resized and centre-cropped, with its frame rate."""

    DISPLAY = "UnityVideo Load Video"
    GROUP = "video"
    INPUTS = [
        lambda: io.Combo.Input("video", options=_comfy.input_videos(), upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder; the upload button adds one."),
        io.Int.Input("num_frames", default=17, min=1, max=MAX_FRAMES, step=4,
                     tooltip="Frames to keep; must be 4k+1 (17, 33, 81)."),
        *size_inputs(64, "Output"),
        io.Combo.Input("sampling", options=["uniform", "stride"], default="uniform",
                       tooltip="uniform: spread over the whole clip (the release); stride: consecutive frames."),
        io.Int.Input("stride", default=1, min=1, max=64, tooltip="Step between frames for stride sampling."),
    ]
    OUTPUTS = [
        out(io.Image, "frames", "The clip, [F, H, W, 3] in [0, 1]."),
        out(io.Float, "fps", "Frames per second of the kept frames (uniform sampling keeps the clip's duration)."),
    ]

    @classmethod
    def validate_inputs(cls, num_frames=None):
        """Refuse a frame count that is not 4k+1 (or above ``MAX_FRAMES``) when the prompt is queued;
        ComfyUI skips its own range check for the inputs a validator takes."""
        if num_frames is None:  # linked from another node: checked when the node runs
            return True
        try:
            check_frame_count(num_frames)
        except ValueError as err:
            return f"num_frames: {err}"
        if num_frames > MAX_FRAMES:
            return f"num_frames: {num_frames} is more than {MAX_FRAMES}"
        return True

    @classmethod
    def fingerprint_inputs(cls, video, **kwargs):
        """The file's modification time and size: a file replaced under the same name is read again."""
        try:
            stat = _comfy.input_path(video).stat()
        except (ValueError, OSError, TypeError):
            return video  # execute() reports the problem
        return f"{video}:{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def execute(cls, video, num_frames, width, height, sampling, stride) -> io.NodeOutput:
        check_frame_count(num_frames)
        frames, fps = read_video(_comfy.input_path(video), num_frames, sampling, stride, size=(height, width))
        return io.NodeOutput(frames, float(fps))


class UnityVideoSaveVideo(UnityNode):
    """Save IMAGE frames as H.264 mp4 or animated webp in the output folder (never overwriting),
    with a preview in the node."""

    DISPLAY = "UnityVideo Save Video"
    GROUP = "video"
    IS_OUTPUT = True
    INPUTS = [
        io.Image.Input("frames", tooltip="Video frames to save, [F, H, W, 3] in [0, 1]."),
        io.String.Input("filename_prefix", default="unityvideo/video", tooltip="Path under the output folder."),
        io.Float.Input("fps", default=8.0, min=1.0, max=120.0, tooltip="Frames per second (the release uses 8)."),
        io.Combo.Input("format", options=["webp", "mp4"], default="webp",
                       tooltip="webp previews in the node; mp4 is H.264."),
    ]

    @classmethod
    def execute(cls, frames, filename_prefix, fps, format) -> io.NodeOutput:
        path = write_video(_comfy.output_path(filename_prefix, f".{format}"), frames, fps)
        rel = path.relative_to(_comfy.output_dir().resolve())
        subfolder = "" if str(rel.parent) == "." else str(rel.parent)
        return io.NodeOutput(ui={"images": [{"filename": rel.name, "subfolder": subfolder, "type": "output"}],
                                 "animated": (format == "webp",)})
