"""SQN losses: a supervised next-item head and a soft-Q head trained jointly on one encoder.

Self-Supervised Q-learning (Xin et al., SIGIR 2020, eq. 3-5) with the soft (SAC-discrete,
Christodoulou 2019; Haarnoja et al. 2017) backup over the whole catalogue:

    L_CE  = -log softmax(logits(s_t))[a_t]                                   (SQN eq. 3)
    y_t   = r_t + gamma * alpha * logsumexp_i min(Q1', Q2')(s_{t+1}, i) / alpha
    L_TD  = sum_k (Q_k(s_t, a_t) - y_t)^2                                    (SQN eq. 4, soft)
    L_CQL = sum_k alpha * logsumexp_i Q_k(s_t, i) / alpha - Q_k(s_t, a_t)    (CQL(H), Kumar et al.
            2020 eq. 4: keeps the items never logged in a state below the logged one)
    L     = L_CE + q_weight * L_TD + cql_weight * L_CQL                      (SQN eq. 5)

With `SQNConfig.prior` the soft value is taken under the supervised head (pi_CE) as reference:
V(s') = alpha * log sum_i pi_CE(i | s') exp(min(Q1', Q2')(s', i) / alpha) (`policy_logits`).
Q' is the Polyak target copy (`recsys.rl.learner.polyak_update`). Every function is pure and
returns (loss, metrics); P = transitions in the batch, N = catalogue size; item indices 1..N.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recsys.rl.losses import soft_td_loss, soft_td_target

__all__ = [
    "SQNConfig",
    "conservative_loss",
    "next_item_ce",
    "policy_logits",
    "sqn_loss",
    "sqn_td_target",
]


@dataclass(frozen=True)
class SQNConfig:
    """Weights and constants of the joint loss."""

    gamma: float = 0.5
    """Discount of the soft TD backup (> 0: the next state's value counts)."""
    alpha: float = 1.0
    """Entropy temperature of the soft value and of the policy softmax(Q / alpha)."""
    q_weight: float = 1.0
    """Weight of the twin TD loss beside the supervised cross-entropy."""
    cql_weight: float = 0.0
    """Weight of the conservative term (0 = plain SQN)."""
    tau: float = 0.01
    """Polyak rate of the target copy per optimiser step."""
    prior: bool = False
    """Q(s, i) = alpha * log softmax(logits(s))_i (detached) + head_k(s, i): the supervised head
    is the policy's prior and the Q heads learn the reward's correction (`prior_q`)."""


def policy_logits(logits: torch.Tensor, q: torch.Tensor, cfg: SQNConfig) -> torch.Tensor:
    """The policy's logits (P, N) from Q (P, N): Q / alpha, or with the prior (`cfg.prior`)

        log pi(i | s) = log pi_CE(i | s) + Q(s, i) / alpha - log Z(s),   pi_CE = softmax(logits)

    (KL-regularised soft-Q with the supervised head as reference policy; Todorov 2009, Jaques et
    al. 2019): an item the Q head never learnt about keeps its supervised rank."""
    assert logits.shape == q.shape, f"{logits.shape=} {q.shape=}"
    if not cfg.prior:
        return q / cfg.alpha
    return torch.log_softmax(logits.detach(), dim=-1) + q / cfg.alpha


def next_item_ce(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Mean cross-entropy of the next item: logits (P, N), targets (P,) in 1..N."""
    assert logits.ndim == 2 and targets.shape == logits.shape[:1], (
        f"{logits.shape=} {targets.shape=}"
    )
    loss = F.cross_entropy(logits, targets - 1)
    return loss, {"losses/ce": float(loss.detach())}


def sqn_td_target(
    rewards: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    gamma: float,
    alpha: float,
    next_log_prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """y (P,) = r (P,) + gamma * alpha * logsumexp(log prior + min(Q1', Q2') (P, N) / alpha)
    with log prior (P, N) = 0 when None; no terminal state (a sequence's end is where
    observation stops, not where the user does)."""
    assert next_q1.shape == next_q2.shape and rewards.shape == next_q1.shape[:1], (
        f"{rewards.shape=} {next_q1.shape=} {next_q2.shape=}"
    )
    done = torch.zeros_like(rewards)
    mask = torch.ones_like(next_q1, dtype=torch.bool)
    if next_log_prior is not None:  # min(a + c, b + c) = min(a, b) + c
        next_q1, next_q2 = next_q1 + alpha * next_log_prior, next_q2 + alpha * next_log_prior
    return soft_td_target(rewards[:, None], done, next_q1, next_q2, mask, gamma, alpha)[:, 0]


def conservative_loss(
    q1: torch.Tensor, q2: torch.Tensor, targets: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, dict]:
    """sum_k mean_t alpha * (logsumexp(Q_k / alpha) - Q_k(a_t) / alpha): q (P, N), targets (P,)."""
    assert q1.shape == q2.shape and targets.shape == q1.shape[:1], f"{q1.shape=} {targets.shape=}"
    loss = alpha * (
        F.cross_entropy(q1 / alpha, targets - 1) + F.cross_entropy(q2 / alpha, targets - 1)
    )
    return loss, {"losses/cql": float(loss.detach())}


def sqn_loss(
    logits: torch.Tensor,
    q1: torch.Tensor,
    q2: torch.Tensor,
    next_q1: torch.Tensor,
    next_q2: torch.Tensor,
    targets: torch.Tensor,
    rewards: torch.Tensor,
    cfg: SQNConfig,
    next_log_prior: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """L = L_CE + q_weight * L_TD + cql_weight * L_CQL over P transitions.

    logits, q1, q2 (P, N) online heads at s_t; next_q1, next_q2 (P, N) target heads at s_{t+1}
    (detached here); targets (P,) logged next items in 1..N; rewards (P,) their rewards;
    next_log_prior (P, N) log pi_CE at s_{t+1} when the value is taken under the prior."""
    ce, metrics = next_item_ce(logits, targets)
    nlp = next_log_prior.detach() if next_log_prior is not None else None
    y = sqn_td_target(rewards, next_q1.detach(), next_q2.detach(), cfg.gamma, cfg.alpha, nlp)
    chosen = (targets - 1)[:, None]
    td, m_td = soft_td_loss(q1, q2, chosen, torch.ones_like(chosen, dtype=torch.bool), y[:, None])
    metrics |= m_td
    loss = ce + cfg.q_weight * td
    if cfg.cql_weight > 0:
        cql, m_cql = conservative_loss(q1, q2, targets, cfg.alpha)
        metrics |= m_cql
        loss = loss + cfg.cql_weight * cql
    metrics["losses/total"] = float(loss.detach())
    return loss, metrics
