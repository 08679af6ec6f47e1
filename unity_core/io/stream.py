"""Streaming video input and values output for whole clips in bounded memory.

:class:`VideoSource` opens a clip (a file, an image folder, a tensor / array, or an iterator of
frames) without decoding it: it knows the frame count, the frame rate and the upright size, and
:meth:`VideoSource.frames` decodes forward, yielding one uint8 frame at a time, so a caller keeps
only the frames its current window needs (no list of all frames, no float32 copy of the clip).

- **Rotation**: phone clips carry a display matrix (``tkhd``); frames come out upright (PyAV's
  ``VideoFrame.rotation``, applied as quarter turns), and ``height`` / ``width`` are the
  upright size.
- **Frame rate**: from the packets' timestamps: ``fps = (n - 1) / (last pts - first pts)``,
  so a variable-frame-rate clip gets the average rate that keeps its duration; the container's
  nominal rate when timestamps are missing.
- **Grayscale and alpha**: decoded to RGB (grey repeated; alpha dropped, i.e. the colour as
  stored, not composited).

:class:`ValuesWriter` writes a values file window by window (format in
:mod:`unity_core.io.values`): a clip whose values fit in ``stream_bytes`` (256 MB by default:
a 120-frame 176x144 depth is 12 MB) gets today's single ``values`` entry at the source size;
a longer one is streamed as per-window chunks at the model's size with the source size beside
them (read back at the source size by :func:`unity_core.io.values.iter_values`).
"""

from __future__ import annotations

import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from unity_core.io.video import IMAGE_SUFFIXES, VideoReadError, _rgb

PathLike = Union[str, Path]


