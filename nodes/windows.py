"""Whole clips of any length in ComfyUI: estimation (video2flow) and controllable generation
(flow2video) of an IMAGE batch, window by window, each window sampled by core.

Why not core's context windows. ComfyUI's ``WanContextWindowsManual`` (``comfy/context_windows.py``)
does run on our packed latent ``[B, C, F, H, 2W]`` with the task node's noise mask (it cuts the
latent's frame axis, the clean stream stays clean: ``tests/test_comfy_windows.py``), but it is not
what a video estimator needs:

- it cuts *latent* frames of one whole-clip latent, so every window but the first starts on a
  latent frame that encodes four frames, where the model (and the causal Wan VAE's first latent)
  was trained on a clip whose first latent encodes one frame; encoded on its own, the same
  17 frames give a different latent (the test measures the difference);
- it fuses the windows by averaging their predictions at every step (flat, pyramid or
  overlap-linear weights): a window never receives the frames the previous window produced as
  known frames, and a relative modality (depth) gets no per-window scale and shift;
- the whole clip is encoded and decoded in one pass, so memory grows with the clip and the
  default's decoder, trained on 17- and 33-frame clips, runs over the whole length.

So :class:`UnityVideoWindowedSampling` cuts the *frames*: the library's window plan
(:func:`unity_core.video.plan_windows`, windows of the model's native length, the last aligned to
the clip's end), each window resized with its aspect kept (:func:`unity_core.video.model_size`),
encoded, built into a task latent by UnityVideo Task, sampled by core (``CFGGuider`` or the
UnityVideo Control Guider, with the SAMPLER and SIGMAS of core nodes, on the MODEL as patched,
so LoRA, EasyCache, ModelSamplingSD3 ... apply), split and decoded; the frames a window shares
with the previous one are known from what the previous window produced (noised to each step's
level by default, as the library measured best; or clean, through the noise mask); the library stitches the values (:class:`unity_core.video.Stitcher`: scale and shift
for depth, labels re-matched for segmentation, ...) and takes them back to the source size
(:func:`unity_core.video.to_source_size`). Progress counts every step of every window; Cancel
stops between windows (and between steps, through core's progress hook).
"""

from __future__ import annotations

import logging
from typing import Optional, Tuple

import torch
from comfy_api.latest import io

from unity_core import modalities as M
from unity_core.constants import INFERENCE_DEFAULTS, resolve_modality

from .common import CODEC, MODEL_DEFAULTS, TEXT_ENCODER, VALUES, modality_input

#: The embedded default's window (its frame count) and short side, and the release's (the 5B's)
_WINDOW, _SHORT_SIDE = MODEL_DEFAULTS["num_frames"], min(MODEL_DEFAULTS["height"], MODEL_DEFAULTS["width"])
_WINDOW_5B, _SHORT_SIDE_5B = INFERENCE_DEFAULTS["num_frames"], min(INFERENCE_DEFAULTS["height"], INFERENCE_DEFAULTS["width"])
from .schema import UnityNode, out

#: The tasks that read a video and produce the other stream, window by window.
WINDOW_TASKS = ["video2flow", "flow2video"]
log = logging.getLogger(__name__)


