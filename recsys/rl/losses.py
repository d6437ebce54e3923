"""Pure loss functions returning (loss, metrics).

Soft Q-learning over retrieved cases (Memento; soft Bellman backup of Haarnoja et al. 2017):

    V(s')  = alpha * logsumexp_{c' in C(s'), valid} Q_targ(s', c') / alpha,   Q_targ = min(Q1', Q2')
    y      = r + gamma * (1 - done) * V(s')
    L_TD   = sum_i mean_{chosen} (Q_i(s, c) - y)^2

where C(s') is the next state's *own* snapshotted candidate set. Each chosen case of a slate
is one (s, c) sample with its own credited reward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "alpha_loss",
    "ce_loss",
    "listwise_loss",
    "soft_td_loss",
    "soft_td_target",
    "soft_value",
]


def soft_value(q: torch.Tensor, mask: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """(B, K) Q and mask -> (B,) alpha * logsumexp(Q / alpha) over valid entries (0 if none)."""
    assert q.shape == mask.shape, f"{q.shape=} {mask.shape=}"
    lse = torch.logsumexp((q / alpha).masked_fill(~mask, float("-inf")), dim=-1)
    return torch.where(mask.any(-1), alpha * lse, torch.zeros_like(lse))


def soft_td_target(
    rewards: torch.Tensor,
    done: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    next_mask: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor,
) -> torch.Tensor:
    """y (B, M) = rewards (B, M) + gamma * (1 - done (B,)) * V(s') with min of twin targets."""
    v = soft_value(torch.minimum(next_q1, next_q2), next_mask, alpha)
    return rewards + gamma * (1.0 - done.float())[:, None] * v[:, None]


def _gather_masked_mean(
    pred: torch.Tensor, target: torch.Tensor, cmask: torch.Tensor
) -> torch.Tensor:
    w = cmask.float()
    return (((pred - target) ** 2) * w).sum() / w.sum().clamp(min=1.0)


def soft_td_loss(
    q1: torch.Tensor,
    q2: torch.Tensor,
    chosen: torch.Tensor,
    chosen_mask: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Twin MSE to the (detached) soft TD target.

    q1, q2: (B, K) online Q. chosen: (B, M) indices. chosen_mask: (B, M). target: (B, M).
    """
    assert chosen.shape == chosen_mask.shape == target.shape, f"{chosen.shape=} {target.shape=}"
    y = target.detach()
    p1, p2 = q1.gather(-1, chosen), q2.gather(-1, chosen)
    l1, l2 = _gather_masked_mean(p1, y, chosen_mask), _gather_masked_mean(p2, y, chosen_mask)
    w = chosen_mask.float()
    n = w.sum().clamp(min=1.0)
    metrics = {
        "losses/td": float((l1 + l2).detach()) / 2,
        "q/chosen_mean": float((p1.detach() * w).sum() / n),
        "q/target_mean": float((y * w).sum() / n),
    }
    return l1 + l2, metrics


def ce_loss(
    logit1: torch.Tensor,
    logit2: torch.Tensor,
    chosen: torch.Tensor,
    chosen_mask: torch.Tensor,
    rewards: torch.Tensor,
    threshold: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Binary cross-entropy of both heads on label (reward > threshold) (parametric memory).

    logit1, logit2: (B, K). chosen, chosen_mask, rewards: (B, M).
    """
    assert chosen.shape == chosen_mask.shape == rewards.shape, f"{chosen.shape=} {rewards.shape=}"
    label = (rewards > threshold).float()
    w = chosen_mask.float()
    n = w.sum().clamp(min=1.0)
    losses = [
        (
            F.binary_cross_entropy_with_logits(lg.gather(-1, chosen), label, reduction="none") * w
        ).sum()
        / n
        for lg in (logit1, logit2)
    ]
    loss = losses[0] + losses[1]
    acc = (((logit1.gather(-1, chosen) > 0).float() == label).float() * w).sum() / n
    return loss, {"losses/ce": float(loss.detach()) / 2, "ce/accuracy": float(acc)}


def alpha_loss(
    log_alpha: torch.Tensor, logp: torch.Tensor, mask: torch.Tensor, target_entropy: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Discrete SAC temperature loss: E_s[log_alpha * (H(pi(.|s)) - H_target(s))].

    logp, mask: (B, K) (detached policy); target_entropy: (B,). Minimising raises alpha when the
    entropy is below target and lowers it when above.
    """
    safe = torch.where(mask, logp, torch.zeros_like(logp)).detach()
    ent = -(safe.exp() * safe * mask).sum(-1)
    loss = (log_alpha * (ent - target_entropy).detach()).mean()
    return loss, {"losses/alpha": float(loss.detach()), "policy/entropy": float(ent.mean())}


def listwise_loss(
    q1: torch.Tensor,
    q2: torch.Tensor,
    chosen: torch.Tensor,
    chosen_mask: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    alpha: float | torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy between the rewards normalised over the chosen entries and the policy
    softmax(Q_i / alpha) over the valid candidates, for each head; rows without a positive
    reward are skipped. With full-information replay labels (every candidate labelled) this
    fits the policy's distribution to where the reward is, which is what a ranked list needs.

    q1, q2, mask: (B, K). chosen, chosen_mask, rewards: (B, M).
    """
    r = torch.where(chosen_mask, rewards.clamp(min=0.0), torch.zeros_like(rewards))
    total = r.sum(-1)
    keep = total > 0
    if not bool(keep.any()):
        zero = q1.sum() * 0.0
        return zero, {"losses/listwise": 0.0}
    target = torch.zeros_like(q1).scatter_add(-1, chosen, r) / total.clamp(min=1e-12)[:, None]
    losses = []
    for q in (q1, q2):
        logits = (q / alpha).masked_fill(~mask, float("-inf"))
        logp = torch.log_softmax(logits, dim=-1).masked_fill(~mask, 0.0)
        losses.append(-(target * logp).sum(-1)[keep].mean())
    loss = losses[0] + losses[1]
    return loss, {"losses/listwise": float(loss.detach()) / 2}
