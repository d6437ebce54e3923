"""Greedy chat generation with a local causal LM (for the research agent's local backend).

Uses only the tokenizer's chat template and `model.generate` on objects returned by
`recsys.llm.provider.load_model`, so `transformers` stays imported only in `recsys.llm.hf`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from recsys.llm.provider import LoadedModel

__all__ = ["Generation", "generate_chat"]


@dataclass(frozen=True)
class Generation:
    """One generated reply."""

    text: str
    """The decoded continuation (special tokens removed)."""
    prompt_tokens: int
    """Tokens of the templated prompt (after truncation)."""
    completion_tokens: int
    """Tokens generated."""


@torch.no_grad()
def generate_chat(
    loaded: LoadedModel,
    messages: Sequence[Mapping[str, str]],
    max_new_tokens: int = 64,
    max_prompt_tokens: int = 1536,
) -> Generation:
    """Greedy-decode a reply to `messages` ({role, content} dicts; roles system/user/assistant).

    The prompt is left-truncated to `max_prompt_tokens` tokens (the end of the conversation is
    what the reply depends on most).
    """
    tok, model = loaded.tokenizer, loaded.model
    text = tok.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    if ids.shape[1] > max_prompt_tokens:
        ids = ids[:, -max_prompt_tokens:]
    ids = ids.to(model.device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "attention_mask": torch.ones_like(ids),
    }
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        kwargs["pad_token_id"] = tok.eos_token_id
    out = model.generate(ids, **kwargs)
    new = out[0, ids.shape[1] :]
    return Generation(tok.decode(new, skip_special_tokens=True).strip(), ids.shape[1], len(new))