class _FixedText:
    """A text encoder that returns one encoded prompt: the modality prompt, encoded once for the
    first window and reused by the later ones (UMT5-XXL runs once per clip, not once per window)."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens = tokens

    def encode(self, prompts):
        return self.tokens


def _coders(codec, vae, node: str):
    """(encode frames [F, H, W, 3] -> latent [1, C, f, h, w], decode latent -> frames, spatial and
    temporal ratio) through the nodes they stand for: UnityVideo Encode / Decode (the default's
    codec) or core's VAE Encode / VAE Decode (the Wan2.2 VAE).

    Raises:
        ValueError: not exactly one of codec and vae.
    """
    if (codec is None) == (vae is None):
        state = "both are" if codec is not None else "neither is"
        raise ValueError(f"{node} needs exactly one of 'codec' (UnityVideo Loader, the embedded default) and 'vae' "
                         f"(VAELoader with the Wan2.2 VAE, for a 5B checkpoint); {state} connected")
    if codec is not None:
        from .codec import UnityVideoDecode, UnityVideoEncode

        return (lambda f: UnityVideoEncode.execute(codec, f).args[0]["samples"],
                lambda z: UnityVideoDecode.execute(codec, {"samples": z}).args[0],
                int(codec.spatial_ratio), int(codec.temporal_ratio))
    import nodes

    def decode(z):
        images = nodes.VAEDecode().decode(vae, {"samples": z})[0]
        return images.reshape(-1, *images.shape[-3:]) if images.ndim == 5 else images

    return (lambda f: nodes.VAEEncode().encode(vae, f[..., :3])[0]["samples"], decode,
            int(vae.spacial_compression_encode()), int(vae.temporal_compression_encode()))


def _with_known_frames(model, known: torch.Tensor, produced_right: bool, seed: int):
    """A clone of the MODEL whose every transformer call sees the produced stream's first latent
    frames as ``known`` noised to the call's level (``(1 - sigma) known + sigma noise``, the noise
    drawn once from ``seed + 1`` as the library draws it): :class:`unity_core.video.KnownFrames`
    in core's ``WrappersMP.DIFFUSION_MODEL`` wrapper, on the packed latent's produced half."""
    import comfy.patcher_extension

    from unity_core.video import KnownFrames

    frames = KnownFrames(None, known, "modality" if produced_right else "rgb", "noised",
                         torch.Generator().manual_seed(int(seed) + 1))

    def wrapper(executor, x, timestep, context, unity, transformer_options):
        w = x.shape[-1] // 2
        frames.known, frames.noise = frames.known.to(x.device), frames.noise.to(x.device)
        if produced_right:
            x = torch.cat([x[..., :w], frames._replace(x[..., w:], timestep)], -1)
        else:
            x = torch.cat([frames._replace(x[..., :w], timestep), x[..., w:]], -1)
        return executor(x, timestep, context, unity, transformer_options)

    patched = model.clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "unityvideo_known_frames", wrapper)
    return patched


def _previewing_progress(model, total: int):
    """A sampler callback per window, driving one ComfyUI progress bar over every step of every
    window (``total`` steps in all) with core's latent preview of the packed latent."""
    import comfy.utils
    import latent_preview

    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    bar = comfy.utils.ProgressBar(total)
    done = [0]

    def for_window():
        base = done[0]

        def callback(step, x0, x, total_steps):
            image = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer else None
            done[0] = base + step + 1
            bar.update_absolute(done[0], total, image)

        return callback

    return for_window


