"""`ItemCrosses`: a hashed linear model over (history token x item token) crosses, learned
per shown item with AdaGrad, added to the items scorer's Q in the policy's scores.

Q(s, item) sees an item through its evidence features only, so it has no item identity: after a
taste shift nothing it sees points to the new favourites (issue 27). This model gives it one,
the way the Vowpal Wabbit peer learns (`bench.online.vw_policy`: `-q HA -q LA`):
- an item's tokens: its id and the `key=value` words of its title (public attributes such as
  `cat=3`, `brand=7`, `genre=Drama`; other title words are left out);
- features of (user history H, item i), hashed into one weight table (Weinberger et al. 2009,
  "Feature hashing for large scale multitask learning"; no learned embeddings): every token
  of i alone (identity, attributes), every (token of an item among the last `history` events)
  x (token of i), and every (token of the last event) x (token of i); with `mix`, also every
  mix token of the latest `mix` events (`mix_tokens`: an attribute word and the bucket of its
  share among them) x (token of i);
- r(s, i) = the mean of the hashed weights of its active features (each of value 1 / their
  count), and the policy scores Q(s, i) + r(s, i).

Learning (`update`): one example per shown item of a closed decision, its target the item's
reward (impressions 0), its prediction r(s, i) + b_k, where b_k is a learned bias of the
position k it was shown at (k >= 1; absent when scoring, so scores are those of the first
position: VW's `|P` feature). r is thus a reward model of its own, added to Q; trained as a
residual of Q instead (target r - Q(s, i)) it was worse than no model at all (planted, seed 0,
3,000 decisions, in process, one run each: last-20% expected reward 0.429 against 0.487), as a
model of its own better (0.569; `recsys.presets.ONLINE_ITEM_CROSSES_LR`). The error moves the
active weights by AdaGrad (Duchi et al. 2011, Eq. 1 with a diagonal matrix): with
g = err * x_f, w_f += lr * g / sqrt(eps + sum of past g^2 of f), so a first step moves a
prediction by lr and later ones by less: large steps for a rarely seen feature, shrinking as
it is seen. `power_t` replaces the square root's 1/2 (Vowpal Wabbit's `--power_t`): below it,
steps shrink more slowly, so a feature seen for thousands of decisions before a taste shift can
still be unlearned after it.

The learned numbers travel sparse (`CrossesState`: the table is mostly zeros) inside the
learner part (`recsys.rl.learner_part`): a publication carries the non-zero weights and the
position biases, a checkpoint the AdaGrad accumulators too.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.config import CrossesPosition, CrossesTarget, RecommendConfig
from recsys.errors import BundleError
from recsys.rec.item_attrs import attribute_words

__all__ = ["CrossesState", "ItemCrosses", "crosses_for", "item_tokens", "mix_tokens"]

_MIX = np.uint64(0x9E3779B97F4A7C15)
"""Odd 64-bit constant mixing two token hashes into one cross (Fibonacci hashing)."""


def item_tokens(item_id: str, title: str) -> list[int]:
    """The tokens of an item (module docstring) as 32-bit hashes: its id, then the `key=value`
    words of its title."""
    words = [f"id={item_id}", *attribute_words(title)]
    return [zlib.crc32(w.encode()) for w in words]


EXAM_LR = 0.05
"""AdaGrad rate of the examination factors (`recsys.config.CrossesPosition` "exam")."""
EXAM_RANGE = (0.05, 1.5)
"""Bounds of an examination factor: never 0, so every position keeps teaching r."""

MIX_BUCKETS = 4
"""Share buckets of a mix token: an attribute on under 1/4 of the items, 1/4 to 1/2, 1/2 to
3/4, or more (`mix_tokens`)."""


def mix_tokens(hist: Sequence[np.ndarray]) -> np.ndarray:
    """(M,) uint64 one token per attribute word among `hist` (item tokens, each its id first,
    then its attribute words: `item_tokens`), naming the word and the bucket of its share of
    these items (`MIX_BUCKETS`): `cat=3` on 12 of the latest 20 items and `cat=3` on 2 of them
    are different tokens. Crossed with a candidate's tokens as one more history item, they
    say what the user's recent history is mostly made of, which its single items do not."""
    count: dict[int, int] = {}
    for t in hist:
        for a in t[1:].tolist():
            count[a] = count.get(a, 0) + 1
    if not count:
        return np.zeros(0, np.uint64)
    words = np.fromiter(count, np.uint64, len(count))
    share = np.fromiter(count.values(), np.float64, len(count)) / len(hist)
    bucket = np.minimum(MIX_BUCKETS - 1, (MIX_BUCKETS * share).astype(np.int64))
    with np.errstate(over="ignore"):  # wrap-around multiplication is the hash
        return (words * _MIX + bucket.astype(np.uint64) + np.uint64(5)) * _MIX


