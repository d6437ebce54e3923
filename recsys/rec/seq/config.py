"""Settings of the sequence model (encoder and heads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["EncoderKind", "SeqModelConfig"]

EncoderKind = Literal["transformer", "gru"]


@dataclass(frozen=True)
class SeqModelConfig:
    """Shape of the sequence state encoder and its heads."""

    n_items: int
    """Catalogue size N; items are indexed 1..N (0 = padding)."""
    encoder: EncoderKind = "transformer"
    """"transformer": causal self-attention (SASRec-like); "gru": a recurrent encoder."""
    dim: int = 64
    """State and embedding width d."""
    layers: int = 2
    """Transformer blocks or GRU layers."""
    heads: int = 2
    """Attention heads (transformer only)."""
    dropout: float = 0.2
    """Dropout on embeddings and inside blocks."""
    max_len: int = 200
    """Longest input window; longer histories keep their latest `max_len` events."""
    n_actions: int = 4
    """Action types (indexed 1..n_actions, 0 = padding)."""
    n_gaps: int = 32
    """Time-gap buckets (0 = padding, 1 = first event, 2.. = log2 of the gap in seconds)."""
    tie: bool = True
    """Score items by the input item embeddings (tied) instead of separate output tables."""
