"""Video I/O: read clips into ``[F, H, W, 3]`` float32 in [0, 1], select frames, resize, write.

Reading uses PyAV for containers (mp4, webm, mkv, mov, gif) and imageio/Pillow for animated
webp and image folders. Writing gives H.264 mp4 (PyAV, yuv420p) or animated webp, and never
replaces an existing file: it writes to a temporary name and publishes the finished file as
``name.mp4``, ``name_1.mp4``, ... without replacing (:mod:`unity_core.io.output`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from unity_core.constants import TEMPORAL_RATIO

PathLike = Union[str, Path]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class VideoReadError(ValueError):
    """A video that cannot be read (missing, empty, corrupt or without frames)."""


def floor_frame_count(num_frames: int) -> int:
    """The largest 4k+1 frame count (``TEMPORAL_RATIO * k + 1``: 1, 5, 9, ..., 17) not above
    ``num_frames`` (``num_frames`` itself when it is one), e.g. 20 -> 17; for ``num_frames`` >= 1
    (below 1 the formula goes below 1 too: 0 -> -3)."""
    n = int(num_frames)
    return (n - 1) // TEMPORAL_RATIO * TEMPORAL_RATIO + 1


def latent_frame_count(num_frames: int) -> int:
    """Latent frames of a clip of ``num_frames`` (4k+1) frames in a Wan VAE: ``k + 1``
    (17 -> 5, 33 -> 9). The count is not checked (:func:`check_frame_count` does that)."""
    return (int(num_frames) - 1) // TEMPORAL_RATIO + 1


def check_frame_count(num_frames: int) -> int:
    """Return ``num_frames`` if it is 4k+1 (1, 5, 9, ..., 17, 33, 81), the Wan VAE's requirement
    (``k`` latent frames after the first, :data:`unity_core.constants.TEMPORAL_RATIO` frames each).

    Raises:
        ValueError: otherwise, naming the nearest valid counts.
    """
    n = int(num_frames)
    if n < 1 or (n - 1) % TEMPORAL_RATIO:
        lower = max(1, floor_frame_count(n))
        raise ValueError(f"frame count {n} is not {TEMPORAL_RATIO}k+1; use {lower} or {lower + TEMPORAL_RATIO}")
    return n


def select_frames(total: int, num_frames: Optional[int], sampling: str = "uniform", stride: int = 1, start: int = 0) -> List[int]:
    """Indices of the frames to keep.

    ``uniform`` spreads ``num_frames`` evenly over the whole clip (the release's choice);
    ``stride`` takes consecutive frames ``start, start + stride, ...``. ``num_frames=None``
    keeps all (uniform) or every ``stride``-th frame.

    Raises:
        ValueError: unknown mode, num_frames < 1, a start outside the video, or too few frames
            for a strided selection.
    """
    if total < 1:
        raise VideoReadError("the video has no frames")
    if num_frames is not None and int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1 (or None for all), got {num_frames}")
    if sampling == "stride" and not 0 <= int(start) < total:
        raise ValueError(f"start frame {start} is outside the video's {total} frames (0 to {total - 1})")
    if sampling == "uniform":
        if num_frames is None:
            return list(range(total))
        return np.linspace(0, total - 1, int(num_frames)).round().astype(int).tolist()
    if sampling == "stride":
        idx = list(range(start, total, max(1, int(stride))))
        if num_frames is not None:
            if len(idx) < num_frames:
                raise ValueError(f"only {len(idx)} frames at stride {stride} from {start}; need {num_frames}")
            idx = idx[: int(num_frames)]
        return idx
    raise ValueError(f"unknown frame sampling {sampling!r}; use 'uniform' or 'stride'")


def _rgb(image: np.ndarray) -> np.ndarray:
    """Grey ``[H, W]``, grey + alpha, RGB or RGBA -> ``[H, W, 3]``."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] in (1, 2):  # grey (+ alpha)
        image = np.repeat(image[..., :1], 3, axis=-1)
    return image[..., :3]


def check_unit_frames(frames) -> torch.Tensor:
    """A clip ``[F, H, W, 3]`` of float frames in [0, 1] (torch or numpy) as a CPU tensor,
    checked: what OpenCV and MediaPipe code here expects before converting to 8 bits.

    Raises:
        ValueError: another shape, uint8 frames or values outside [0, 1] (divide 0-255 video
            by 255 first), which would otherwise come out nearly white without a word.
    """
    t = torch.as_tensor(frames).detach().cpu()
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3] in [0, 1], got shape {tuple(t.shape)}")
    if not t.is_floating_point() or (t.numel() and (t.min() < -1e-3 or t.max() > 1 + 1e-3)):
        raise ValueError("frames must be float in [0, 1]; divide uint8 / 0-255 video by 255 first "
                         f"(got {t.dtype}, range [{float(t.min()):.3g}, {float(t.max()):.3g}])")
    return t


