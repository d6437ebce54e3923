"""The one module of the project that imports `transformers`.

Everything else in `recsys.llm` receives model and tokenizer objects from here and uses them
through torch only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "load_gguf",
    "load_pretrained",
    "make_prefix_cache",
    "save_converted",
]


def _dtype(name: str) -> torch.dtype:
    """Map a dtype name ("bfloat16", "float32", ...) to a torch dtype."""
    table = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(table)}")
    return table[name]


def load_gguf(gguf_path: Path, dtype: str = "bfloat16") -> tuple[Any, Any]:
    """De-quantise a GGUF file into a (model, tokenizer) pair (slow: tens of seconds)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=_dtype(dtype))
    return model, tokenizer


def save_converted(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save a de-quantised model as a plain safetensors folder (quantizer metadata removed)."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def load_pretrained(
    name_or_path: str, dtype: str = "bfloat16", local_files_only: bool | None = None
) -> tuple[Any, Any]:
    """Load a (model, tokenizer) pair from a local folder or a hub id.

    With `HF_HUB_OFFLINE=1` (or `local_files_only=True`) no download is attempted.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if local_files_only is None:
        local_files_only = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false")
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=_dtype(dtype), local_files_only=local_files_only
    )
    return model, tokenizer


def make_prefix_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """A fresh `DynamicCache` holding the given per-layer (keys, values) of a prefix.

    Keys/values have shape (batch, kv_heads, prefix_len, head_dim). The cache object is
    mutated by a forward pass, so build a new one per call from the saved tensors.
    """
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers)
