"""Oracle tests of the SQN losses (`recsys.rl.sqn`) and a loss-goes-down smoke test."""

from __future__ import annotations

import math

import numpy as np
import torch

from recsys.rec.seq import SeqModelConfig, UserSequence
from recsys.rl.sqn import (
    SQNConfig,
    conservative_loss,
    next_item_ce,
    policy_logits,
    sqn_loss,
    sqn_td_target,
)
from training.seq_fit import SeqFitConfig, fit_seq


def test_next_item_ce_hand_computed() -> None:
    """CE of logits [1, 2, 3] with target item 2 (column 1) is log(e + e^2 + e^3) - 2."""
    loss, metrics = next_item_ce(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([2]))
    expected = math.log(math.e + math.e**2 + math.e**3) - 2.0
    assert abs(float(loss) - expected) < 1e-5
    assert abs(metrics["losses/ce"] - expected) < 1e-5


def test_soft_td_target_brute_force() -> None:
    """y = r + gamma * alpha * log sum_i exp(min(Q1', Q2')_i / alpha), row by row in Python."""
    g = torch.Generator().manual_seed(0)
    r = torch.rand(4, generator=g)
    n1, n2 = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    gamma, alpha = 0.7, 0.4
    y = sqn_td_target(r, n1, n2, gamma, alpha)
    for p in range(4):
        v = alpha * math.log(
            sum(math.exp(min(float(n1[p, i]), float(n2[p, i])) / alpha) for i in range(7))
        )
        assert abs(float(y[p]) - (float(r[p]) + gamma * v)) < 1e-5


def test_sqn_loss_is_the_weighted_sum() -> None:
    """L = CE + q_weight * twin TD + cql_weight * CQL, each term checked by hand."""
    g = torch.Generator().manual_seed(1)
    logits, q1, q2 = (torch.randn(3, 5, generator=g) for _ in range(3))
    n1, n2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    targets, rewards = torch.tensor([1, 5, 3]), torch.tensor([0.1, 1.0, 0.6])
    cfg = SQNConfig(gamma=0.5, alpha=0.5, q_weight=0.3, cql_weight=2.0)
    loss, _ = sqn_loss(logits, q1, q2, n1, n2, targets, rewards, cfg)
    y = sqn_td_target(rewards, n1, n2, cfg.gamma, cfg.alpha)
    a = targets - 1
    td = sum(float(((q[torch.arange(3), a] - y) ** 2).mean()) for q in (q1, q2))
    cql = sum(
        float((cfg.alpha * torch.logsumexp(q / cfg.alpha, 1) - q[torch.arange(3), a]).mean())
        for q in (q1, q2)
    )
    ce = float(next_item_ce(logits, targets)[0])
    assert abs(float(loss) - (ce + 0.3 * td + 2.0 * cql)) < 1e-4
    assert abs(float(conservative_loss(q1, q2, targets, 0.5)[0]) - cql) < 1e-5


def test_training_lowers_the_loss_on_a_tiny_sequence_set() -> None:
    """On cyclic synthetic sequences (1 -> 2 -> ... -> 6 -> 1) the joint loss falls with epochs."""
    seqs = []
    for u in range(12):
        items = [(u + t) % 6 + 1 for t in range(10)]
        seqs.append(
            UserSequence(
                np.array(items, np.int64),
                np.full(10, 2, np.int64),
                np.arange(10, dtype=np.float64),
                np.full(10, 0.3, np.float32),
            )
        )
    model = SeqModelConfig(n_items=6, dim=16, layers=1, heads=2, dropout=0.0, max_len=10)
    cfg = SeqFitConfig(model=model, sqn=SQNConfig(cql_weight=1.0), epochs=15, batch_size=4, lr=1e-2)
    res = fit_seq(cfg, seqs)
    first, last = res.curve[0]["losses/ce"], res.curve[-1]["losses/ce"]
    assert last < 0.5 * first, f"{first=} {last=}"
    assert res.curve[-1]["losses/total"] < res.curve[0]["losses/total"]


def test_soft_value_under_the_prior_brute_force() -> None:
    """With a prior: y = r + gamma * alpha * log sum_i pi(i) exp(min(Q1', Q2')_i / alpha)."""
    g = torch.Generator().manual_seed(2)
    r = torch.rand(3, generator=g)
    n1, n2 = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    logp = torch.log_softmax(torch.randn(3, 5, generator=g), dim=-1)
    y = sqn_td_target(r, n1, n2, 0.6, 0.5, logp)
    for p in range(3):
        s = sum(
            math.exp(float(logp[p, i])) * math.exp(min(float(n1[p, i]), float(n2[p, i])) / 0.5)
            for i in range(5)
        )
        assert abs(float(y[p]) - (float(r[p]) + 0.6 * 0.5 * math.log(s))) < 1e-5


def test_policy_logits_add_the_prior() -> None:
    """With the prior the policy logits are log softmax(logits) + Q / alpha, else Q / alpha."""
    logits, q = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1.0, -1.0, 0.5]])
    plain = policy_logits(logits, q, SQNConfig(alpha=0.5))
    assert torch.allclose(plain, q / 0.5)
    with_prior = policy_logits(logits, q, SQNConfig(alpha=0.5, prior=True))
    assert torch.allclose(with_prior, torch.log_softmax(logits, -1) + q / 0.5)
