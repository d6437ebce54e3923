"""Oracle tests for the soft value, the soft TD target and the twin TD loss."""

from __future__ import annotations

import math

import torch

from recsys.rl.losses import ce_loss, soft_td_loss, soft_td_target, soft_value


def test_soft_value_matches_hand_computed() -> None:
    """V = alpha * log(sum exp(Q/alpha)) over valid entries, computed by hand."""
    q = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    alpha = 0.5
    expected = alpha * math.log(math.exp(2.0) + math.exp(4.0) + math.exp(6.0))
    assert torch.allclose(soft_value(q, mask, alpha), torch.tensor([expected]), atol=1e-5)


def test_soft_value_empty_row_is_zero() -> None:
    """A state with no valid next candidate has soft value 0."""
    q = torch.tensor([[5.0, 7.0]])
    assert soft_value(q, torch.zeros(1, 2, dtype=torch.bool), 0.1).item() == 0.0


def test_soft_td_target_brute_force_loop() -> None:
    """y = r + gamma (1 - done) alpha logsumexp(min(Q1', Q2') / alpha) matches a Python loop."""
    g = torch.Generator().manual_seed(0)
    b, k, m = 5, 6, 3
    r = torch.rand(b, m, generator=g)
    done = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    n1, n2 = torch.randn(b, k, generator=g), torch.randn(b, k, generator=g)
    mask = torch.rand(b, k, generator=g) > 0.3
    mask[2] = False  # a non-terminal state with no candidates
    gamma, alpha = 0.9, 0.3
    y = soft_td_target(r, done, n1, n2, mask, gamma, alpha)
    for i in range(b):
        vals = [min(float(n1[i, j]), float(n2[i, j])) for j in range(k) if mask[i, j]]
        v = alpha * math.log(sum(math.exp(x / alpha) for x in vals)) if vals else 0.0
        for j in range(m):
            want = float(r[i, j]) + gamma * (1.0 - float(done[i])) * v
            assert abs(float(y[i, j]) - want) < 1e-4, (i, j, float(y[i, j]), want)


def test_soft_td_loss_ignores_padded_slots_and_is_mse() -> None:
    """The loss is the mean squared error over real chosen slots only, summed over twins."""
    q1 = torch.tensor([[1.0, 2.0, 3.0]])
    q2 = torch.tensor([[0.0, 0.0, 0.0]])
    chosen = torch.tensor([[2, 0]])
    cmask = torch.tensor([[True, False]])
    target = torch.tensor([[1.0, 50.0]])
    loss, metrics = soft_td_loss(q1, q2, chosen, cmask, target)
    assert abs(loss.item() - ((3.0 - 1.0) ** 2 + (0.0 - 1.0) ** 2)) < 1e-6
    assert metrics["q/target_mean"] == 1.0


def test_ce_loss_hand_computed() -> None:
    """Binary cross-entropy on label reward > threshold, logit 0 gives log 2 per head."""
    logits = torch.zeros(1, 3)
    loss, _ = ce_loss(
        logits,
        logits,
        torch.tensor([[0, 1]]),
        torch.tensor([[True, True]]),
        torch.tensor([[1.0, 0.0]]),
    )
    assert abs(loss.item() - 2 * math.log(2.0)) < 1e-6