def frames_to_uint8(frames) -> np.ndarray:
    """:func:`check_unit_frames`, then uint8 numpy ``[F, H, W, 3]`` (rounded), for OpenCV and
    MediaPipe.

    Raises:
        ValueError: as :func:`check_unit_frames`.
    """
    return to_uint8(check_unit_frames(frames)).numpy()


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [0, 1] (any shape, e.g. ``[F, H, W, 3]``) -> uint8 0-255, rounded; uint8 passes
    through unchanged."""
    if frames.dtype == torch.uint8:
        return frames
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)


def read_video(
    path: PathLike,
    num_frames: Optional[int] = None,
    sampling: str = "uniform",
    stride: int = 1,
    size: Optional[Tuple[int, int]] = None,
    start: int = 0,
) -> Tuple[torch.Tensor, float]:
    """Read a video file, animated webp/gif or an image folder.

    Args:
        path: the file or folder.
        num_frames: frames to keep (None = all); see :func:`select_frames`.
        sampling: ``uniform`` (the release) or ``stride``.
        stride, start: for ``stride`` sampling.
        size: (height, width) to resize and centre-crop to (see :func:`resize_center_crop`).

    Returns:
        (frames ``[F, H, W, 3]`` float32 in [0, 1], fps). With uniform sampling the fps is scaled
        so the clip keeps its duration.

    Raises:
        FileNotFoundError: no such path.
        VideoReadError: empty, corrupt or frameless input.
    """
    from unity_core.io.stream import VideoSource  # the one decoding path (stream.py imports this module)

    source = VideoSource.open(Path(path))
    idx = select_frames(source.num_frames, num_frames, sampling, stride, start)
    fps = source.fps
    if sampling == "uniform" and num_frames is not None and source.num_frames > 1 and num_frames > 1:
        fps = fps * (len(idx) - 1) / (source.num_frames - 1)
    elif sampling == "stride":
        fps = fps / max(1, stride)
    # only the selected frames are decoded and kept (uint8 until the one float conversion)
    video = torch.stack([frame for _, frame in source.frames(idx)]).float() / 255.0
    if size is not None:
        video = resize_center_crop(video, *size)
    return video, float(fps)


def resize_center_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale ``[F, H, W, 3]`` to cover (height, width) keeping the aspect ratio, then centre-crop.

    Raises:
        ValueError: height or width not a positive multiple of 16 (the Wan VAE and patch need it).
    """
    if height <= 0 or width <= 0 or height % 16 or width % 16:
        raise ValueError(f"height and width must be positive multiples of 16, got {height}x{width}")
    _, h, w, _ = frames.shape
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    x = frames.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - height) // 2, (nw - width) // 2
    return x[:, :, top:top + height, left:left + width].permute(0, 2, 3, 1).clamp(0, 1).contiguous()


def write_video(path: PathLike, frames: torch.Tensor, fps: float = 8.0) -> Path:
    """Write ``[F, H, W, 3]`` in [0, 1] (or uint8) as H.264 mp4 or animated webp/gif.

    ``fps`` may be fractional (e.g. 7.5 or 30000/1001 as 29.97). H.264 is written as yuv420p,
    or yuv444p when a side is odd (the size is kept exactly; see :class:`VideoEncoder`).

    Returns:
        The path actually written: ``path``, or ``stem_1.ext``, ... if that name is taken
        (created atomically, never replacing a file: :mod:`unity_core.io.output`).

    Raises:
        ValueError: wrong shape, fps not positive, or an unsupported extension (checked before
            anything is written).
    """
    from unity_core.io.output import atomic_output, check_output_suffix

    path = check_output_suffix(path)
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [F, H, W, 3], got {tuple(frames.shape)}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    data = to_uint8(frames).cpu().numpy()
    with atomic_output(path) as out:
        with VideoEncoder(out.tmp, fps, data.shape[1], data.shape[2], suffix=path.suffix) as encode:
            encode(data)
    return out.path


