"""Video file nodes: read a clip from ComfyUI's input folder into IMAGE frames, save frames as a video."""

from __future__ import annotations

from comfy_api.latest import io

from unity_core.constants import INFERENCE_DEFAULTS
from unity_core.io import write_video

from . import host
from .common import MAX_SIDE, MODEL_DEFAULTS
from .schema import UnityNode, out


def read_selected(path, start: int = 0, end: int = 0, every_nth: int = 1, cap: int = 0, max_side: int = 0):
    """The chosen frames of a video, decoded forward by :class:`unity_core.io.stream.VideoSource`
    (display rotation applied, fps from the timestamps): source frames ``start, start + every_nth,
    ...`` before ``end`` (0: the clip's end), at most ``cap`` of them (0: no cap), each shrunk as
    it is decoded so its long side is at most ``max_side`` (0: the source size; aspect kept, no
    crop). Decoding stops after the last chosen frame; only the chosen frames, at the capped
    size, are kept.

    Returns:
        (frames ``[N, h, w, 3]`` float32 in [0, 1], fps of the chosen frames: the source's divided
        by ``every_nth``).

    Raises:
        VideoReadError: an unreadable file, or one that breaks before the last chosen frame.
        ValueError: a range the clip does not hold (:func:`unity_core.video.select_range`).
    """
    import torch

    from unity_core.io.stream import VideoSource
    from unity_core.video.windows import resize_frames, select_range

    src = VideoSource.open(path)
    chosen = select_range(src.num_frames, start, end or None, every_nth)
    if cap:
        chosen = chosen[:cap]
    h, w = src.height, src.width
    size = None
    if max_side and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    kept = [frame if size is None else (resize_frames(frame[None], size)[0] * 255).round().to(torch.uint8)
            for _, frame in src.frames(list(chosen))]
    return torch.stack(kept).float() / 255.0, src.fps / every_nth


class UnityVideoLoadVideo(UnityNode):
    """Read a video (mp4, webm, gif, webp, mov, mkv or an image folder) from ComfyUI's input folder
    into IMAGE frames [F, H, W, 3] in [0, 1]: all its frames at its own size by default, or a
    range, every n-th frame, a frame cap and a size cap (as VideoHelperSuite's loader). Only the
    chosen frames are decoded into memory."""

    DISPLAY = "UnityVideo Load Video"
    GROUP = "video"
    INPUTS = [
        lambda: io.Combo.Input("video", options=host.input_videos(), upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder; the upload button adds one."),
        io.Int.Input("skip_first_frames", default=0, min=0, max=10**7,
                     tooltip="Start at this source frame (0 = the first)."),
        io.Int.Input("end_frame", default=0, min=0, max=10**7,
                     tooltip="Stop before this source frame (0 = read to the clip's end)."),
        io.Int.Input("select_every_nth", default=1, min=1, max=1000,
                     tooltip="Keep every n-th frame from the start (1 = every frame); the fps output is divided by n."),
        io.Int.Input("frame_load_cap", default=0, min=0, max=10**7, tooltip="Keep at most this many frames (0 = no cap)."),
        io.Int.Input("max_side", default=0, min=0, max=MAX_SIDE,
                     tooltip="Shrink frames whose long side is larger to this many pixels, aspect kept, no crop "
                             "(0 = the source size)."),
    ]
    OUTPUTS = [
        out(io.Image, "frames", "The chosen frames, [F, H, W, 3] in [0, 1]."),
        out(io.Float, "fps", "Frames per second of the chosen frames (the source's, divided by select_every_nth): "
                             "connect it to UnityVideo Save Video."),
        out(io.Int, "frame_count", "How many frames were loaded."),
    ]

    @classmethod
    def validate_inputs(cls, skip_first_frames=None, end_frame=None):
        """Refuse an end frame that is not after the start when the prompt is queued."""
        if isinstance(skip_first_frames, int) and isinstance(end_frame, int) and end_frame and \
                end_frame <= skip_first_frames:
            return f"end_frame ({end_frame}) must be after skip_first_frames ({skip_first_frames}), or 0 for the clip's end"
        return True

    @classmethod
    def fingerprint_inputs(cls, video, **kwargs):
        """The file's modification time and size: a file replaced under the same name is read again."""
        try:
            stat = host.input_path(video).stat()
        except (ValueError, OSError, TypeError):
            return video  # execute() reports the problem
        return f"{video}:{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def execute(cls, video, skip_first_frames=0, end_frame=0, select_every_nth=1, frame_load_cap=0,
                max_side=0) -> io.NodeOutput:
        frames, fps = read_selected(host.input_path(video), skip_first_frames, end_frame, select_every_nth,
                                       frame_load_cap, max_side)
        return io.NodeOutput(frames, float(fps), int(frames.shape[0]))


class UnityVideoSaveVideo(UnityNode):
    """Save IMAGE frames as H.264 mp4 or animated webp in the output folder (never overwriting),
    with a preview in the node."""

    DISPLAY = "UnityVideo Save Video"
    GROUP = "video"
    IS_OUTPUT = True
    INPUTS = [
        io.Image.Input("frames", tooltip="Video frames to save, [F, H, W, 3] in [0, 1]."),
        io.String.Input("filename_prefix", default="unityvideo/video", tooltip="Path under the output folder."),
        io.Float.Input("fps", default=float(MODEL_DEFAULTS["fps"]), min=0.01, max=1000.0,
                       tooltip="Frames per second written into the file: connect UnityVideo Load Video's fps to keep the "
                               f"source's ({INFERENCE_DEFAULTS['fps']:g} is the release's for generated clips)."),
        io.Combo.Input("format", options=["webp", "mp4"], default="webp",
                       tooltip="webp previews in the node; mp4 is H.264."),
    ]

    @classmethod
    def execute(cls, frames, filename_prefix, fps, format) -> io.NodeOutput:
        path = write_video(host.output_path(filename_prefix, f".{format}"), frames, fps)
        rel = path.relative_to(host.output_dir().resolve())
        subfolder = "" if str(rel.parent) == "." else str(rel.parent)
        return io.NodeOutput(ui={"images": [{"filename": rel.name, "subfolder": subfolder, "type": "output"}],
                                 "animated": (format == "webp",)})
