"""The sequence model: one state encoder, a supervised next-item head and twin soft-Q heads.

    s_t = Enc(events_0..t)                              (B, L, d)
    logits(s, .) = s E^T + b                            (.., N)  supervised head (SQN's CE head)
    Q_k(s, .)    = (W_k s + c_k) E^T + b_k,  k = 1, 2   (.., N)  twin soft-Q heads (SQN's Q head)

E (N, d) is the input item table when `cfg.tie` (item i is column i - 1), else each head has its
own output table. The policy is softmax(Q / alpha) over the unseen items (greedy to evaluate).
Shapes: N = `cfg.n_items`, d = `cfg.dim`. Forward only; losses live in `recsys.rl.sqn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recsys.rec.seq.batch import SeqBatch
from recsys.rec.seq.config import SeqModelConfig
from recsys.rec.seq.encoder import CausalTransformer, GRUEncoder, build_encoder

__all__ = ["ItemScorer", "SeqHeads", "SeqQModel", "last_states", "transition_states"]


class ItemScorer(nn.Module):
    """One head: (P, d) states -> (P, N) scores of every catalogue item."""

    def __init__(self, cfg: SeqModelConfig, project: bool) -> None:
        super().__init__()
        d = cfg.dim
        self.proj = nn.Linear(d, d) if project else None
        self.table = None if cfg.tie else nn.Parameter(torch.randn(cfg.n_items, d) * 0.02)
        self.bias = nn.Parameter(torch.zeros(cfg.n_items))

    def forward(self, h: torch.Tensor, tied_table: torch.Tensor) -> torch.Tensor:
        """h (P, d), tied_table (N, d) (used when the head has no table) -> (P, N)."""
        z = self.proj(h) if self.proj is not None else h
        table = self.table if self.table is not None else tied_table
        assert z.shape[-1] == table.shape[-1], f"{z.shape=} {table.shape=}"
        return z @ table.T + self.bias


@dataclass
class SeqHeads:
    """Every head's scores for P states."""

    logits: torch.Tensor
    """(P, N) supervised next-item logits."""
    q1: torch.Tensor
    """(P, N) first soft-Q head."""
    q2: torch.Tensor
    """(P, N) second soft-Q head."""


class SeqQModel(nn.Module):
    """Encoder + supervised head + twin Q heads (a Polyak copy of the whole model is the target)."""

    def __init__(self, cfg: SeqModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder: CausalTransformer | GRUEncoder = build_encoder(cfg)
        self.ce_head = ItemScorer(cfg, project=False)
        self.q1_head = ItemScorer(cfg, project=True)
        self.q2_head = ItemScorer(cfg, project=True)

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """(B, L) batch -> states (B, L, d)."""
        return self.encoder(batch)

    def item_table(self) -> torch.Tensor:
        """(N, d) input item embeddings without the padding row."""
        return self.encoder.embed.item.weight[1:]

    def heads(self, h: torch.Tensor) -> SeqHeads:
        """(P, d) states -> every head's (P, N) scores."""
        table = self.item_table()
        return SeqHeads(self.ce_head(h, table), self.q1_head(h, table), self.q2_head(h, table))

    def q_values(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, d) states -> (Q1, Q2), each (P, N) (the target net needs only these)."""
        table = self.item_table()
        return self.q1_head(h, table), self.q2_head(h, table)


@torch.no_grad()
def last_states(model: SeqQModel, batch: SeqBatch, chunk: int = 256) -> torch.Tensor:
    """States after each window's latest event, (B, d), in eval mode (no dropout)."""
    was = model.training
    model.eval()
    out = [
        model(batch.index(torch.arange(i, min(i + chunk, len(batch.items)))))[:, -1]
        for i in range(0, len(batch.items), chunk)
    ]
    model.train(was)
    return torch.cat(out)


@torch.no_grad()
def transition_states(model: SeqQModel, batch: SeqBatch, chunk: int = 256) -> torch.Tensor:
    """States s_t of every transition of `batch` (positions with a target, row-major), (P, d)."""
    was = model.training
    model.eval()
    out = []
    for i in range(0, len(batch.items), chunk):
        part = batch.index(torch.arange(i, min(i + chunk, len(batch.items))))
        out.append(model(part)[part.has_target])
    model.train(was)
    return torch.cat(out)
