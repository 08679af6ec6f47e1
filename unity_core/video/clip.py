"""Whole-clip estimation and controllable generation with a :class:`UnityVideoPipeline`.

:func:`run_clip` streams a clip (:class:`unity_core.io.stream.VideoSource`) through the window
machinery of :mod:`unity_core.video.windows`: frames are decoded forward and shrunk to the
model's size one at a time, each window is sampled by the pipeline with its first frames
conditioned on the previous window's output, the values are stitched, taken back to the
source resolution and either gathered (returned) or written window by window (an H.264 video
and a values file, both published atomically when complete; nothing is left under the final
names when the run fails or is interrupted).

Defaults (chosen by ``bench/long_video.py`` on a 129-frame synthworld clip, figures in the
README): windows of the model's native length (``num_frames`` of the pipeline: 17 for the
default, 33 for the 5B), an overlap of :func:`default_overlap` frames (5 of 17 gave depth AbsRel
0.479 against 0.495 for 1 and 0.529 for 9, with clean conditioning), and
``conditioning="noised"`` (AbsRel 0.458 and seam / in-window temporal error 0.81, against 0.479
and 1.01 clean; independent windows: 0.465 and 8.96). DepthCrafter's latent initialisation is
not offered: a flow-matching sampler starts at sigma 1, where an initialised latent is pure
noise, so it would only act through a truncated schedule; the noised known frames are the same
idea applied at every step.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch

from unity_core.constants import TEMPORAL_RATIO
from unity_core.video.windows import (
    KnownFrames, Window, WindowPlan, model_size, plan_windows, resize_frames, run_windows, select_range,
    to_source_size,
)

PathLike = Union[str, Path]
#: How a window is conditioned on the previous window's output for the frames they share.
CONDITIONING = ("clean", "noised", "none")


def default_overlap(window: int, temporal_ratio: int = TEMPORAL_RATIO) -> int:
    """The default overlap for a window of ``window`` frames: ``temporal_ratio * k + 1`` closest to
    a quarter of the window (5 for 17 frames, 9 for 33), the ratio DepthCrafter (25 of 110) and
    Video Depth Anything (10 of 32) use, in whole latent frames."""
    k = max(0, round((window - 1) / 4 / temporal_ratio))
    return min(window - 1, temporal_ratio * k + 1)


class _Feeder:
    """Model-size frames of each window from a forward-decoding source; holds only the frames of
    positions the current or a later window still needs (at the model's size, float32)."""

    def __init__(self, source, plan: WindowPlan, hw: Tuple[int, int], keep_source: bool = False,
                 transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        self.plan, self.hw, self.transform = plan, hw, transform
        self._position = {idx: pos for pos, idx in enumerate(plan.source_indices)}  # distinct: a range
        self._iter = source.frames(list(plan.source_indices))
        self._cache: Dict[int, torch.Tensor] = {}
        self.kept = [] if keep_source else None  # source-size uint8 frames, for returned results

    def __call__(self, window: Window) -> torch.Tensor:
        for p in [p for p in self._cache if p < window.start]:
            del self._cache[p]
        for p in window.positions:
            while p not in self._cache:
                idx, frame = next(self._iter)
                pos = self._position[idx]
                if self.kept is not None:
                    self.kept.append(frame)
                self._cache[pos] = resize_frames(frame[None], self.hw)[0]
                del frame
        frames = torch.stack([self._cache[p] for p in window.positions])
        return frames if self.transform is None else self.transform(frames)

def run_clip(pipe, task: str, source, modality: str, prompt: str = "", *, start: int = 0, end: Optional[int] = None,
             stride: int = 1, max_frames: Optional[int] = None, window: Optional[int] = None,
             overlap: Optional[int] = None, size: Optional[Tuple[int, int]] = None, conditioning: str = "noised",
             fps: Optional[float] = None, out: Optional[PathLike] = None, values_out: Optional[PathLike] = None,
             control_out: Optional[PathLike] = None,
             preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, progress: bool = False,
             should_interrupt: Optional[Callable[[], bool]] = None, **sampler):
    """Estimate (``video2flow``) or control (``flow2video``) over a whole clip in windows.

    Args:
        pipe: a :class:`~unity_core.pipeline.UnityVideoPipeline`.
        task: ``video2flow`` (``source`` is RGB) or ``flow2video`` (``source`` is the modality's
            visualisation video, or RGB with ``preprocess``).
        source: a path, a :class:`~unity_core.io.stream.VideoSource`, a tensor / array
            ``[F, H, W, 3]`` (float in [0, 1] or uint8, converted explicitly) or an iterable of frames.
        modality: the release's modality name (:meth:`~unity_core.pipeline.UnityVideoPipeline.estimate`
            and ``control`` resolve aliases and labels before they call this).
        start, end, stride: which source frames (``end`` exclusive; all by default).
        max_frames: at most this many frames (a range check: more than the selection holds is
            an error, never a repeat).
        window: frames per window (default: the pipeline's ``num_frames``); 4k+1.
        overlap: frames shared by consecutive windows (default :func:`default_overlap`).
        size: (height, width) the model sees (default :func:`~unity_core.video.windows.model_size`
            with the pipeline's short side).
        conditioning: ``noised`` (the default: the shared frames' previous output enters the
            produced stream noised to each step's level, as ComfyUI's noise mask does;
            :class:`~unity_core.video.windows.KnownFrames`), ``clean`` (it enters clean, as the
            conditioning stream does) or ``none`` (independent windows, blended only).
        fps: output frame rate (default: the source's, divided by ``stride``).
        out: write the visualisation (estimation) or the RGB (control) video here, window by
            window, instead of returning frames; ``values_out``: the values file (estimation;
            beside ``out`` with the same stem it follows the video's final name);
            ``control_out``: control only, the control video the model saw, at the source size.
        preprocess: control only, ``frames [F, h, w, 3] -> control frames`` run per window at the
            model's size (e.g. :func:`unity_core.preprocess.extract_control` then encode).
        progress: a tqdm bar over frames on stderr (frames done / total, ETA).
        should_interrupt: checked between windows (and by the sampler between steps).
        sampler: ``steps``, ``seed``, ``cfg``, ``scheduler``, ``shift``, ``control_cfg``, ... as
            :func:`unity_core.sampling.sample`; every window uses the same seed.

    Returns:
        :class:`~unity_core.pipeline.PipelineOutput` at the source size with every selected frame:
        ``rgb`` the input (estimation) or generated video, ``modality_frames`` the visualisation
        (estimation: encoded from the stitched values; control: the control the model saw, taken
        back to the source size), ``values`` the stitched values (estimation), ``fps``; with ``out`` the frames and values
        are not kept (``rgb``, ``modality_frames`` and ``values`` are None) and ``info`` holds the
        written paths (``video``, ``values``). ``info`` also has ``num_frames``, ``size``,
        ``model_size``, ``windows``, ``window``, ``overlap``, ``padded`` and ``alignments``.

    Raises:
        ValueError: bad range, window, overlap, size, conditioning or frames (before any sampling);
            FileNotFoundError / VideoReadError: an unreadable source.
        VideoReadError: the clip breaks mid-stream (nothing is left under ``out``).
        SamplingInterrupted, KeyboardInterrupt: cancelled (nothing is left under ``out``).
    """
    from unity_core.constants import check_release_modality, resolve_task
    from unity_core.io.output import atomic_output, check_output_suffix
    from unity_core.io.stream import ValuesWriter
    from unity_core.io.video import VideoEncoder

    task = resolve_task(task)
    if task not in ("video2flow", "flow2video"):
        raise ValueError(f"whole-clip runs are for estimation (video2flow) and control (flow2video), not {task}")
    check_release_modality(modality)
    if conditioning not in CONDITIONING:
        raise ValueError(f"conditioning must be one of {', '.join(CONDITIONING)}, got {conditioning!r}")
    if out is not None:
        out = check_output_suffix(out)
    if values_out is not None:
        values_out = check_output_suffix(values_out, (".npz",), "values file")
    if control_out is not None:
        control_out = check_output_suffix(control_out)
    estimation = task == "video2flow"
    clip = _plan_clip(pipe, source, start=start, end=end, stride=stride, max_frames=max_frames, window=window,
                      overlap=overlap, size=size, conditioning=conditioning, fps=fps)
    plan, hw, source_hw = clip.plan, clip.hw, clip.source_hw
    if plan.padded:
        print(f"{clip.src.name}: {plan.num_frames} frames are fewer than one window of {clip.window}: padded with "
              f"{plan.padded} copies of the last frame, trimmed from the output", file=sys.stderr)

    produced_kind = modality if estimation else "rgb"
    feeder = _Feeder(clip.src, plan, hw, keep_source=out is None and estimation, transform=preprocess)
    sample_window = _window_sampler(pipe, task, modality, prompt, conditioning, sampler)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=plan.num_frames, desc=f"{'estimate' if estimation else 'control'} {modality}", unit="frame",
                   file=sys.stderr)
    values_writer = None
    try:
        with contextlib.ExitStack() as stack:
            encoder = control_encoder = None
            if out is not None:
                video_out = stack.enter_context(atomic_output(out))
                encoder = stack.enter_context(VideoEncoder(video_out.tmp, clip.fps, *source_hw, suffix=out.suffix))
            if control_out is not None:
                ctrl_out = stack.enter_context(atomic_output(control_out))
                control_encoder = stack.enter_context(VideoEncoder(ctrl_out.tmp, clip.fps, *source_hw,
                                                                   suffix=control_out.suffix))
            if estimation and values_out is not None:
                values_writer = ValuesWriter(values_out, modality, plan.num_frames, hw, source_hw, clip.fps)
            sink = _SourceSizeSink(modality if estimation else None, hw, source_hw, encoder, control_encoder)
            inputs = {}

            def frames_for(win: Window) -> torch.Tensor:
                inputs[win.index] = frames = feeder(win)
                return frames

            for win, values, _ in run_windows(plan, frames_for, sample_window, produced_kind,
                                              should_interrupt=should_interrupt):
                lo, hi = win.emit
                if values_writer is not None:
                    values_writer.add(lo, values)
                sink.add(values[: hi - lo], inputs.pop(win.index)[lo - win.start: hi - win.start])
                if bar is not None:
                    bar.update(hi - lo)
            if values_writer is not None:
                values_writer.finish()
        if values_writer is not None:  # named after the video's final name (depth_1.mp4 -> depth_1.npz)
            same_stem = out is not None and Path(values_out).with_suffix("") == out.with_suffix("")
            values_writer.publish(video_out.path.with_suffix(".npz") if same_stem else None)
    except BaseException:
        if values_writer is not None and values_writer.path is None:
            values_writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()

    from unity_core.pipeline import PipelineOutput

    info = {"num_frames": plan.num_frames, "size": source_hw, "model_size": hw, "windows": len(plan.windows),
            "window": clip.window, "overlap": clip.overlap, "padded": plan.padded, "conditioning": conditioning,
            "source_indices": list(plan.source_indices)}
    if out is not None:
        info.update(video=video_out.path, values=values_writer.path if values_writer is not None else None,
                    control=ctrl_out.path if control_out is not None else None)
        return PipelineOutput(None, None, None, modality, clip.fps, info)
    if estimation:
        rgb = None
        if feeder.kept:
            rgb = torch.stack([f if f.is_floating_point() else f.float() / 255.0 for f in feeder.kept[: plan.num_frames]])
        return PipelineOutput(rgb, torch.cat(sink.vis), torch.cat(sink.values), modality, clip.fps, info)
    return PipelineOutput(torch.cat(sink.vis), torch.cat(sink.control), None, modality, clip.fps, info)


@dataclass
class _ClipPlan:
    """What :func:`run_clip` runs: the opened source, its window plan, the model's and the
    source's ``(height, width)``, the window and overlap lengths and the output frame rate."""

    src: Any
    plan: WindowPlan
    window: int
    overlap: int
    hw: Tuple[int, int]
    source_hw: Tuple[int, int]
    fps: float


def _plan_clip(pipe, source, *, start: int, end: Optional[int], stride: int, max_frames: Optional[int],
               window: Optional[int], overlap: Optional[int], size: Optional[Tuple[int, int]], conditioning: str,
               fps: Optional[float]) -> _ClipPlan:
    """Open ``source`` and plan its windows (:func:`run_clip`'s arguments and errors), before any
    sampling."""
    from unity_core.io.stream import VideoSource

    src = VideoSource.open(source)
    sel = select_range(src.num_frames, start, end, stride)
    if max_frames is not None:
        if int(max_frames) < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if int(max_frames) > len(sel):
            raise ValueError(f"{max_frames} frames asked for, but {src.name} holds only {len(sel)} from frame {start} "
                             f"at stride {stride}; ask for at most {len(sel)} (or leave it out for all)")
        sel = sel[: int(max_frames)]
    window = int(window or pipe.defaults["num_frames"])
    temporal = pipe.codec.temporal_ratio if pipe.codec is not None else TEMPORAL_RATIO
    overlap = default_overlap(window, temporal) if overlap is None else int(overlap)
    plan = plan_windows(len(sel), window, overlap, source_indices=sel, temporal_ratio=temporal,
                        condition=conditioning != "none")
    short = min(int(pipe.defaults["height"]), int(pipe.defaults["width"]))
    hw = model_size(src.height, src.width, short_side=short, multiple=16, size=size)
    out_fps = float(fps) if fps is not None else src.fps / max(1, int(stride))
    if not out_fps > 0:
        raise ValueError(f"fps must be positive, got {out_fps}")
    return _ClipPlan(src, plan, window, overlap, hw, (src.height, src.width), out_fps)


class _SourceSizeSink:
    """Takes each window's emitted frames back to the source size, one frame at a time (memory
    follows a frame, not a window), and writes them to the encoders or gathers them.

    Estimation (``modality`` given): the values go to the source size
    (:func:`~unity_core.video.windows.to_source_size`) and are encoded as the modality's
    visualisation; gathered: ``values`` and ``vis``. Control (``modality`` None): the generated RGB
    goes to the source size (``vis``), and so does the control the model saw (``control``), which
    is written to ``control_encoder`` or gathered when there is no ``encoder``.
    """

    def __init__(self, modality: Optional[str], hw: Tuple[int, int], source_hw: Tuple[int, int], encoder=None,
                 control_encoder=None):
        self.modality, self.hw, self.source_hw = modality, hw, source_hw
        self.encoder, self.control_encoder = encoder, control_encoder
        self.values, self.vis, self.control = [], [], []

    def add(self, produced: torch.Tensor, fed: torch.Tensor) -> None:
        """``produced``: the window's emitted values (estimation, the modality's layout) or RGB
        ``[n, h, w, 3]`` at the model's size; ``fed``: the same frames as the model was given."""
        from unity_core import modalities as M

        estimation = self.modality is not None
        for j in range(produced.shape[0]):
            if estimation:
                src_values = to_source_size(self.modality, produced[j:j + 1], self.hw, self.source_hw)
                vis = M.encode(self.modality, src_values, size=self.source_hw)
            else:
                vis = to_source_size("rgb", produced[j:j + 1], self.hw, self.source_hw)
                if self.control_encoder is not None or self.encoder is None:
                    fed_src = to_source_size("rgb", fed[j:j + 1], self.hw, self.source_hw)
                    if self.control_encoder is not None:
                        self.control_encoder(fed_src)
                    else:
                        self.control.append(fed_src)
            if self.encoder is not None:
                self.encoder(vis)
            else:
                self.vis.append(vis)
                if estimation:
                    self.values.append(src_values)


def _window_sampler(pipe, task: str, modality: str, prompt: str, conditioning: str, sampler: Dict[str, Any]):
    """``sample_window(window, frames, known)`` for :func:`run_windows` on a pipeline."""
    stream = "modality" if task == "video2flow" else "rgb"

    def sample_window(window: Window, frames: torch.Tensor, known: Optional[torch.Tensor]) -> torch.Tensor:
        latent = pipe.encode_frames(frames)
        model = None
        if known is not None and conditioning != "none":
            known_latent = pipe.encode_frames(known)
            seed = sampler.get("seed", pipe.defaults.get("seed"))
            gen = torch.Generator().manual_seed(int(seed) + 1) if seed is not None else None
            model = KnownFrames(pipe.transformer, known_latent, stream, conditioning, gen)
        kw = dict(sampler)
        if task == "video2flow":
            res = pipe._sample(task, modality, prompt, rgb_latent=latent, model=model, **kw)
            produced = res.modality_latent
        else:
            res = pipe._sample(task, modality, prompt, modality_latent=latent, model=model, **kw)
            produced = res.rgb_latent
        if model is not None:
            produced = model.apply(produced)
        return pipe.decode_latent(produced)

    return sample_window


__all__ = ["CONDITIONING", "default_overlap", "run_clip"]
