"""Vowpal Wabbit `--cb_explore_adf` as an online contextual-bandit peer with item features.

One decision is one multi-line VW example (Li et al. 2010, "A contextual-bandit approach to
personalized news article recommendation", Alg. 1, with action-dependent features):
- shared line: `|H` the item id and public tokens of each of the last `history` events,
  `|L` the same for the last event alone (so item -> next-item patterns get their own weights);
- one line per candidate item: `|A` its id and tokens, built once at construction;
- `-q HA -q LA`: quadratic context x action features, so the model scores (state, item) pairs.

The slate (`recommend`): VW's exploration PMF over the candidates; the item at position 0 is
drawn from the PMF, the other positions take the remaining candidates in descending PMF order
(ties, e.g. items the model cannot tell apart yet, broken by a fresh random order per decision,
so untried items take turns below the top). The explorer is SquareCB (Foster & Rakhlin 2020,
Eq. 4), whose PMF falls with each action's predicted cost gap, so the PMF order is the model's
ranking; an epsilon-greedy PMF is flat outside its best action and would fill positions 1.. at
random.

Propensities are exact position-wise probabilities of that rule given the PMF and the
decision's tie-break order (the tie-break is drawn independently of the outcome): position 0 gets
`pmf[item]`; with the candidates in PMF order o_0, o_1, ... and S_k = pmf(o_0) + ... +
pmf(o_{k-1}), position k >= 1 holds o_{k-1} with probability 1 - S_k (the draw came from
below it) and o_k with probability S_k (the draw came from above it).

Learning (`learn`): one VW update per shown position, its action set being the shown list and
its label `cost = -reward` with the position's propensity; VW's default `cb_type` (mtr)
regresses the labelled action's reward only, importance-weighted by 1 / propensity. The
position k >= 1 is a linear feature of the labelled line (`|P`), absent when predicting, so it
soaks up the examination drop of lower positions instead of the items shown there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import vowpalwabbit

from bench.sim.base import HistoryEvent

_UNSAFE = re.compile(r"[\s|:]")
"""Characters VW's text format reserves (separators, namespaces, values)."""

_CB = vowpalwabbit.LabelType.CONTEXTUAL_BANDIT
"""Passed to `parse`: saves pyvw a label-type query per line (a third of a predict's time)."""


def _token(s: str) -> str:
    """A string as one VW feature name (reserved characters become '_')."""
    return _UNSAFE.sub("_", s)


@dataclass(frozen=True)
class VWConfig:
    """The VW peer: exploration, candidate pool, context and VW arguments."""

    explore: str = "--squarecb --gamma_scale 30"
    """VW exploration arguments. SquareCB ranks the candidates by predicted cost (the slate
    rule needs an ordered PMF, see the module docstring); its greediness grows as gamma =
    gamma_scale * sqrt(t). Measured (one run each, 20k decisions on the planted simulator with
    a taste shift halfway, expected reward / oracle's): gamma_scale 30 -> 0.52, 300 -> 0.52,
    1000 -> 0.50 (0.55 with index tie-breaks), random lists 0.09; epsilon 0.1 was 0.16 at 4k
    decisions (flat PMF, random positions 1..). 30 is kept because 100 and above stop exploring
    too soon in a toy next-item task (3 of 8 seeds never find the rewarded item) while 30 finds
    it in 8 of 8 (tests/training/test_vw_policy.py)."""
    max_actions: int = 400
    """Candidate pool per decision. A catalogue no larger is used whole. A larger one gives:
    up to a quarter items related to the recent history (items the policy saw acted on right
    after one of them, then items sharing a public token with the last one, each by the
    policy's own acted-on counts), up to an eighth drawn at random (so unseen items can be
    discovered), and the rest the most acted-on items the policy observed in `learn`."""
    history: int = 5
    """Recent events used as shared context (the last one also alone, namespace L)."""
    exclude_seen: bool = True
    """Items in the user's history are not candidates (the seen-item rule every method of the
    online benchmark gets); they are allowed again only when too few others remain."""
    position_feature: bool = True
    """Learn with the shown position (k >= 1) as a linear feature of the labelled line; it is
    absent at prediction, so scores are those of position 0."""
    extra_args: str = "-q HA -q LA -b 22 --power_t 0.25 --quiet"
    """More VW arguments: the two context x action interactions, 2^22 hashed weights (item x
    item pairs of a 400-item catalogue would collide in the default 2^18), a slower learning
    rate decay (power_t 0.25, default 0.5) because users' tastes shift during a run, and no
    console output."""
    seed: int = 0
    """VW's --random_seed and the seed of the slate draws."""


