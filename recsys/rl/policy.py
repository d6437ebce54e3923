"""Soft policy over retrieved cases: mu(c | s, M) = softmax(Q(s, c) / alpha) on valid cases.

Pure tensor functions (shapes (B, K)); masked candidates get log-probability -inf and
probability exactly 0. Sampling m cases without replacement uses the Gumbel top-k trick
(equivalent to sequential sampling, Kool et al. 2019); its slate log-probability is the
Plackett-Luce product. `list_propensities` gives, per position of one drawn list, the
probability that the policy puts that item there (the logged propensities of a served list:
exact for positions 1 and 2, a Rao-Blackwellised Monte-Carlo average over sampled prefixes
after); `position_marginals` / `epsilon_greedy_marginals` give the whole (candidate x position)
table by counting draws (numpy). The slotted explorer (`recsys.rl.slotted`, the default list
draw) needs none of this: its propensities are exact by construction.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch

from recsys.ranking import top_n_stable

if TYPE_CHECKING:  # the learner imports this module
    from recsys.records import Candidates, Choice
    from recsys.rl.learner import Learner

__all__ = [
    "PREFIX_DRAWS",
    "PROPENSITY_DRAWS",
    "choice_propensities",
    "entropy",
    "epsilon_greedy_marginals",
    "greedy_top_m",
    "list_propensities",
    "logged_propensities",
    "masked_log_softmax",
    "position_marginals",
    "sample_without_replacement",
    "score_order",
    "slate_log_prob",
]

NEG_INF = float("-inf")
PROPENSITY_DRAWS = 2000
"""Monte-Carlo draws per list of the tabular policy's propensities of positions > 1 (counted
draws, standard error <= 0.5 / sqrt(draws) ~ 0.011)."""
PREFIX_DRAWS = 128
"""Sampled prefixes per list of the soft policy's propensities of positions > 2
(`list_propensities`): each draw contributes the exact conditional probability of the item
given the prefix, not a 0/1 count, so far fewer draws are needed than counting takes (the
standard error is that of a [0, 1] average at most, and in practice well below it)."""


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


def greedy_top_m(
    score: torch.Tensor, mask: torch.Tensor, m: int, ids: np.ndarray | None = None
) -> torch.Tensor:
    """(B, K) scores -> (B, m) indices of the m best valid entries, best first.

    The order of `recsys.ranking.top_n_stable`: scores compared at `RANK_DECIMALS`, ties by
    ascending `ids` (B, K) (the candidates' case ids or item rows; None: position), so the
    greedy list does not depend on the thread count that computed Q. Rank Q itself, not
    log pi = Q / alpha - logsumexp: the same order, without 1 / alpha amplifying the noise.
    """
    assert score.shape == mask.shape, f"{score.shape=} {mask.shape=}"
    s = np.where(mask.cpu().numpy(), score.detach().cpu().numpy().astype(np.float64), -np.inf)
    assert ids is None or ids.shape == s.shape, f"{s.shape=} {None if ids is None else ids.shape}"
    rows = [top_n_stable(s[b], m, None if ids is None else ids[b]) for b in range(len(s))]
    return torch.from_numpy(np.stack(rows)).to(score.device)


def score_order(score: np.ndarray, cands: Candidates) -> np.ndarray:
    """The valid candidates' rows, best score first (`recsys.ranking.top_n_stable`, ties by
    case id): the order of the tabular policy (`Learner._act_tabular`)."""
    valid = np.flatnonzero(cands.mask)
    return valid[top_n_stable(score[valid], len(valid), cands.case_ids[valid])]


def slate_log_prob(logp: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B,) Plackett-Luce log-probability of drawing the ordered slate `idx` (B, m)
    without replacement: sum_j [logp_j - log(1 - sum_{i<j} p_i)]."""
    chosen = logp.gather(-1, idx)
    p = chosen.exp()
    used = torch.cumsum(p, -1) - p
    return (chosen - torch.log1p(-used.clamp(max=1.0 - 1e-7))).sum(-1)