def _as_uint8_frame(frame) -> torch.Tensor:
    """One frame (torch / numpy, [H, W], [H, W, 1|2|3|4], uint8 or float in [0, 1]) -> uint8 ``[H, W, 3]``."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    frame = _rgb(np.asarray(frame))
    if frame.dtype != np.uint8:
        f = frame.astype(np.float32)
        if f.size and (f.min() < -1e-3 or f.max() > 1 + 1e-3):
            raise ValueError("float frames must be in [0, 1]; divide 0-255 video by 255 first "
                             f"(got range [{f.min():.3g}, {f.max():.3g}])")
        frame = (np.clip(f, 0, 1) * 255).round().astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(frame))


class VideoSource:
    """A clip opened for streaming (see the module docstring).

    Attributes:
        num_frames: frames in the clip.
        fps: frames per second (from timestamps; see the module docstring).
        height, width: the upright frame size in pixels.
        rotation: the clockwise turn applied to the stored frames to show them upright, degrees
            (0, 90, 180 or 270; 0 when the clip has no display matrix).
        name: a label for messages (the path, or ``"frames"``).
    """

    def __init__(self, num_frames: int, fps: float, height: int, width: int, name: str = "frames", rotation: int = 0):
        self.num_frames, self.fps, self.height, self.width = int(num_frames), float(fps), int(height), int(width)
        self.rotation, self.name = int(rotation), name

    # -- opening -----------------------------------------------------------------------------------

    @staticmethod
    def open(source, fps: Optional[float] = None, num_frames: Optional[int] = None) -> "VideoSource":
        """Open a path (video file, animated webp/gif, image, image folder), a tensor / array
        ``[F, H, W, 3]`` (float in [0, 1] or uint8) or an iterable of frames ``[H, W, 3]``.

        An iterable without ``num_frames`` is gathered as uint8 first (its length is needed for
        the window plan); pass ``num_frames`` to stream it. ``fps`` overrides the clip's rate
        (default for frames without one: 8).

        Raises:
            FileNotFoundError: no such path.
            VideoReadError: an empty or unreadable file, or one without a video stream.
            ValueError: frames of the wrong shape or range, or no frames.
        """
        if isinstance(source, VideoSource):
            return source
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.exists():
                raise FileNotFoundError(f"video {path} does not exist")
            if path.is_file() and path.stat().st_size == 0:
                raise VideoReadError(f"{path} is empty (0 bytes)")
            if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES | {".gif", ".webp"}:
                src = _ImageSource(path)
            else:
                src = _AVSource(path)
            if fps is not None:
                src.fps = float(fps)
            return src
        if isinstance(source, (torch.Tensor, np.ndarray)):
            return _TensorSource(source, 8.0 if fps is None else fps)
        if num_frames is None:
            frames = [_as_uint8_frame(f) for f in source]
            return _TensorSource(frames, 8.0 if fps is None else fps)
        return _IterSource(iter(source), int(num_frames), 8.0 if fps is None else fps)

    # -- reading -----------------------------------------------------------------------------------

    def frames(self, indices: Iterable[int]) -> Iterator[Tuple[int, torch.Tensor]]:
        """Decode forward and yield ``(index, frame)`` for the wanted indices (ascending; a repeat
        yields the same frame again), each frame ``[H, W, 3]`` upright: uint8 from files, float32
        in [0, 1] from float tensors (kept exact). Only the frame being yielded is held.

        Raises:
            VideoReadError: the stream ends or breaks before the last wanted frame.
            ValueError: indices not ascending or outside the clip.
        """
        wanted = list(indices)
        if any(b < a for a, b in zip(wanted, wanted[1:])):
            raise ValueError("frame indices must be ascending")
        if wanted and not (0 <= wanted[0] and wanted[-1] < self.num_frames):
            raise ValueError(f"frame indices {wanted[0]}..{wanted[-1]} are outside the clip's {self.num_frames} frames")
        if not wanted:
            return
        pos = 0
        for i, frame in self._decode(wanted[-1]):
            while pos < len(wanted) and wanted[pos] == i:
                yield i, frame
                pos += 1
            if pos == len(wanted):
                return
            del frame
        if pos < len(wanted):
            raise VideoReadError(f"{self.name} ended or broke after fewer frames than it declared: frame {wanted[pos]} "
                                 f"of {self.num_frames} could not be decoded; is the file complete?")

    def _decode(self, last: int) -> Iterator[Tuple[int, torch.Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_all(self) -> Tuple[torch.Tensor, float]:
        """The whole clip ``[F, H, W, 3]`` float32 in [0, 1] and the fps (short clips only)."""
        frames = [f if f.is_floating_point() else f.float() / 255.0 for _, f in self.frames(range(self.num_frames))]
        return torch.stack(frames), self.fps


class _TensorSource(VideoSource):
    def __init__(self, frames, fps: float):
        if isinstance(frames, list):
            if not frames:
                raise ValueError("no frames: the clip is empty")
            self._frames = frames
            h, w = frames[0].shape[:2]
            if any(tuple(f.shape[:2]) != (h, w) for f in frames):
                raise ValueError("the frames differ in size; resize them to one size")
            n = len(frames)
        else:
            t = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
            if t.ndim == 3 and t.shape[-1] in (1, 3, 4):
                raise ValueError(f"frames must be [F, H, W, 3]; got one frame {tuple(t.shape)}: add the frame axis, "
                                 "e.g. frames[None]")
            if t.ndim != 4 or t.shape[-1] not in (1, 2, 3, 4):
                raise ValueError(f"frames must be [F, H, W, 3], got shape {tuple(t.shape)}")
            if t.shape[0] == 0:
                raise ValueError("no frames: the clip is empty ([0, H, W, 3])")
            if t.dtype != torch.uint8:
                if not t.is_floating_point():
                    raise ValueError(f"frames must be float in [0, 1] or uint8 0-255, got {t.dtype}")
                lo, hi = float(t.min()), float(t.max())
                if lo < -1e-3 or hi > 1 + 1e-3:
                    raise ValueError("float frames must be in [0, 1]; divide 0-255 video by 255 first "
                                     f"(got range [{lo:.3g}, {hi:.3g}])")
            self._frames = t
            n, h, w = t.shape[:3]
        super().__init__(n, fps, h, w)

    def _decode(self, last):
        for i in range(last + 1):
            f = self._frames[i]
            if isinstance(f, torch.Tensor) and f.ndim == 3 and f.shape[-1] == 3:
                yield i, f if f.dtype == torch.uint8 else f.float()  # float frames stay exact
            else:
                yield i, _as_uint8_frame(f)


class _IterSource(VideoSource):
    def __init__(self, it, num_frames: int, fps: float):
        self._it = it
        first = next(self._it, None)
        if first is None:
            raise ValueError("no frames: the iterator is empty")
        self._first = _as_uint8_frame(first)
        super().__init__(num_frames, fps, *self._first.shape[:2])

    def _decode(self, last):
        if self._first is None:
            raise ValueError("an iterator of frames can be read once")
        first, self._first = self._first, None
        yield 0, first
        for i, f in enumerate(self._it, start=1):
            yield i, _as_uint8_frame(f)
            if i >= last:
                return


class _ImageSource(VideoSource):
    """An image folder (sorted names), one image, or an animated webp/gif, read lazily."""

    def __init__(self, path: Path):
        from PIL import Image, ImageSequence

        self.path = path
        if path.is_dir():
            self._files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise VideoReadError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            first = self._read(self._files[0])
            super().__init__(len(self._files), 8.0, *first.shape[:2], name=str(path))
            return
        self._files = None
        try:
            with Image.open(path) as im:
                n, durations, size = 0, [], im.size
                for frame in ImageSequence.Iterator(im):
                    n += 1
                    durations.append(frame.info.get("duration") or 125)
        except Exception as err:  # noqa: BLE001 - Pillow raises many error types for bad files
            raise VideoReadError(f"cannot decode {path}: {err}") from None
        fps = 1000.0 / float(np.mean(durations)) if n > 1 else 8.0
        super().__init__(n, fps, size[1], size[0], name=str(path))

    @staticmethod
    def _read(p: Path) -> np.ndarray:
        import imageio.v3 as iio

        return _rgb(iio.imread(p))

    def _decode(self, last):
        if self._files is not None:
            for i in range(last + 1):
                img = self._read(self._files[i])
                if img.shape[:2] != (self.height, self.width):
                    raise VideoReadError(f"the images in {self.path} differ in size ({self._files[i].name} is "
                                         f"{img.shape[1]}x{img.shape[0]}); resize them to one size")
                yield i, torch.from_numpy(np.ascontiguousarray(img))
            return
        from PIL import Image, ImageSequence

        with Image.open(self.path) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                yield i, torch.from_numpy(np.asarray(frame.convert("RGB")).copy())
                if i >= last:
                    return


class _AVSource(VideoSource):
    """A container read with PyAV: packets are counted (no decoding) when opened."""

    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise VideoReadError(f"{path} has no video stream")
                stream = container.streams.video[0]
                nominal = float(stream.average_rate or stream.guessed_rate or 8.0)
                n, lo, hi = 0, None, None
                for packet in container.demux(stream):
                    if packet.size == 0:  # the flush packet
                        continue
                    n += 1
                    if packet.pts is not None:
                        lo = packet.pts if lo is None else min(lo, packet.pts)
                        hi = packet.pts if hi is None else max(hi, packet.pts)
                width, height = stream.codec_context.width, stream.codec_context.height
                time_base = stream.time_base
                declared = int(stream.frames or 0)  # the index's count (mp4), else from the header's duration
                if not declared and container.duration and nominal:
                    declared = int(round(container.duration / 1_000_000 * nominal))
                rotation = 0
                if n:
                    container.seek(0)
                    frame = next(container.decode(stream), None)
                    rotation = int(round(getattr(frame, "rotation", 0) or 0)) if frame is not None else 0
        except VideoReadError:
            raise
        except Exception as err:  # noqa: BLE001 - PyAV raises many error types for bad files
            raise VideoReadError(f"cannot decode {path}: {err}; is it a complete video file?") from None
        if n == 0:
            raise VideoReadError(f"{path} has no decodable frames")
        if declared and n < declared - 1:
            raise VideoReadError(f"{path} ends after {n} of the {declared} frames its header declares; is the file "
                                 "complete? (re-download or re-export it)")
        fps = nominal
        if n > 1 and lo is not None and hi is not None and hi > lo and time_base:
            fps = (n - 1) / float((hi - lo) * Fraction(time_base))
        # PyAV's rotation is the display matrix's angle (counter-clockwise); turning the stored frame
        # clockwise by it shows it upright, and np.rot90(k) turns counter-clockwise by k quarters
        self._quarter_turns = (rotation // 90) % 4
        if self._quarter_turns % 2:
            width, height = height, width
        super().__init__(n, fps, height, width, name=str(path), rotation=(-rotation) % 360)

    def _decode(self, last):
        import av

        i = -1
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    i += 1
                    img = frame.to_ndarray(format="rgb24")
                    if self._quarter_turns:
                        img = np.rot90(img, self._quarter_turns)
                    yield i, torch.from_numpy(np.ascontiguousarray(img))
                    if i >= last:
                        return
        except av.error.FFmpegError as err:
            raise VideoReadError(f"{self.path} broke after frame {i} of {self.num_frames}: {err}; "
                                 "is the file complete?") from None


# ---------------------------------------------------------------------------------------------
# values, window by window


class ValuesWriter:
    """Write a values file window by window (format in :mod:`unity_core.io.values`).

    Chunks are given at the model's size; while the clip's values at the source size stay under
    ``stream_bytes`` they are gathered and written as today's single ``values`` entry at the
    source size (upsampled by :func:`unity_core.video.windows.to_source_size`); past it, the file
    switches to streamed chunks ``values_000000``, ``values_000012``, ... (named by their first
    frame) at the model's size, with ``source_size`` and ``model_size`` entries. The file is
    written under a temporary name and published on :meth:`close` (never replacing a file;
    :meth:`abort` leaves nothing).

    Args:
        path: wanted name, ending in ``.npz``.
        modality: the release's modality name.
        num_frames: the clip's frame count; model_hw / source_hw: (height, width) pairs.
        fps: stored as ``fps``.
    """

    def __init__(self, path: PathLike, modality: str, num_frames: int, model_hw: Sequence[int],
                 source_hw: Sequence[int], fps: float, stream_bytes: int = 256 << 20):
        from unity_core.constants import check_release_modality
        from unity_core.io.output import AtomicOutput, check_output_suffix

        self.wanted = check_output_suffix(path, (".npz",), "values file")
        self.modality = check_release_modality(modality)
        self.num_frames, self.fps = int(num_frames), float(fps)
        self.model_hw, self.source_hw = tuple(int(v) for v in model_hw), tuple(int(v) for v in source_hw)
        self.stream_bytes = int(stream_bytes)
        self._out = AtomicOutput(self.wanted)
        self._zip: Optional[zipfile.ZipFile] = None
        self._gathered: List[Tuple[int, np.ndarray]] = []
        self._bytes = 0
        self.path: Optional[Path] = None
        self.streamed = False

    def _source_bytes(self, chunk: np.ndarray) -> int:
        scale = (self.source_hw[0] * self.source_hw[1]) / max(1, self.model_hw[0] * self.model_hw[1])
        return int(chunk.nbytes * (1 if self.modality == "skeleton" else scale))

    def _entry(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)

    def _start_stream(self) -> None:
        self._zip = zipfile.ZipFile(self._out.tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self.streamed = True
        for start, chunk in self._gathered:
            self._entry(f"values_{start:06d}", chunk)
        self._gathered = []

    def add(self, start: int, values) -> None:
        """Values of output frames ``start, start + 1, ...`` at the model's size."""
        chunk = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        if self._zip is None:
            self._gathered.append((int(start), chunk))
            self._bytes += self._source_bytes(chunk)
            if self._bytes > self.stream_bytes:
                self._start_stream()
            return
        self._entry(f"values_{int(start):06d}", chunk)

    def close(self, path: Optional[PathLike] = None) -> Path:
        """Finish the file and publish it (under ``path`` if given, e.g. the video's final name
        with ``.npz``; else the name asked for); returns the name written."""
        self.finish()
        return self.publish(path)

    def publish(self, path: Optional[PathLike] = None) -> Path:
        """Publish a finished file (:meth:`finish`) without replacing anything; returns its name."""
        from unity_core.io.output import publish

        self.path = publish(self._out.tmp, self.wanted if path is None else path)
        return self.path

    def finish(self) -> None:
        """Write the last entries; the file stays under its temporary name."""
        from unity_core.video.windows import to_source_size

        if self._zip is None:
            if not self._gathered:
                self.abort()
                raise ValueError("no values were written")
            whole = np.concatenate([c for _, c in self._gathered])
            whole = to_source_size(self.modality, torch.from_numpy(whole), self.model_hw, self.source_hw)
            with open(self._out.tmp, "wb") as fh:
                np.savez_compressed(fh, values=whole.numpy(), modality=np.array(self.modality), fps=np.array(self.fps))
        else:
            for name, array in (("modality", np.array(self.modality)), ("fps", np.array(self.fps)),
                                ("source_size", np.array(self.source_hw)), ("model_size", np.array(self.model_hw)),
                                ("num_frames", np.array(self.num_frames))):
                self._entry(name, array)
            self._zip.close()
            self._zip = None

    def abort(self) -> None:
        """Stop and remove the temporary file."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self._out.abort()


__all__ = ["ValuesWriter", "VideoSource"]