class VWPolicy:
    """In-process VW peer; `recommend` then `learn` once per decision (see module docstring)."""

    name = "vw"

    def __init__(self, item_ids: list[str], item_features: list[list[str]], cfg: VWConfig) -> None:
        if not item_ids:
            raise ValueError("VWPolicy needs a non-empty catalogue (item_ids is empty)")
        if len(item_features) != len(item_ids):
            raise ValueError(
                f"item_features has {len(item_features)} rows for {len(item_ids)} item ids"
            )
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("item_ids has duplicates")
        if cfg.max_actions <= 0 or cfg.history < 0:
            raise ValueError(f"need max_actions > 0 and history >= 0, got {cfg}")
        self.cfg = cfg
        self.ids = list(item_ids)
        self.row_of = {s: i for i, s in enumerate(self.ids)}
        self._feats = [
            " ".join([f"i={_token(s)}", *(_token(t) for t in toks)])
            for s, toks in zip(self.ids, item_features, strict=True)
        ]
        self._action = [f"|A {f}" for f in self._feats]
        self._rng = np.random.default_rng(cfg.seed)
        self._counts = np.zeros(len(self.ids), np.float64)
        self._follow: dict[int, dict[int, int]] = {}
        self._by_token: dict[str, list[int]] = {}
        for row, toks in enumerate(item_features):
            for t in toks:
                self._by_token.setdefault(t, []).append(row)
        self._tokens = [list(toks) for toks in item_features]
        args = f"--cb_explore_adf {cfg.explore} {cfg.extra_args} --random_seed {cfg.seed}"
        self.vw = vowpalwabbit.Workspace(args)

    # --- features -----------------------------------------------------------------------
    def _history_rows(self, history: Sequence[HistoryEvent]) -> list[int]:
        return [self.row_of[e.item_id] for e in history if e.item_id in self.row_of]

    def _shared(self, rows: list[int]) -> str:
        recent = rows[-self.cfg.history :] if self.cfg.history else []
        if not recent:
            return "shared |H none"
        h = " ".join(self._feats[r] for r in recent)
        return f"shared |H {h} |L {self._feats[recent[-1]]}"

    # --- candidates ---------------------------------------------------------------------
    def _pool(self, rows: list[int], n: int) -> np.ndarray:
        """Rows of the candidate items (see `VWConfig.max_actions`), at least n of them."""
        n_items = len(self.ids)
        allowed = np.ones(n_items, bool)
        if self.cfg.exclude_seen and rows:
            allowed[rows] = False
            if int(allowed.sum()) < n:
                allowed[:] = True
        size = max(self.cfg.max_actions, n)
        if int(allowed.sum()) <= size:
            return np.flatnonzero(allowed)
        picked: list[int] = []
        taken = ~allowed

        def take(cands: Sequence[int] | np.ndarray, budget: int) -> None:
            for r in cands:
                if budget <= 0:
                    return
                if not taken[r]:
                    taken[r] = True
                    picked.append(int(r))
                    budget -= 1

        related: list[int] = []
        for r in reversed(rows[-self.cfg.history :] if self.cfg.history else []):
            nxt = self._follow.get(r, {})
            related.extend(sorted(nxt, key=nxt.__getitem__, reverse=True))
        if rows:
            near = {s for t in self._tokens[rows[-1]] for s in self._by_token[t]}
            related.extend(sorted(near, key=lambda s: -self._counts[s]))
        take(related, size // 4)
        free = np.flatnonzero(~taken)
        n_random = min(size // 8, len(free))
        take(self._rng.choice(free, size=n_random, replace=False), n_random)
        need = size - len(picked)
        free = np.flatnonzero(~taken)
        if need > 0 and len(free) > 0:
            top = free[np.argsort(-self._counts[free], kind="stable")[:need]]
            take(top, need)
        return np.array(picked, np.int64)

    # --- the policy interface -----------------------------------------------------------
    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int
    ) -> tuple[list[str], list[float]]:
        """n distinct items and the probability VW's exploration PMF gave each (position-wise:
        position 0 exact, `pmf[item]`; positions k >= 1 the exact probability that the item is
        at position k under the slate rule given this decision's tie-break order, see the
        module docstring)."""
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        if n > len(self.ids):
            raise ValueError(f"n={n} exceeds the catalogue size {len(self.ids)}")
        rows = self._history_rows(history)
        pool = self._pool(rows, n)
        assert len(pool) >= n, f"{len(pool)=} {n=}"
        lines = [self._shared(rows), *(self._action[r] for r in pool.tolist())]
        examples = self.vw.parse(lines, _CB)
        pmf = np.asarray(self.vw.predict(examples), np.float64)
        self.vw.finish_example(examples)
        assert pmf.shape == pool.shape, f"{pmf.shape=} {pool.shape=}"
        pmf = np.clip(pmf, 0.0, None)
        pmf /= pmf.sum()
        first = int(self._rng.choice(len(pmf), p=pmf))
        order = np.lexsort((self._rng.random(len(pmf)), -pmf))  # ties: a random order
        rest = order[order != first][: n - 1]
        head = np.cumsum(pmf[order])  # head[k - 1] = S_k
        tail = np.cumsum(pmf[order][::-1])[::-1]  # tail[k] = 1 - S_k, summed without cancelling
        pscores = [float(pmf[first])]
        for k, a in enumerate(rest.tolist(), start=1):
            pscores.append(float(tail[k] if a == order[k - 1] else head[k - 1]))
        slate = [first, *rest.tolist()]
        return [self.ids[int(pool[a])] for a in slate], pscores

    def learn(
        self,
        user_id: str,
        history: list[HistoryEvent],
        shown: list[str],
        pscores: list[float],
        rewards: list[float],
    ) -> None:
        """rewards[k] = reward of the item shown at position k (0 if not acted on); VW
        minimises cost = -reward. `history` is the one `recommend` was given."""
        if not (len(shown) == len(pscores) == len(rewards)):
            raise ValueError(f"{len(shown)=} {len(pscores)=} {len(rewards)=} must be equal")
        unknown = [s for s in shown if s not in self.row_of]
        if unknown:
            raise ValueError(f"items not in the catalogue: {unknown[:5]}")
        bad = [p for p in pscores if not 0.0 < p <= 1.0]
        if bad:
            raise ValueError(f"pscores must be in (0, 1], got {bad[:5]}")
        if not shown:
            return
        rows = self._history_rows(history)
        shared = self._shared(rows)
        shown_rows = [self.row_of[s] for s in shown]
        actions = [self._action[r] for r in shown_rows]
        for k, (p, r) in enumerate(zip(pscores, rewards, strict=True)):
            lines = [shared, *actions]
            pos = f" |P p{k}" if self.cfg.position_feature and k > 0 else ""
            lines[1 + k] = f"0:{-r:.6g}:{p:.6g} {actions[k]}{pos}"
            examples = self.vw.parse(lines, _CB)
            self.vw.learn(examples)
            self.vw.finish_example(examples)
            if r > 0:
                item = shown_rows[k]
                self._counts[item] += 1.0
                if rows:
                    nxt = self._follow.setdefault(rows[-1], {})
                    nxt[item] = nxt.get(item, 0) + 1

    def close(self) -> None:
        """Release VW's workspace."""
        self.vw.finish()


__all__ = ["VWConfig", "VWPolicy"]
