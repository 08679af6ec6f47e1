"""Video file nodes: read a clip from ComfyUI's input folder into IMAGE frames, save frames as a video."""

from __future__ import annotations

from comfy_api.latest import io

from unity_core.io import write_video

from . import _comfy
from .common import MAX_SIDE
from .schema import UnityNode, out


def read_selected(path, start: int = 0, end: int = 0, every_nth: int = 1, cap: int = 0, max_side: int = 0):
    """Decode only the chosen frames of a video: source frames ``start, start + every_nth, ...``
    before ``end`` (0: the clip's end), at most ``cap`` of them (0: no cap), each resized as it
    is decoded so its long side is at most ``max_side`` (0: the source size; aspect kept, no
    crop). PyAV decodes forward and stops once the last chosen frame is out; frames not chosen
    are never converted to arrays, and only the chosen ones, at the capped size, are kept.

    Returns:
        (frames ``[N, h, w, 3]`` float32 in [0, 1], fps of the chosen frames (the source's
        divided by ``every_nth``), the source's frame count as far as it was decoded).

    Raises:
        VideoReadError: a file PyAV cannot decode or with no video stream.
        ValueError: ``start`` past the clip's last frame, ``end <= start``, ``every_nth < 1``.
    """
    import numpy as np
    import torch

    from unity_core.io.video import VideoReadError
    from unity_core.video import resize_frames

    if every_nth < 1:
        raise ValueError(f"select_every_nth must be >= 1, got {every_nth}")
    if end and end <= start:
        raise ValueError(f"end frame ({end}) must be after the start frame ({start}); 0 reads to the clip's end")
    last = None if not cap else start + (cap - 1) * every_nth  # the last source index wanted
    if end:
        last = end - 1 if last is None else min(last, end - 1)
    kept, seen, fps = [], 0, 8.0

    def keep(image):
        t = torch.from_numpy(np.ascontiguousarray(image))
        h, w = t.shape[:2]
        if max_side and max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            t = (resize_frames(t[None], size)[0] * 255).round().to(torch.uint8)
        kept.append(t)

    if path.is_dir() or path.suffix.lower() in (".webp", ".gif"):
        from unity_core.io.video import _read_images

        images, fps = _read_images(path)  # animated images and folders are small: Pillow reads them whole
        seen = len(images)
        for i in range(start, seen if last is None else min(seen, last + 1), every_nth):
            keep(images[i])
    else:
        import av

        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoReadError(f"{path.name} has no video stream")
                stream = container.streams.video[0]
                fps = float(stream.average_rate or stream.guessed_rate or 8.0)
                for frame in container.decode(stream):
                    i, seen = seen, seen + 1
                    if i >= start and (i - start) % every_nth == 0:
                        keep(frame.to_ndarray(format="rgb24"))
                    if last is not None and i >= last:
                        break
        except VideoReadError:
            raise
        except Exception as err:  # noqa: BLE001 - PyAV raises many error types for bad files
            raise VideoReadError(f"cannot decode {path.name}: {err}; is it a complete video file?") from None
    if not kept:
        raise ValueError(f"start frame {start} is past the clip's last frame ({seen} frames, 0 to {seen - 1})")
    frames = torch.stack(kept).float() / 255.0
    return frames, fps / every_nth, seen


class UnityVideoLoadVideo(UnityNode):
    """Read a video (mp4, webm, gif, webp, mov, mkv or an image folder) from ComfyUI's input folder
    into IMAGE frames [F, H, W, 3] in [0, 1]: all its frames at its own size by default, or a
    range, every n-th frame, a frame cap and a size cap (as VideoHelperSuite's loader). Only the
    chosen frames are decoded into memory."""

    DISPLAY = "UnityVideo Load Video"
    GROUP = "video"
    INPUTS = [
        lambda: io.Combo.Input("video", options=_comfy.input_videos(), upload=io.UploadType.video,
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
            stat = _comfy.input_path(video).stat()
        except (ValueError, OSError, TypeError):
            return video  # execute() reports the problem
        return f"{video}:{stat.st_mtime_ns}:{stat.st_size}"

    @classmethod
    def execute(cls, video, skip_first_frames=0, end_frame=0, select_every_nth=1, frame_load_cap=0,
                max_side=0) -> io.NodeOutput:
        frames, fps, _ = read_selected(_comfy.input_path(video), skip_first_frames, end_frame, select_every_nth,
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
        io.Float.Input("fps", default=8.0, min=0.01, max=1000.0,
                       tooltip="Frames per second written into the file: connect UnityVideo Load Video's fps to keep the "
                               "source's (8 is the release's for generated clips)."),
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
