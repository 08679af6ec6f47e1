"""``UnityVideoPipeline``: the front door of the library (diffusers style).

Bundles the transformer, the latent codec and the text encoder, and runs each UnityVideo task
in one call:

>>> pipe = UnityVideoPipeline.from_pretrained("default")          # the embedded model, offline
>>> out = pipe.estimate(frames, "depth", steps=20, seed=42)         # RGB -> modality
>>> out = pipe.generate("a person walks", "depth", seed=0)          # text -> RGB + modality
>>> out = pipe.control(control_frames, "depth", "a person walks")  # modality -> RGB
>>> out = pipe.estimate(frames, "depth", cache="first-block:0.05")  # with a diffusers step cache

Frames are ComfyUI-style ``[F, H, W, 3]`` float in [0, 1]. A pipeline folder holds
``pipeline.json`` (file names, text encoder, defaults, and optionally ``codec_window``: the
longest clip the codec encodes in one pass, see :meth:`LatentCodec.posterior`),
``transformer.safetensors`` and a ``codec/`` folder; the 5B is used the same way from a folder
that points at the release's checkpoint, the Wan2.2 VAE (diffusers layout) and UMT5-XXL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import torch

from unity_core.codec import LatentCodec, frames_to_video, video_to_frames
from unity_core.constants import DEFAULT_DIR, MODALITY_PROMPTS, pipeline_defaults, resolve_modality, resolve_task
from unity_core.model import UnityVideoTransformer, load_transformer
from unity_core.sampling import sample
from unity_core.sampling.caches import enabled_cache

if TYPE_CHECKING:
    from unity_core.explore.long_video import ExploreResult

PathLike = Union[str, Path]


@dataclass
class PipelineOutput:
    """What a task returns.

    Attributes:
        rgb: ``[F, H, W, 3]`` in [0, 1] (the input video for estimation, generated otherwise).
        modality_frames: ``[F, H, W, 3]`` visualisation of the modality (input control for
            controllable generation, generated otherwise).
        values: decoded modality values (see :mod:`unity_core.modalities`), or None.
        modality: release name of the modality; fps: frames per second.
    """

    rgb: torch.Tensor
    modality_frames: torch.Tensor
    values: Any
    modality: str
    fps: float = 8.0
    info: Dict[str, Any] = field(default_factory=dict)


class UnityVideoPipeline:
    """Transformer + codec + text encoder, with one method per task."""

    def __init__(self, transformer: UnityVideoTransformer, codec: Optional[LatentCodec], text_encoder,
                 config: Optional[dict] = None):
        """``codec`` / ``text_encoder`` may be None when another host supplies them (ComfyUI's
        VAE and CLIP nodes for the 5B); the one-call task methods then need them set."""
        self.transformer, self.codec, self.text_encoder = transformer.eval(), codec, text_encoder
        self.config = dict(config or {})
        #: the inference defaults: the release's with this pipeline.json's "defaults" over them
        self.defaults = pipeline_defaults(self.config)
        self._prompt_cache: Dict[str, torch.Tensor] = {}

    # -- loading and saving -----------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: PathLike = "default", dtype: torch.dtype = torch.float32, device="cpu",
                        text_encoder_device=None) -> "UnityVideoPipeline":
        """Load a pipeline folder, or ``"default"`` for the embedded model.

        Args:
            path: a pipeline folder, or ``"default"``.
            dtype: the transformer's dtype (float32, bfloat16 or float16); the codec stays float32.
            device: where the transformer and the codec live.
            text_encoder_device: where the text encoder runs (default: ``device``); ``"cpu"``
                keeps UMT5-XXL off the accelerator, and its outputs are moved to ``device``.

        Raises:
            FileNotFoundError: the folder or one of the files it names is missing.
            ValueError: ``pipeline.json`` is not valid JSON, or names no transformer or codec.
        """
        folder = DEFAULT_DIR if str(path) == "default" else Path(path)
        cfg_path = folder / "pipeline.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{folder} is not a UnityVideo pipeline folder (no pipeline.json)")
        try:
            config = json.loads(cfg_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{cfg_path} is not valid JSON ({err}); fix the file or save the pipeline again") from None
        missing = [k for k in ("transformer", "codec") if not isinstance(config, dict) or k not in config]
        if missing:
            raise ValueError(f"{cfg_path} names no {' or '.join(repr(k) for k in missing)}: a pipeline.json names its "
                             'files, e.g. {"transformer": "transformer.safetensors", "codec": "codec", '
                             '"text_encoder": "minilm"}')

        def resolve(name: str) -> Path:
            p = Path(name)
            return p if p.is_absolute() else folder / p

        text = config.get("text_encoder", "minilm")
        pipe = cls.from_files(resolve(config["transformer"]), resolve(config["codec"]),
                              text if text == "minilm" else resolve(text), config=config, dtype=dtype, device=device,
                              text_encoder_device=text_encoder_device)
        pipe.folder = folder
        return pipe

    @classmethod
    def from_files(cls, transformer: PathLike, codec: PathLike, text_encoder: PathLike = "minilm", *,
                   config: Optional[dict] = None, dtype: torch.dtype = torch.float32, device="cpu",
                   text_encoder_device=None) -> "UnityVideoPipeline":
        """Build a pipeline from its three parts' files: the one constructor every front end uses
        (:meth:`from_pretrained` after reading ``pipeline.json``, the command line's bare
        checkpoint with ``--vae`` / ``--text-encoder``, the benches).

        Args:
            transformer: a transformer checkpoint (``.safetensors`` file, shard index or folder, in
                the release's or diffusers' layout; :func:`unity_core.model.load_transformer`).
            codec: the codec folder (the default's, or the Wan2.2 VAE in diffusers' layout).
            text_encoder: ``"minilm"`` (the embedded default's) or a UMT5-XXL folder.
            config: the rest of a ``pipeline.json`` (``defaults``, ``codec_window``, ...).
            dtype: the transformer's dtype (float32, bfloat16 or float16); the codec stays float32.
            device: where the transformer and the codec live.
            text_encoder_device: where the text encoder runs (default: ``device``).

        Raises:
            FileNotFoundError: a part's file or folder is missing.
        """
        from unity_core.text import load_text_encoder

        config = dict(config or {})
        loaded = load_transformer(Path(transformer), dtype=dtype, device=device)
        # codec_window: the clip length the codec was trained on
        vae = LatentCodec.from_pretrained(Path(codec), encode_window=config.get("codec_window")).to(device)
        text = str(text_encoder) if str(text_encoder) == "minilm" else str(Path(text_encoder).resolve())
        encoder = load_text_encoder(text, device=text_encoder_device or device)
        return cls(loaded, vae, encoder, config)

    def save_pretrained(self, folder: PathLike) -> Path:
        """Write a pipeline folder (transformer in the release's layout, codec, pipeline.json).

        Raises:
            FileExistsError: the folder already holds a pipeline (nothing is overwritten).
        """
        from unity_core.model import save_transformer

        folder = Path(folder)
        if (folder / "pipeline.json").exists():
            raise FileExistsError(f"{folder} already holds a pipeline; save into a new folder")
        folder.mkdir(parents=True, exist_ok=True)
        save_transformer(self.transformer, folder / "transformer.safetensors")
        self.codec.save_pretrained(folder / "codec")
        # the built-in MiniLM by name; any other encoder (UMT5-XXL) by the folder it came from
        encoder = getattr(self.text_encoder, "name", "minilm")
        encoder = encoder if encoder == "minilm" else getattr(self.text_encoder, "path", self.config.get("text_encoder"))
        config = {**self.config, "transformer": "transformer.safetensors", "codec": "codec", "text_encoder": encoder}
        (folder / "pipeline.json").write_text(json.dumps(config, indent=1))
        return folder

    # -- pieces shared with the nodes ---------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the sampling runs: the transformer's device, or the onload device of group
        offloading (the weights then live elsewhere between uses)."""
        return self._execution_device or self.transformer.device

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """Prompt -> ``[1, L, D]`` on :attr:`device` (cached).

        Raises:
            ValueError: the text encoder was freed (:meth:`free_text_encoder`) before this
                prompt was encoded.
        """
        if prompt not in self._prompt_cache:
            if self.text_encoder is None:
                raise ValueError(f"the text encoder was freed before the prompt {prompt[:60]!r} was encoded; encode "
                                 "every prompt first (encode_prompt) or keep the encoder (no --free-text-encoder)")
            self._prompt_cache[prompt] = self.text_encoder.encode([prompt]).to(self.device)
        return self._prompt_cache[prompt]

    # -- memory and speed tools (diffusers' names, applied to the parts they concern) ----------

    _execution_device: Optional[torch.device] = None
    #: the folder the pipeline was loaded from (its ``mag_ratios.json`` serves ``cache="mag"``)
    folder: Optional[Path] = None
    #: free the text encoder once a task's prompts are encoded (UMT5-XXL is 11 GB in bf16); read
    #: by :meth:`after_prompts_encoded`, which every task calls
    free_text_encoder_after_encoding: bool = False

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "UnityVideoPipeline":
        """Move the transformer (and cast it to ``dtype``) and the codec to ``device``; the text
        encoder stays where it was loaded (see ``text_encoder_device``)."""
        self.transformer.to(device=device, dtype=dtype)
        if self.codec is not None and device is not None:
            self.codec.to(device)
        self._prompt_cache = {k: v.to(self.device) for k, v in self._prompt_cache.items()}
        return self

    def enable_group_offload(self, onload_device, offload_device="cpu", offload_type: str = "block_level",
                             num_blocks_per_group: Optional[int] = 1, use_stream: bool = False,
                             offload_to_disk_path: Optional[str] = None, **kwargs) -> None:
        """Diffusers' group offloading on the transformer: its blocks (``block_level``, one per
        group by default) or leaf layers live on ``offload_device`` (or on disk) and are
        brought to ``onload_device`` for their forward; ``use_stream`` prefetches the next
        group on a CUDA stream. The codec moves to ``onload_device``. Other arguments go to
        ``ModelMixin.enable_group_offload``.

        Raises:
            unity_core.extras.MissingExtraError: accelerate (the ``offload`` extra) is not
                installed; diffusers' offload hooks move tensors with it.
        """
        from unity_core.extras import require

        require("accelerate", "offload", "group offloading (enable_group_offload, --offload)")
        onload, offload = torch.device(onload_device), torch.device(offload_device)
        self.transformer.to(offload)
        self.transformer.enable_group_offload(onload, offload, offload_type=offload_type,
                                              num_blocks_per_group=num_blocks_per_group, use_stream=use_stream,
                                              offload_to_disk_path=offload_to_disk_path, **kwargs)
        self._execution_device = onload
        if self.codec is not None:
            self.codec.to(onload)
        self._prompt_cache = {k: v.to(onload) for k, v in self._prompt_cache.items()}

    def enable_layerwise_casting(self, storage_dtype: torch.dtype = torch.float8_e4m3fn,
                                 compute_dtype: torch.dtype = torch.bfloat16) -> None:
        """Diffusers' layerwise casting on the transformer: linear/conv weights stored in
        ``storage_dtype`` (fp8 halves the bf16 footprint) and cast to ``compute_dtype`` per layer
        as it runs; patch embeddings, the condition embedder and norms stay in ``compute_dtype``."""
        self.transformer.enable_layerwise_casting(storage_dtype=storage_dtype, compute_dtype=compute_dtype)

    def enable_vae_tiling(self, **kwargs) -> None:
        """Spatial tiling in the codec's VAE (diffusers' ``AutoencoderKLWan.enable_tiling``), for
        large frames with the Wan2.2 VAE; keyword arguments set the tile sizes and strides."""
        self.codec.vae.enable_tiling(**kwargs)

    def compile_transformer(self, **kwargs) -> None:
        """Regional ``torch.compile`` of the repeated DiT blocks (diffusers'
        ``compile_repeated_blocks``); keyword arguments go to ``torch.compile``."""
        self.transformer.compile_repeated_blocks(**kwargs)

    def enable_context_parallel(self, ulysses_degree: Optional[int] = None, ring_degree: int = 1) -> None:
        """Split the transformer's token sequence over the ranks of the initialised process group
        (``torchrun``), with diffusers' context parallelism (see :mod:`unity_core.model.parallel`).
        Every rank runs the same sampling loop from the same seed and gets the same latents."""
        from unity_core.model.parallel import enable_context_parallel

        enable_context_parallel(self.transformer, ulysses_degree=ulysses_degree, ring_degree=ring_degree)

    def free_text_encoder(self) -> None:
        """Drop the text encoder (its weights go when nothing else holds them); encoded prompts
        stay cached and usable."""
        import gc

        self.text_encoder = None
        gc.collect()

    def after_prompts_encoded(self) -> None:
        """Call once every prompt of a task is encoded (:meth:`encode_prompt`): frees the text
        encoder when :attr:`free_text_encoder_after_encoding` is set (``--free-text-encoder``), and
        does nothing otherwise. The one place that decides it; the encoded prompts stay cached."""
        if self.free_text_encoder_after_encoding and self.text_encoder is not None:
            self.free_text_encoder()

    def modality_context(self, modality: str) -> torch.Tensor:
        """Embedding ``[1, L, D]`` of the modality's fixed prompt (the in-context learner)."""
        return self.encode_prompt(MODALITY_PROMPTS[resolve_modality(modality)])

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``[F, H, W, 3]`` in [0, 1] -> latent ``[1, C, f, h, w]``."""
        return self.codec.encode(frames_to_video(frames.to(self.device)))

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent ``[1, C, f, h, w]`` -> ``[F, H, W, 3]`` in [0, 1]."""
        return video_to_frames(self.codec.decode(latent))[0].cpu()

    def prepare_frames(self, frames: torch.Tensor, num_frames: Optional[int] = None,
                       size: Optional[tuple] = None) -> torch.Tensor:
        """Resize/crop to ``size`` (default: the pipeline's) and keep a 4k+1 count of frames
        (uniformly, as the release samples)."""
        from unity_core.io.video import check_frame_count, floor_frame_count, resize_center_crop, select_frames

        h, w = size or (self.defaults["height"], self.defaults["width"])
        n = num_frames or min(self.defaults["num_frames"], floor_frame_count(frames.shape[0]))
        check_frame_count(n)
        if frames.shape[0] != n:
            frames = frames[select_frames(frames.shape[0], n)]
        if tuple(frames.shape[1:3]) != (h, w):
            frames = resize_center_crop(frames, h, w)
        return frames

    def _sample(self, task: str, modality: str, prompt: str, rgb_latent=None, modality_latent=None, shape=None,
                negative_prompt: str = "", model=None, **kw):
        cfg = kw.pop("cfg", self.defaults.get("cfg", 1.0))
        kw.setdefault("shift", self.defaults.get("shift", 1.0))
        if task == "flow2video":
            kw.setdefault("control_cfg", self.defaults.get("control_cfg", 1.0))
        ctx = self.encode_prompt(prompt)
        neg = self.encode_prompt(negative_prompt) if cfg != 1.0 else None
        modality_ctx = self.encode_prompt(MODALITY_PROMPTS[modality])  # the release's name, as the methods resolved it
        self.after_prompts_encoded()
        steps = kw.pop("steps", self.defaults["steps"])
        step_cache = None
        if kw.get("cache") is not None and not callable(kw["cache"]):  # a step cache spec or config, not a block cache
            step_cache = self.step_cache_config(kw.pop("cache"), task, steps)
        with torch.no_grad(), enabled_cache(self.transformer, step_cache):
            return sample(model if model is not None else self.transformer, task, context=ctx, modality=modality,
                          modality_context=modality_ctx, rgb_latent=rgb_latent,
                          modality_latent=modality_latent, shape=shape, cfg=cfg, negative_context=neg,
                          steps=steps, seed=kw.pop("seed", self.defaults["seed"]), **kw)

    def step_cache_config(self, cache, task: str, steps: int):
        """The diffusers step-cache config of a task's ``cache=`` option: a spec string
        (``"first-block:0.05"``, ``"mag"``, ``"taylorseer:5"``, ``"pab:2"``, ``"faster:2"``; see
        :mod:`unity_core.sampling.caches`) built for this transformer, ``steps`` and ``task`` (MagCache
        reads the task's ratios from the pipeline folder's ``mag_ratios.json``), or a diffusers
        config, used as given. The cache is enabled for that call only.

        Raises:
            ValueError: a bad spec, or ``mag`` for a pipeline without calibrated ratios for the task.
        """
        from unity_core.sampling.caches import cache_config, load_mag_ratios

        if not isinstance(cache, str):
            return cache
        ratios = load_mag_ratios(self.folder, resolve_task(task)) if cache.strip().startswith("mag") else None
        return cache_config(cache, self.transformer, steps=steps, mag_ratios=ratios)

    def _require_modality_stream(self, task: str) -> None:
        """Raise before any work when the transformer has no modality stream (Yume-5B, plain Wan)."""
        config = getattr(self.transformer, "unity_config", None)
        if config is not None and not config.modality_stream:
            kind = "a Yume-5B" if config.history_embeddings else "a plain Wan2.2"
            raise ValueError(f"{task} needs UnityVideo's modality stream, and this pipeline holds {kind} transformer "
                             "(RGB only): load a UnityVideo checkpoint for it, or walk with explore()")

    def _values(self, modality: str, frames: torch.Tensor):
        from unity_core import modalities as M

        return M.decode(modality, frames)

    # -- the three tasks ---------------------------------------------------------------------

    def estimate(self, frames, modality: str, prompt: str = "", **sampler) -> PipelineOutput:
        """Estimation (``video2flow``): RGB video -> the modality's visualisation and values, for
        the whole clip at its size and frame rate.

        ``frames``: a path, a tensor / numpy array ``[F, H, W, 3]`` (float in [0, 1], or uint8
        0-255, converted explicitly), or an iterable of frames. The clip is cut into windows of
        the model's length and stitched (:func:`unity_core.video.clip.run_clip`, which takes the
        options ``start``, ``end``, ``stride``, ``max_frames``, ``window``, ``overlap``, ``size``,
        ``conditioning``, ``fps``, ``out``, ``values_out``, ``progress``); the result has every
        selected frame at the source size and the source's fps.

        With ``num_frames`` (4k+1) the release's single window is run instead: ``num_frames``
        frames spread uniformly over the clip, resized and centre-cropped to ``size`` (default:
        the pipeline's), at the pipeline's fps.

        Raises:
            ValueError: frames of the wrong shape (one ``[H, W, 3]`` frame: add the frame axis),
                empty, or float outside [0, 1]; bad options (before any sampling).
        """
        self._require_modality_stream("estimation")
        modality = resolve_modality(modality)
        if sampler.get("num_frames") is None:
            from unity_core.video.clip import run_clip

            sampler.pop("num_frames", None)
            return run_clip(self, "video2flow", frames, modality, prompt, **sampler)
        rgb = self.prepare_frames(door_frames(frames), sampler.pop("num_frames", None), sampler.pop("size", None))
        out = self._sample("video2flow", modality, prompt, rgb_latent=self.encode_frames(rgb), **sampler)
        vis = self.decode_latent(out.modality_latent)
        return PipelineOutput(rgb, vis, self._values(modality, vis), modality, self.defaults["fps"],
                              {"model_evaluations": out.model_evaluations})

    def generate(self, prompt: str, modality: str, num_frames: Optional[int] = None, height: Optional[int] = None,
                 width: Optional[int] = None, **sampler) -> PipelineOutput:
        """Joint generation (``text2all``): prompt -> RGB and modality videos."""
        self._require_modality_stream("joint generation")
        modality = resolve_modality(modality)
        n = num_frames or self.defaults["num_frames"]
        h, w = height or self.defaults["height"], width or self.defaults["width"]
        shape = (1, *self.codec.latent_shape(n, h, w))
        out = self._sample("text2all", modality, prompt, shape=shape, **sampler)
        vis = self.decode_latent(out.modality_latent)
        return PipelineOutput(self.decode_latent(out.rgb_latent), vis, self._values(modality, vis), modality,
                              self.defaults["fps"], {"model_evaluations": out.model_evaluations})

    def control(self, control_frames, modality: str, prompt: str, **sampler) -> PipelineOutput:
        """Controllable generation (``flow2video``): a modality visualisation video -> RGB, for the
        whole clip in windows at its size and fps (as :meth:`estimate`: same inputs and options,
        plus ``preprocess``); with ``num_frames`` the release's single window.

        Raises:
            ValueError: as :meth:`estimate`.
        """
        self._require_modality_stream("controllable generation")
        modality = resolve_modality(modality)
        if sampler.get("num_frames") is None:
            from unity_core.video.clip import run_clip

            sampler.pop("num_frames", None)
            res = run_clip(self, "flow2video", control_frames, modality, prompt, **sampler)
            return res
        ctrl = self.prepare_frames(door_frames(control_frames), sampler.pop("num_frames", None), sampler.pop("size", None))
        out = self._sample("flow2video", modality, prompt, modality_latent=self.encode_frames(ctrl), **sampler)
        return PipelineOutput(self.decode_latent(out.rgb_latent), ctrl, None, modality, self.defaults["fps"],
                              {"model_evaluations": out.model_evaluations})

    # -- exploration (Yume) ------------------------------------------------------------------

    def explore(self, image, actions_script, prompt: str = "", **options) -> "ExploreResult":
        """Walk through a generated world: one segment per camera action, from a start image, with
        compressed history (Yume). The walk is :func:`unity_core.explore.long_video.walk`.

        The model decides the sampler (:mod:`unity_core.explore.samplers`): Yume-5B (history
        embeddings) runs the release's, every other model the derived-history one. Settings left
        None take the pipeline's defaults, else the model's: Yume-5B 4 steps, shift 7, cfg 1, 8
        latent frames per segment, sentence set ``v1_5``, 4 image repeats (17 still frames -> 5
        latents), where only the defaults of the pipeline's own config count; otherwise 20, 1.0,
        1.0, 1, ``v1`` and image repeats = latent frames per segment. Seed 42.

        Args:
            image: start image ``[H, W, 3]`` / ``[1, H, W, 3]`` in [0, 1], a 4k+1-frame video
                ``[F, H, W, 3]``, or a path to an image or video file (grey and RGBA images are
                made RGB). None when ``history`` continues an earlier walk. A video is encoded as
                it is and becomes the history (the release's Yume-5B script keeps only a video's
                frame 0, repeated like an image).
            actions_script: e.g. ``"W W W+A ← ·"`` (grammar in :mod:`unity_core.explore.qcm`) or a
                list of :class:`~unity_core.explore.actions.CameraAction`; one segment per action.
            prompt: content prompt; each segment adds its action's text and ``event``
                (:func:`~unity_core.explore.prompts.segment_prompts`; the content is shortened from
                its end, with a warning, when the whole exceeds the encoder's token limit).

        Keyword options (all optional):
            steps, shift, cfg, seed: sampler settings; ``negative_prompt`` for cfg != 1.
            latent_frames_per_segment: new latent frames per action, 4 video frames each (Yume-5B: 8).
            sentence_set, prefix, speed, event: the segment prompts
                (:func:`~unity_core.explore.prompts.segment_prompts`).
            schedule: derived history compression (default: the paper's, fitted to the latent size).
            size: (height, width) of the walk (default: the pipeline's; the image is resized and
                centre-cropped). None with ``history``: a continuation keeps its walk's size.
            image_repeats: still latent frames of the start image besides its own.
            history: an earlier :class:`~unity_core.explore.long_video.ExploreResult` (or its
                latent ``[1, C, T, h, w]``) to continue from. A bare latent keeps every frame it
                decodes to and numbers the new frames after them.
            history_mode, time_travel, cache: Yume-5B only
                (:func:`~unity_core.explore.samplers.generate_yume_walk`); off by default.
            decode: decode the latents to frames (default True).
            callback: ``callback(step, total, latent, None)`` after every step.
            should_interrupt: checked before every step; True raises ``SamplingInterrupted``.
            segment_sampler: Yume-5B only: another sampler of each segment (ComfyUI's core sampling;
                :data:`~unity_core.explore.samplers.SegmentSampler`).
            on_segment: ``on_segment(k, latent, new)`` after each segment.

        Returns:
            :class:`~unity_core.explore.long_video.ExploreResult` (frames:
            :func:`~unity_core.explore.long_video.walk_frame_count` of its segments from an image).

        Raises:
            ValueError: a bad action script, image, size or setting (the message names it), an image
                or size given together with ``history``, or a Yume-only option on another model.
            TypeError: an unknown option.
            SamplingInterrupted: when ``should_interrupt()`` returns True.
        """
        from unity_core.explore.long_video import walk

        return walk(self, image, actions_script, prompt, **options)


def door_frames(frames) -> torch.Tensor:
    """Frames at the pipeline's door: a tensor or numpy array ``[F, H, W, 3]``, float in [0, 1]
    (returned as float32) or uint8 0-255 (divided by 255: an explicit conversion, never a wrap).

    Raises:
        ValueError: one frame ``[H, W, 3]`` (add the frame axis: ``frames[None]``), zero frames,
            another shape, another integer dtype, or float values outside [0, 1].
    """
    import numpy as np

    from unity_core.io.video import check_unit_frames

    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"frames must be a tensor or numpy array [F, H, W, 3], got {type(frames).__name__}")
    if frames.ndim == 3 and frames.shape[-1] == 3:
        raise ValueError(f"frames must be [F, H, W, 3]; got one frame {tuple(frames.shape)}: add the frame axis, "
                         "e.g. frames[None]")
    if frames.ndim == 4 and frames.shape[0] == 0:
        raise ValueError("no frames: the clip is empty ([0, H, W, 3])")
    if frames.dtype == torch.uint8:
        frames = frames.float() / 255.0
    return check_unit_frames(frames).float()


def make_random_default(folder: PathLike, seed: int = 0) -> Path:
    """Write an untrained pipeline folder with the default's layout and its frame count, size and
    fps (for tests and scaffolding)."""
    from unity_core.constants import embedded_defaults
    from unity_core.model import get_config
    from unity_core.text import MiniLMTextEncoder

    torch.manual_seed(seed)
    embedded = embedded_defaults()
    defaults = {k: embedded[k] for k in ("num_frames", "height", "width", "fps")}
    pipe = UnityVideoPipeline(UnityVideoTransformer.from_config(get_config("unityvideo-small")), LatentCodec.from_config(),
                              MiniLMTextEncoder(), {"defaults": defaults})
    return pipe.save_pretrained(folder)