class VideoEncoder:
    """Encode uint8 frames ``[N, H, W, 3]`` chunk by chunk into ``path`` (an existing temporary
    file is overwritten: callers pass :class:`~unity_core.io.output.AtomicOutput`'s ``tmp``).

    mp4/mkv/mov: H.264 (yuv420p, CRF 16, 10-frame lookahead) through PyAV, streamed; an odd height or width is
    kept exactly by encoding 4:4:4 (yuv444p: yuv420p needs even sides; some players, such as
    browsers, play only 4:2:0). webp (lossless) / gif:
    imageio, which needs the whole clip, so frames are gathered until close.

    Use as a context manager; calling the object encodes a chunk. Leaving the block with an
    exception stops without flushing.
    """

    def __init__(self, path: PathLike, fps: float, height: int, width: int, suffix: Optional[str] = None):
        self.path, self.fps, self.size = Path(path), float(fps), (int(height), int(width))
        self.suffix = (suffix or self.path.suffix).lower()
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if self.suffix not in {".mp4", ".mkv", ".mov", ".webp", ".gif"}:
            raise ValueError(f"unsupported video extension {self.suffix!r}; use .mp4, .webp or .gif")
        self._container = self._stream = None
        self._gathered: List[np.ndarray] = []
        self.frames = 0

    def __enter__(self):
        if self.suffix in {".mp4", ".mkv", ".mov"}:
            import av

            fmt = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}[self.suffix]
            self._container = av.open(str(self.path), mode="w", format=fmt)
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            h, w = self.size
            stream.width, stream.height = w, h
            # yuv420p halves the chroma grid and needs even sides; odd sizes keep their size in 4:4:4
            stream.pix_fmt = "yuv420p" if not (h % 2 or w % 2) else "yuv444p"
            # a 10-frame lookahead (x264's default is 40) halves the encoder's memory at 1080p
            # (382 -> 196 MB measured) at the same speed: memory follows the window, not the codec
            stream.options = {"crf": "16", "rc-lookahead": "10"}
            self._stream = stream
        return self

    def __call__(self, data) -> None:
        if isinstance(data, torch.Tensor):
            data = to_uint8(data).cpu().numpy()
        elif np.asarray(data).dtype != np.uint8:
            data = to_uint8(torch.from_numpy(np.asarray(data))).numpy()
        if data.ndim != 4 or data.shape[-1] != 3 or tuple(data.shape[1:3]) != self.size:
            raise ValueError(f"frames must be [N, {self.size[0]}, {self.size[1]}, 3], got {tuple(data.shape)}")
        self.frames += data.shape[0]
        if self._stream is None:
            self._gathered.append(data)
            return
        import av

        for frame in data:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                self._container.mux(packet)

    def __exit__(self, exc_type, exc, tb):
        if self._container is not None:
            try:
                if exc_type is None:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
            finally:
                self._container.close()
        elif exc_type is None:
            if not self._gathered:
                raise ValueError("no frames were written")
            import imageio.v3 as iio

            kwargs = {"duration": 1000.0 / self.fps, "loop": 0}
            if self.suffix == ".webp":
                kwargs["lossless"] = True
            iio.imwrite(self.path, np.concatenate(self._gathered), extension=self.suffix, **kwargs)
        return False


def check_same_length(rgb: torch.Tensor, control: torch.Tensor) -> None:
    """Raise ``ValueError`` if an RGB clip and its control video differ in frame count or size."""
    if rgb.shape[:3] != control.shape[:3]:
        raise ValueError(
            f"control video {tuple(control.shape[:3])} and RGB video {tuple(rgb.shape[:3])} differ in "
            "frames/height/width; read both with the same num_frames and size"
        )
