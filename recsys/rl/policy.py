"""Soft policy over retrieved cases: mu(c | s, M) = softmax(Q(s, c) / alpha) on valid cases.

Pure tensor functions (shapes (B, K)); masked candidates get log-probability -inf and
probability exactly 0. Sampling m cases without replacement uses the Gumbel top-k trick
(equivalent to sequential sampling, Kool et al. 2019); its slate log-probability is the
Plackett-Luce product.
"""

from __future__ import annotations

import torch

__all__ = [
    "entropy",
    "greedy_top_m",
    "masked_log_softmax",
    "sample_without_replacement",
    "slate_log_prob",
]

NEG_INF = float("-inf")


def masked_log_softmax(
    q: torch.Tensor, mask: torch.Tensor, alpha: float | torch.Tensor
) -> torch.Tensor:
    """log pi = log_softmax(Q / alpha) over valid entries; -inf where masked.

    q, mask: (B, K). Rows with no valid entry return all -inf.
    """
    assert q.shape == mask.shape, f"{q.shape=} {mask.shape=}"
    logits = (q / alpha).masked_fill(~mask, NEG_INF)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    out = logits - torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return out.masked_fill(~mask, NEG_INF)


def entropy(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) entropy -sum pi log pi over valid entries (0 for empty rows)."""
    assert logp.shape == mask.shape, f"{logp.shape=} {mask.shape=}"
    safe = torch.where(mask, logp, torch.zeros_like(logp))
    return -(safe.exp() * safe * mask).sum(-1)


def sample_without_replacement(
    logp: torch.Tensor, m: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, K) log-probs -> (B, m) sampled indices, distinct per row (Gumbel top-k).

    Masked (-inf) entries are never drawn while m <= number of valid entries in the row.
    """
    assert m <= logp.shape[-1], f"{m=} > K={logp.shape[-1]}"
    u = torch.rand(logp.shape, generator=generator, device=logp.device, dtype=logp.dtype)
    gumbel = -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))
    return torch.topk(logp + gumbel, m, dim=-1).indices


def greedy_top_m(logp: torch.Tensor, m: int) -> torch.Tensor:
    """(B, K) -> (B, m) indices of the m most likely entries."""
    return torch.topk(logp, m, dim=-1).indices


def slate_log_prob(logp: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B,) Plackett-Luce log-probability of drawing the ordered slate `idx` (B, m)
    without replacement: sum_j [logp_j - log(1 - sum_{i<j} p_i)]."""
    chosen = logp.gather(-1, idx)
    p = chosen.exp()
    used = torch.cumsum(p, -1) - p
    return (chosen - torch.log1p(-used.clamp(max=1.0 - 1e-7))).sum(-1)
