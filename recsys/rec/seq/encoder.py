"""Sequence state encoders over item, action and time-gap embeddings.

Input: a `SeqBatch` (B, L) left-padded. Output: states (B, L, d); the state at position t has
seen events 0..t of its window only (causal), so it may score the item of event t + 1.

- `CausalTransformer`: SASRec-like (Kang & McAuley, ICDM 2018): learned positions counted from
  the window's end, pre-norm self-attention blocks with a causal mask.
- `GRUEncoder`: GRU4Rec-like (Hidasi et al., ICLR 2016) recurrent state.
"""

from __future__ import annotations

import torch
from torch import nn

from recsys.rec.seq.batch import SeqBatch
from recsys.rec.seq.config import SeqModelConfig

__all__ = ["CausalTransformer", "EventEmbedding", "GRUEncoder", "build_encoder"]


class EventEmbedding(nn.Module):
    """e_t = E_item[i_t] + E_action[a_t] + E_gap[g_t] (+ E_pos), then dropout: (B, L, d)."""

    def __init__(self, cfg: SeqModelConfig, positions: bool) -> None:
        super().__init__()
        d = cfg.dim
        self.item = nn.Embedding(cfg.n_items + 1, d, padding_idx=0)
        self.action = nn.Embedding(cfg.n_actions + 1, d, padding_idx=0)
        self.gap = nn.Embedding(cfg.n_gaps, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, d) if positions else None
        self.drop = nn.Dropout(cfg.dropout)
        for emb in (self.item, self.action, self.gap, self.pos):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            for emb in (self.item, self.action, self.gap):
                emb.weight[0].zero_()

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """(B, L) ids -> (B, L, d)."""
        x = self.item(batch.items) + self.action(batch.actions) + self.gap(batch.gaps)
        if self.pos is not None:
            length = batch.items.shape[1]
            assert length <= self.pos.num_embeddings, f"{length=} > max_len"
            # position counted from the end: the latest event always has index max_len - 1
            idx = torch.arange(self.pos.num_embeddings - length, self.pos.num_embeddings)
            x = x + self.pos(idx.to(x.device))[None]
        return self.drop(x * batch.valid[..., None])


class _Block(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, cfg: SeqModelConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, d)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        """x (B, L, d), blocked (B * heads, L, L) bool (True = may not attend) -> (B, L, d)."""
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=blocked, need_weights=False)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.ln2(x)))


class CausalTransformer(nn.Module):
    """Causal self-attention encoder: position t attends to valid positions <= t."""

    def __init__(self, cfg: SeqModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = EventEmbedding(cfg, positions=True)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """(B, L) batch -> states (B, L, d); padded positions give unused values."""
        x = self.embed(batch)
        length = batch.items.shape[1]
        valid = batch.valid
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        eye = torch.eye(length, dtype=torch.bool, device=x.device)
        # a padded key is blocked, except for itself (a padded query must attend to something)
        blocked = future[None] | (~valid[:, None, :] & ~eye[None])  # (B, L, L)
        blocked = blocked.repeat_interleave(self.cfg.heads, dim=0)
        for blk in self.blocks:
            x = blk(x, blocked)
        return self.ln(x)


class GRUEncoder(nn.Module):
    """GRU over the event embeddings (left padding: the pads come first and carry zeros)."""

    def __init__(self, cfg: SeqModelConfig) -> None:
        super().__init__()
        self.embed = EventEmbedding(cfg, positions=False)
        drop = cfg.dropout if cfg.layers > 1 else 0.0
        self.gru = nn.GRU(cfg.dim, cfg.dim, cfg.layers, batch_first=True, dropout=drop)
        self.ln = nn.LayerNorm(cfg.dim)

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """(B, L) batch -> states (B, L, d)."""
        out, _ = self.gru(self.embed(batch))
        return self.ln(out)


def build_encoder(cfg: SeqModelConfig) -> CausalTransformer | GRUEncoder:
    """The encoder named by `cfg.encoder`."""
    return CausalTransformer(cfg) if cfg.encoder == "transformer" else GRUEncoder(cfg)