def position_marginals(
    logp: np.ndarray, m: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """(K,) log-probs -> (K, m) P(candidate k is at position j) under Plackett-Luce sampling of
    m candidates without replacement (what `sample_without_replacement` draws).

    Column 0 is exact: softmax(logp) itself. Columns 1.. are Monte-Carlo estimates from `draws`
    vectorised Gumbel-top-m draws (standard error <= 0.5 / sqrt(draws)). Masked (-inf)
    entries get 0 everywhere; with m <= valid entries every column sums to 1.
    """
    logp = np.asarray(logp, np.float64)
    assert logp.ndim == 1, f"{logp.shape=}"
    k = logp.shape[0]
    valid = np.isfinite(logp)
    assert 1 <= m <= int(valid.sum()), f"{m=} valid={int(valid.sum())}"
    assert draws >= 1, f"{draws=}"
    out = np.zeros((k, m), np.float64)
    p = np.where(valid, np.exp(logp - logp[valid].max()), 0.0)
    out[:, 0] = p / p.sum()
    if m > 1:
        keys = logp[None, :] + rng.gumbel(size=(draws, k))  # -inf stays -inf: never drawn
        top = np.argpartition(-keys, m - 1, axis=1)[:, :m]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        slate = np.take_along_axis(top, order, axis=1)  # (draws, m), best key first
        counts = np.bincount((slate * m + np.arange(m)).ravel(), minlength=k * m)
        out[:, 1:] = counts.reshape(k, m)[:, 1:] / draws
    return out


def _rest_mass(p: np.ndarray) -> np.ndarray:
    """(K,) 1 - p_j for a normalised p, the largest entry's as the sum of the others (no
    cancellation when one candidate holds almost all the mass)."""
    rest = 1.0 - p
    top = int(np.argmax(p))
    rest[top] = np.delete(p, top).sum()
    return rest


def list_propensities(
    logp: np.ndarray, indices: np.ndarray, rng: np.random.Generator, draws: int = PREFIX_DRAWS
) -> np.ndarray:
    """(m,) P(indices[j] is at position j) for one list drawn by Plackett-Luce sampling of
    m = len(indices) distinct candidates from softmax(logp) (`sample_without_replacement`).

    logp: (K,) log-probabilities (-inf: masked). With p = softmax(logp) and t_j = indices[j]:
    - position 1 is exact: p_t;
    - position 2 is exact: sum_{i != t} p_i * p_t / (1 - p_i) = p_t * (S - p_t / (1 - p_t)),
      S = sum_i p_i / (1 - p_i) (O(K));
    - position j > 2 is E_prefix[1{t not in prefix} * p_t / (1 - sum_{i in prefix} p_i)]
      over prefixes of length j - 1 drawn from the same policy (Rao-Blackwellised: each draw
      adds the exact conditional probability, not a 0/1 count), averaged over `draws`
      sampled prefixes plus the realised one (so a shown item never gets 0).
    """
    logp = np.asarray(logp, np.float64)
    idx = np.asarray(indices, np.int64)
    assert logp.ndim == 1 and idx.ndim == 1, f"{logp.shape=} {idx.shape=}"
    m, k = len(idx), len(logp)
    valid = np.isfinite(logp)
    assert m <= int(valid.sum()), f"{m=} valid={int(valid.sum())}"
    assert draws >= 0, f"{draws=}"
    out = np.zeros(m, np.float64)
    if m == 0:
        return out
    p = np.where(valid, np.exp(logp - logp[valid].max()), 0.0)
    p /= p.sum()
    out[0] = p[idx[0]]
    if m > 1:
        ratio = np.where(valid, p / np.maximum(_rest_mass(p), 1e-300), 0.0)
        out[1] = p[idx[1]] * (ratio.sum() - ratio[idx[1]])
    if m > 2:
        n = m - 1  # the longest prefix needed (for the last position)
        keys = logp[None, :] + rng.gumbel(size=(draws, k))  # -inf stays -inf: never drawn
        top = np.argpartition(-keys, n - 1, axis=1)[:, :n]
        order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
        pre = np.vstack([np.take_along_axis(top, order, axis=1), idx[None, :n]])  # (D + 1, n)
        after = 1.0 - np.cumsum(p[pre], axis=1)  # (D + 1, n) mass left after each slot
        for j in range(2, m):
            t = idx[j]
            absent = ~(pre[:, :j] == t).any(axis=1)
            left = np.maximum(after[:, j - 1], p[t])  # >= p_t where t is left (rounding)
            out[j] = float(np.mean(np.where(absent, p[t] / left, 0.0)))
    return np.clip(out, 0.0, 1.0)


def epsilon_greedy_marginals(
    order: np.ndarray, n: int, m: int, eps: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """(n, m) P(candidate at position j) of the tabular policy (`Learner._act_tabular`): each
    slot takes the best remaining candidate with probability 1 - eps, else one of the
    remaining uniformly at random.

    order: the valid candidates' rows (into a length-n candidate set), best first. Column 0 is
    exact (eps / V + (1 - eps) for the best); columns 1.. are Monte-Carlo estimates from
    `draws` vectorised simulations; rows outside `order` are 0.
    """
    order = np.asarray(order, np.int64)
    v = len(order)
    assert 1 <= m <= v, f"{m=} {v=}"
    assert 0.0 <= eps <= 1.0, f"{eps=}"
    ranks = np.zeros((v, m), np.float64)
    ranks[:, 0] = eps / v
    ranks[0, 0] += 1.0 - eps
    taken = np.zeros((draws, v), bool)
    rows = np.arange(draws)
    for j in range(m):
        explore = rng.random(draws) < eps
        best = np.argmin(taken, axis=1)  # first untaken rank (ranks are sorted best first)
        noise = np.where(taken, -1.0, rng.random((draws, v)))
        pick = np.where(explore, np.argmax(noise, axis=1), best)
        taken[rows, pick] = True
        if j > 0:
            ranks[:, j] = np.bincount(pick, minlength=v) / draws
    out = np.zeros((n, m), np.float64)
    out[order] = ranks
    return out


def choice_propensities(
    probs: np.ndarray,
    indices: np.ndarray,
    rng: np.random.Generator,
    *,
    sampled: bool,
    order: np.ndarray | None = None,
    eps: float = 0.0,
    draws: int = PROPENSITY_DRAWS,
) -> np.ndarray:
    """(m,) pscore_j = P(indices[j] at position j | state) of one `Learner.act` choice: the
    logged propensities of a served list.

    probs: (K,) the policy (`Choice.probs`); indices: (m,) the chosen rows, in order.
    - not `sampled` (greedy: the list is a function of the state): 1.0 everywhere;
    - `order` None: a Gumbel-top-m (Plackett-Luce) draw from `probs` (`list_propensities`:
      positions 1 and 2 exact, later ones averaged over `PREFIX_DRAWS` sampled prefixes);
    - `order` given: the tabular epsilon-greedy draw over `order` (`epsilon_greedy_marginals`):
      position 1 exact, positions > 1 Monte-Carlo estimates from `draws` draws that count the
      realised list as one more draw, (count + 1) / (draws + 1), so a shown item never gets 0.
    """
    m = len(indices)
    if not sampled or m == 0:
        return np.ones(m)
    if order is None:
        p64 = np.asarray(probs, np.float64)
        with np.errstate(divide="ignore"):
            logp = np.where(p64 > 0, np.log(p64), -np.inf)
        return np.clip(list_propensities(logp, indices, rng), 1e-12, 1.0)
    marg = epsilon_greedy_marginals(order, len(probs), m, eps, draws, rng)
    p = marg[np.asarray(indices, np.int64), np.arange(m)]
    p[1:] = (p[1:] * draws + 1.0) / (draws + 1.0)
    return np.clip(p, 1e-12, 1.0)


def logged_propensities(
    learner: Learner,
    state: np.ndarray,
    cands: Candidates,
    choice: Choice,
    greedy: bool,
    seed: str,
) -> np.ndarray:
    """(m,) propensities of `choice = learner.act(state, cands, m, greedy)`
    (`choice_propensities`; Monte-Carlo seeded by `seed`, e.g. the request): greedy, the
    non-parametric mode and tabular with epsilon 0 are deterministic (1.0); a slotted draw
    (`Choice.explored` set, `recsys.rl.slotted`) logs its exact P(item at position j | the
    items above it), position 0's being its marginal (no Monte-Carlo); soft-q /
    parametric-ce otherwise sample Plackett-Luce; tabular is epsilon-greedy over its score
    order (re-read here: an update between `act` and this call can move it)."""
    if choice.explored is not None:  # a slotted draw: exact, conditional on the prefix
        return np.clip(np.exp(choice.logp.astype(np.float64)), 1e-12, 1.0)
    eps = learner.cfg.tabular_epsilon
    tab = learner.mode == "tabular"
    sampled = not greedy and learner.mode != "non-parametric" and (not tab or eps > 0)
    order = None
    if sampled and tab:  # `Learner._act_tabular`'s order of the valid candidates
        order = score_order(learner.scores(state, cands), cands)
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    return choice_propensities(
        choice.probs, choice.indices, rng, sampled=sampled, order=order, eps=eps
    )