def sample_clip(model, positive, negative, frames: torch.Tensor, task: str, modality: str, sampler, sigmas,
                seed: int, cfg: float = 1.0, control_cfg: float = 1.0, window: int = _WINDOW, overlap: Optional[int] = None,
                short_side: int = _SHORT_SIDE, codec=None, text_encoder=None, vae=None, clip=None,
                node: str = "UnityVideo Windowed Sampling", conditioning: str = "noised") -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Estimation or controllable generation of a whole IMAGE batch, window by window, each window
    sampled by core (see the module docstring).

    Args:
        model: the UnityVideo MODEL (as patched: LoRA, EasyCache ... apply to every window).
        positive, negative: the prompts' CONDITIONING (UnityVideo Text Encode or CLIPTextEncode).
        frames: ``[F, H, W, 3]`` in [0, 1], any F >= 1 and any size: the RGB video (video2flow) or
            the control's visualisation (flow2video).
        task: ``video2flow`` or ``flow2video``.
        modality: the auxiliary modality.
        sampler, sigmas: core's SAMPLER and SIGMAS (KSamplerSelect, BasicScheduler); the same for
            every window.
        seed: the noise seed; every window draws its noise from it as core's RandomNoise does.
        cfg, control_cfg: CFG on the prompt; control guidance (flow2video, 1 = off).
        window, overlap: frames per window (4k+1: 17 for the default, 33 for the 5B) and frames
            shared by consecutive windows (None or -1: the library's default,
            :func:`unity_core.video.clip.default_overlap`: 5 for 17, 9 for 33).
        short_side: the model's short side in pixels (64 for the default, 256 for the 5B); the
            long side keeps the aspect on the latent grid.
        codec, text_encoder: the default's built-in codec and MiniLM (UnityVideo Loader); or
        vae, clip: core's Wan2.2 VAE and UMT5-XXL, for a 5B checkpoint.
        conditioning: how a window sees the frames it shares with the previous one, as the
            library's :func:`unity_core.video.clip.run_clip` (measured there): ``noised`` (the
            default: the previous output noised to each step's level with fixed noise, through
            :class:`unity_core.video.KnownFrames` in a core diffusion-model wrapper), ``clean``
            (the previous output clean, through the noise mask, as the conditioning stream) or
            ``none`` (independent windows, blended only).

    Returns:
        ``(frames, values)``: the produced stream at the source size ``[F, H, W, 3]`` in [0, 1]
        (the modality's visualisation of the stitched values, or the RGB video), and for
        video2flow the stitched values at the source size (depth ``[F, H, W]``, flow
        ``[F, H, W, 2]`` in source pixels, labels, keypoints, IUV; None for flow2video).

    Raises:
        ValueError: frames that are not ``[F, H, W, 3]``; a task other than the two; not exactly
            one of codec / vae or of text_encoder / clip; a window or overlap the plan refuses;
            control_cfg != 1 on estimation. All before any sampling.
        comfy.model_management.InterruptProcessingException: Cancel, between windows or steps.
    """
    import comfy.model_management
    import comfy.sample
    import comfy.samplers

    from unity_core import video as V

    from . import host
    from .conditioning import CLEAN_KEY, UnityVideoSplit, UnityVideoTask
    from .model import COND_MODALITY_CONTEXT
    from .sampling import ControlGuider

    if task not in WINDOW_TASKS:
        raise ValueError(f"{node}: task must be one of {WINDOW_TASKS} (text2all generates without a video), got {task!r}")
    if frames is None or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"{node}: frames must be an IMAGE batch [F, H, W, 3], got "
                         f"{None if frames is None else tuple(frames.shape)}")
    if (text_encoder is None) == (clip is None):
        raise ValueError(f"{node} needs exactly one of 'text_encoder' (UnityVideo Loader) and 'clip' (CLIPLoader type "
                         "wan with UMT5-XXL) to encode the modality prompt")
    from unity_core.sampling.sampler import check_control_cfg

    check_control_cfg(task, control_cfg)
    from unity_core.video.clip import CONDITIONING

    if conditioning not in CONDITIONING:
        raise ValueError(f"{node}: conditioning must be one of {list(CONDITIONING)}, got {conditioning!r}")
    name = resolve_modality(modality)
    encode, decode, spatial, temporal = _coders(codec, vae, node)
    patch = int(host.unity_transformer(model, node).config["patch_size"][-1])
    source_hw = (int(frames.shape[1]), int(frames.shape[2]))
    model_hw = V.model_size(*source_hw, short_side=short_side, multiple=spatial * patch)
    if overlap is None or overlap < 0:
        from unity_core.video.clip import default_overlap

        overlap = default_overlap(window, temporal)
    plan = V.plan_windows(int(frames.shape[0]), window, overlap, temporal_ratio=temporal,
                          condition=conditioning != "none")
    produced_right = task == "video2flow"  # the produced stream's half of the packed latent
    steps = int(sigmas.shape[-1]) - 1
    progress = _previewing_progress(model, steps * len(plan.windows))
    state = {"text": text_encoder, "clip": clip}
    log.info("%s: %d frames %dx%d -> %d windows of %d at %dx%d", node, plan.num_frames, source_hw[1], source_hw[0],
             len(plan.windows), plan.window, model_hw[1], model_hw[0])
    if plan.padded:
        log.warning("%s: %d frames are fewer than one window of %d: padded with %d copies of the last frame, trimmed "
                    "from the output", node, plan.num_frames, plan.window, plan.padded)

    def frames_for(w):
        return V.resize_frames(frames[plan.source_frames(w)], model_hw)

    def sample_window(w, given, known):
        comfy.model_management.throw_exception_if_processing_interrupted()  # Cancel between windows
        latent_in = {"samples": encode(given)}
        stream = {"rgb_latent": latent_in} if produced_right else {"modality_latent": latent_in}
        pos, neg, latent = UnityVideoTask.execute(positive, negative, task, name, clip=state["clip"],
                                                  text_encoder=state["text"], **stream).args
        if state["clip"] is not None or not isinstance(state["text"], _FixedText):
            state["clip"], state["text"] = None, _FixedText(pos[0][1][COND_MODALITY_CONTEXT])
        samples, mask = latent["samples"].clone(), latent["noise_mask"].clone()
        width = samples.shape[-1] // 2
        half = slice(width, None) if produced_right else slice(None, width)
        patched, z = model, None
        if known is not None and conditioning == "clean":  # the shared frames enter clean, through the mask
            z = encode(known).to(samples)
            samples[:, :, :z.shape[2], :, half] = z
            mask[:, :, :z.shape[2], :, half] = 0.0
        elif known is not None:  # noised to each step's level, as the library's KnownFrames does
            z = encode(known).to(samples)
            patched = _with_known_frames(model, z, produced_right, seed)
        if control_cfg != 1.0:
            guider = ControlGuider(patched)
            guider.set_conds(pos, neg)
            guider.set_control(cfg, control_cfg)
        else:
            guider = comfy.samplers.CFGGuider(patched)
            guider.set_conds(pos, neg)
            guider.set_cfg(cfg)
        samples = comfy.sample.fix_empty_latent_channels(model, samples)
        noise = comfy.sample.prepare_noise(samples, seed)
        result = guider.sample(noise, samples, sampler, sigmas, denoise_mask=mask, callback=progress(), seed=seed)
        result = result.to(comfy.model_management.intermediate_device())
        if z is not None:  # the known frames are what the previous window produced
            result[:, :, :z.shape[2], :, half] = z.to(result)
        rgb, mod = UnityVideoSplit.execute({"samples": result, CLEAN_KEY: latent[CLEAN_KEY]}).args
        return decode((mod if produced_right else rgb)["samples"])

    kind = name if produced_right else "rgb"
    chunks = []
    for w, values, _ in V.run_windows(plan, frames_for, sample_window, kind):
        chunks.append(V.to_source_size(kind, values, model_hw, source_hw))
        log.info("%s: window %d/%d done (frames %d-%d)", node, w.index + 1, len(plan.windows), *w.emit)
    values = torch.cat([torch.as_tensor(c) for c in chunks])
    if not produced_right:
        return values.float().clamp(0, 1), None
    return M.encode(name, values, size=source_hw), values


class UnityVideoWindowedSampling(UnityNode):
    """Estimation (video2flow) or controllable generation (flow2video) of a whole IMAGE batch of any
    length and size: the frames are cut into overlapping windows of the model's native length,
    each resized with its aspect kept and sampled by core (the SAMPLER and SIGMAS given, CFG or
    the control guider); later windows see the frames they share with the previous one as known,
    and the values are stitched (depth: scale and shift on the overlap) and returned at the
    source size with every frame. Output: the modality's visualisation and values (video2flow),
    or the RGB video (flow2video)."""

    DISPLAY = "UnityVideo Windowed Sampling"
    GROUP = "sampling"
    INPUTS = [
        io.Model.Input("model", tooltip="The UnityVideo MODEL (from UnityVideo Loader, patches included)."),
        io.Conditioning.Input("positive", tooltip="Content prompt (UnityVideo Text Encode, or CLIPTextEncode with UMT5-XXL)."),
        io.Conditioning.Input("negative", tooltip="Negative prompt, used when cfg > 1."),
        io.Image.Input("frames", tooltip="The whole clip [F, H, W, 3], any length and size: RGB for video2flow, the "
                                         "control's visualisation for flow2video."),
        io.Combo.Input("task", options=WINDOW_TASKS, default="video2flow",
                       tooltip="video2flow: RGB -> modality (estimation); flow2video: modality -> RGB (control)."),
        modality_input(),
        io.Sampler.Input("sampler", tooltip="Core SAMPLER (KSamplerSelect; euler is the release's)."),
        io.Sigmas.Input("sigmas", tooltip="Core SIGMAS (BasicScheduler on the MODEL; simple, 20 steps is the release's)."),
        io.Int.Input("noise_seed", default=MODEL_DEFAULTS["seed"], min=0, max=2**63 - 1, control_after_generate=True,
                     tooltip="Noise seed; every window draws its noise from it as RandomNoise does."),
        io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.1, tooltip="CFG on the prompt (1 = off, the release)."),
        io.Float.Input("control_cfg", default=1.0, min=1.0, max=30.0, step=0.1,
                       tooltip="Control guidance for flow2video (1 = off; the default model follows depth best at 8)."),
        io.Int.Input("window", default=_WINDOW, min=5, max=1025, step=4,
                     tooltip=f"Frames per window, 4k+1: the model's native length ({_WINDOW} for the default, {_WINDOW_5B} "
                             "for the 5B)."),
        io.Int.Input("overlap", default=-1, min=-1, max=1024,
                     tooltip="Frames shared by consecutive windows, conditioned on and blended (-1: a quarter of the "
                             "window in whole latent frames, 5 for 17, 9 for 33)."),
        io.Combo.Input("conditioning", options=["noised", "clean", "none"], default="noised",
                       tooltip="How a window sees the frames it shares with the previous one: noised (the previous "
                               "output noised to each step's level; measured best), clean (as a known frame), none "
                               "(independent windows, blended)."),
        io.Int.Input("short_side", default=_SHORT_SIDE, min=16, max=4096, step=16,
                     tooltip=f"Short side the model sees, in pixels ({_SHORT_SIDE} for the default, {_SHORT_SIDE_5B} for "
                             "the 5B); the long side keeps the aspect. Outputs come back at the frames' own size."),
        CODEC.Input("codec", optional=True, tooltip="The built-in codec (UnityVideo Loader, the embedded default)."),
        TEXT_ENCODER.Input("text_encoder", optional=True,
                           tooltip="The built-in text encoder (UnityVideo Loader): encodes the modality prompt."),
        io.Vae.Input("vae", optional=True, tooltip="Core VAE (the Wan2.2 VAE) for a 5B checkpoint, instead of codec."),
        io.Clip.Input("clip", optional=True, tooltip="Core CLIP (type wan, UMT5-XXL) for a 5B checkpoint, instead of "
                                                     "text_encoder."),
    ]
    OUTPUTS = [out(io.Image, "frames", "Every frame at the source size [F, H, W, 3]: the modality's visualisation "
                                       "(video2flow) or the generated RGB video (flow2video)."),
               out(VALUES, "values", "video2flow: the stitched values at the source size (depth, flow in source "
                                     "pixels, labels, keypoints, IUV); flow2video: None.")]

    @classmethod
    def execute(cls, model, positive, negative, frames, task, modality, sampler, sigmas, noise_seed, cfg,
                control_cfg, window, overlap, short_side, codec=None, text_encoder=None, vae=None,
                clip=None, conditioning="noised") -> io.NodeOutput:
        vis, values = sample_clip(model, positive, negative, frames, task, modality, sampler, sigmas, noise_seed, cfg,
                                  control_cfg, window, overlap, short_side, codec, text_encoder, vae, clip, cls.DISPLAY,
                                  conditioning)
        return io.NodeOutput(vis, None if values is None else {"modality": resolve_modality(modality),
                                                                "values": values})