def _values(valid: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """(P, F) each active feature's value: its `scale` (per column; None: all 1) over the sum
    of the candidate's active scales, so r is their weighted mean weight and a first AdaGrad
    step moves a prediction by at most `lr`."""
    s = np.where(valid, 1.0 if scale is None else scale[None, :], 0.0)
    n = s.sum(axis=1, keepdims=True)
    return np.divide(s, n, out=np.zeros_like(s), where=n > 0).astype(np.float32)


@dataclass(frozen=True)
class CrossesState:
    """The cross model's learned numbers, sparse unless most of the table is kept (module
    docstring)."""

    bits: int
    """log2 of the weight table's size (`ItemCrosses.bits`)."""
    history: int
    """History items crossed (`ItemCrosses.history`)."""
    index: np.ndarray | None
    """(N,) int32 table entries kept, ascending: those with a non-zero weight (and, with the
    AdaGrad state, a non-zero accumulator); None: `w` and `g2` are the whole table (more than
    half of it is kept, where the dense table is the smaller)."""
    w: np.ndarray
    """(N,) (or the table's size) float32 their weights."""
    pos: np.ndarray
    """(P,) float32 the position biases."""
    g2: np.ndarray | None = None
    """Like `w`: their AdaGrad accumulators; None without the AdaGrad state."""
    pos_g2: np.ndarray | None = None
    """(P,) float32 the position biases' accumulators; None without the AdaGrad state."""

    def __post_init__(self) -> None:
        n = (1 << self.bits) if self.index is None else len(self.index)
        assert self.w.shape == (n,), f"{self.w.shape=} {n=}"
        assert self.g2 is None or self.g2.shape == (n,), f"{self.g2.shape=} {n=}"
        assert (self.g2 is None) == (self.pos_g2 is None), "both accumulators or none"

    def without_optimiser(self) -> CrossesState:
        """The non-zero weights and the position biases alone: what a replica scores with."""
        if self.index is None:
            return _pack(self.bits, self.history, self.w != 0, self.w, self.pos)
        keep = self.w != 0
        return CrossesState(self.bits, self.history, self.index[keep], self.w[keep], self.pos)


def _pack(
    bits: int,
    history: int,
    keep: np.ndarray,
    w: np.ndarray,
    pos: np.ndarray,
    g2: np.ndarray | None = None,
    pos_g2: np.ndarray | None = None,
) -> CrossesState:
    """A state of the whole tables `w` (and `g2`) holding the entries `keep` (a mask over the
    table): sparse, or dense when more than half of them are kept (int32 index + value is
    twice a dense entry). Copies: the tables may change afterwards."""
    cp = None if pos_g2 is None else pos_g2.copy()
    if 2 * int(np.count_nonzero(keep)) > keep.size:
        return CrossesState(bits, history, None, w.copy(), pos.copy(), _copy(g2), cp)
    index = np.flatnonzero(keep).astype(np.int32)
    return CrossesState(
        bits, history, index, w[index], pos.copy(), None if g2 is None else g2[index], cp
    )


def _copy(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else a.copy()


class ItemCrosses:
    """The hashed cross model (module docstring); not thread-safe (the caller serialises)."""

    def __init__(
        self,
        bits: int = 20,
        lr: float = 0.1,
        history: int = 5,
        positions: int = 64,
        power_t: float = 0.5,
        last_weight: float = 1.0,
        mix: int = 0,
        target: CrossesTarget = "reward",
        position: CrossesPosition = "bias",
    ) -> None:
        assert 8 <= bits <= 30 and history >= 0 and mix >= 0, f"{bits=} {history=} {mix=}"
        assert 0.0 < power_t <= 1.0 and last_weight > 0.0, f"{power_t=} {last_weight=}"
        assert target in ("reward", "click") and position in ("bias", "exam"), (
            f"{target=} {position=}"
        )
        self.bits, self.lr, self.history, self.power_t = bits, lr, history, power_t
        self.last_weight = last_weight
        """Value of a (last event x item) cross relative to the other features (1: all equal)."""
        self.mix = mix
        """History items whose attribute shares form the mix tokens (`mix_tokens`; 0: none)."""
        self.w = np.zeros(1 << bits, np.float32)
        """Hashed weights."""
        self.g2 = np.zeros(1 << bits, np.float32)
        """Sum of squared gradients per weight (AdaGrad)."""
        self.target, self.position = target, position
        """What a step fits (`recsys.config.CrossesTarget`) and how the shown position enters
        its prediction (`recsys.config.CrossesPosition`)."""
        self.pos = np.full(positions, 1.0 if position == "exam" else 0.0, np.float32)
        """Learned bias (`position` "bias") or examination factor ("exam") of each shown
        position; position 0's stays as it starts (0 or 1): the scoring position."""
        self.pos_g2 = np.zeros(positions, np.float32)
        self._tokens: dict[tuple[str, str], np.ndarray] = {}

    def tokens(self, item_id: str, title: str) -> np.ndarray:
        """(T,) uint64 tokens of an item, cached."""
        key = (item_id, title)
        got = self._tokens.get(key)
        if got is None:
            got = self._tokens[key] = np.array(item_tokens(item_id, title), np.uint64)
        return got

    def _index(
        self, cand: Sequence[np.ndarray], hist: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Hashed feature rows of each candidate: (P, F) weight indices, (P, F) validity and
        (F,) each column's scale (None: all 1)."""
        recent = list(hist[: self.history])
        last = recent[0] if recent else np.zeros(0, np.uint64)
        if self.mix:
            recent.append(mix_tokens(hist[: self.mix]))
        h = np.concatenate(recent) if recent else np.zeros(0, np.uint64)
        lens = np.fromiter((len(c) for c in cand), np.int64, len(cand))
        width = int(lens.max()) if len(cand) else 0
        ok = np.arange(width)[None, :] < lens[:, None]  # each row's tokens, left-aligned
        tok = np.zeros((len(cand), width), np.uint64)
        if len(cand) and width:
            tok[ok] = np.concatenate(cand)
        mask = np.uint64((1 << self.bits) - 1)
        with np.errstate(over="ignore"):  # wrap-around multiplication is the hash
            alone = (tok * _MIX + np.uint64(1)) & mask
            x_h = ((h[None, None, :] * _MIX) ^ tok[:, :, None]) * _MIX + np.uint64(2)
            x_l = ((last[None, None, :] * _MIX) ^ tok[:, :, None]) * _MIX + np.uint64(3)
        p = len(cand)
        idx = np.concatenate(
            [alone, (x_h & mask).reshape(p, -1), (x_l & mask).reshape(p, -1)], axis=1
        )
        valid = np.concatenate(
            [
                ok,
                np.repeat(ok[:, :, None], len(h), axis=2).reshape(p, -1),
                np.repeat(ok[:, :, None], len(last), axis=2).reshape(p, -1),
            ],
            axis=1,
        )
        scale = None
        if self.last_weight != 1.0:
            scale = np.ones(idx.shape[1])
            scale[idx.shape[1] - width * len(last) :] = self.last_weight
        return idx.astype(np.int64), valid, scale

    def scores(self, cand: Sequence[np.ndarray], hist: Sequence[np.ndarray]) -> np.ndarray:
        """(P,) r(s, i) of each candidate's tokens given the history's item tokens, most
        recent first."""
        if not cand:
            return np.zeros(0, np.float32)
        idx, valid, scale = self._index(cand, hist)
        w = self.w  # one read: a concurrent `load` swaps the whole table
        return (_values(valid, scale) * np.where(valid, w[idx], 0.0)).sum(axis=1).astype(np.float32)

    def update(
        self,
        cand: Sequence[np.ndarray],
        hist: Sequence[np.ndarray],
        rewards: np.ndarray,
        positions: np.ndarray,
    ) -> float:
        """One AdaGrad step per shown item (module docstring): `rewards` (P,), `positions` (P,)
        where each was shown. The mean squared error before the step."""
        p = len(cand)
        assert rewards.shape == positions.shape == (p,), f"{rewards.shape=} {positions.shape=} {p=}"
        if p == 0:
            return 0.0
        if self.target == "click":
            rewards = (rewards > 0).astype(np.float32)
        idx, valid, scale = self._index(cand, hist)
        x = _values(valid, scale)
        k = np.clip(positions.astype(np.int64), 0, len(self.pos) - 1)
        r = (x * np.where(valid, self.w[idx], 0.0)).sum(axis=1)
        exam = self.position == "exam"
        m = self.pos[k] if exam else np.ones_like(r)  # d pred / d r
        pred = m * r if exam else r + self.pos[k]
        err = (rewards - pred).astype(np.float32)
        # the squared loss's gradient per active weight, negated
        e = ((err * m)[:, None] * x)[valid]
        f = idx[valid]
        np.add.at(self.g2, f, e * e)
        np.add.at(self.w, f, self.lr * e / self._root(self.g2[f]))
        shown = k > 0
        g = (err * r if exam else err)[shown]  # the gradient of the position's own number
        np.add.at(self.pos_g2, k[shown], g**2)
        step = (EXAM_LR if exam else self.lr) * g / self._root(self.pos_g2[k[shown]])
        np.add.at(self.pos, k[shown], step.astype(np.float32))
        if exam:
            np.clip(self.pos, *EXAM_RANGE, out=self.pos)
        return float(np.mean(err**2))

    def restart(self) -> None:
        """Forget the AdaGrad accumulators (weights kept): the next steps are a fresh model's
        size, so what was learned before a change of tastes is unlearned fast
        (`recsys.rec.drift`)."""
        self.g2 = np.zeros_like(self.g2)
        self.pos_g2 = np.zeros_like(self.pos_g2)

    def _root(self, g2: np.ndarray) -> np.ndarray:
        """AdaGrad's divisor of a step, (eps + sum of past g^2) ** power_t (module docstring)."""
        if self.power_t == 0.5:
            return np.sqrt(1e-6 + g2)
        return np.power(1e-6 + g2, self.power_t, dtype=np.float32)

    def state(self, *, optimiser: bool = True) -> CrossesState:
        """The learned numbers (`CrossesState`), with the AdaGrad state when `optimiser` (a
        checkpoint) or without (a publication)."""
        w, g2 = self.w, self.g2
        if not optimiser:
            return _pack(self.bits, self.history, w != 0, w, self.pos)
        keep = (w != 0) | (g2 != 0)
        return _pack(self.bits, self.history, keep, w, self.pos, g2, self.pos_g2)

    def load(self, state: CrossesState) -> None:
        """Take `state`'s weights and position biases (and its AdaGrad state when it has one;
        else this model keeps its own). New tables are swapped in whole, so a `scores` running
        meanwhile reads the old or the new table, never a mix. `BundleError` when the sizes
        differ."""
        got = (state.bits, state.history, len(state.pos), float(state.pos[0]))
        have = (self.bits, self.history, len(self.pos), float(self.pos[0]))
        if got != have:  # position 0's number tells a bias (0) from an examination factor (1)
            raise BundleError(
                f"cross model (bits, history, positions, position 0) {got} is not this {have}"
            )
        w = _table(self.w.size, state.index, state.w)
        if state.g2 is not None and state.pos_g2 is not None:
            g2 = _table(self.g2.size, state.index, state.g2)
            self.g2, self.pos_g2 = g2, state.pos_g2.astype(np.float32)
        self.w, self.pos = w, state.pos.astype(np.float32)


def crosses_for(cfg: RecommendConfig) -> ItemCrosses | None:
    """A new cross model with `cfg`'s rate and history (`RecommendConfig.item_crosses_lr`,
    `item_crosses_history`, `item_crosses_power_t`, `item_crosses_last_weight`,
    `item_crosses_mix`, `item_crosses_target`, `item_crosses_position`); None when the rate
    is 0 (off)."""
    if cfg.item_crosses_lr <= 0:
        return None
    return ItemCrosses(
        lr=cfg.item_crosses_lr,
        history=cfg.item_crosses_history,
        power_t=cfg.item_crosses_power_t,
        last_weight=cfg.item_crosses_last_weight,
        mix=cfg.item_crosses_mix,
        target=cfg.item_crosses_target,
        position=cfg.item_crosses_position,
    )


def _table(size: int, index: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    """The whole float32 table (`size` entries) of `CrossesState` values (a new array)."""
    if index is None:
        return values.astype(np.float32)
    out = np.zeros(size, np.float32)
    out[index] = values
    return out
