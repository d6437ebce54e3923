"""Item candidates with evidence features: what the item-scoring policy Q(s, item) sees.

The item scorer (`RecommendConfig.scorer = "items"`) makes the policy's distribution the list:
softmax(Q(s, i) / alpha) over a pool of candidate items, each item described by its catalogue
vector (the Q network's "key") and the evidence below. Every signal is from the past of the
decision: cases retrieved as of `now`, popularity as of `now`, co-occurrence counts of the
training period (with the decision's own user left out in training passes), and the user's
own earlier events.

Pool: items of the K retrieved cases, the state's catalogue neighbours, popular items, the
item-kNN items of the user's recent history and of their last item, the items that followed
their latest items, and (unless seen items are excluded) the user's latest items.

Features (`ITEM_FEATURES`, in column order):

- case evidence, each retrieved case weighted by w = its similarity x 2^(-age / h)
  (`RecommendConfig.evidence_half_life_hours` h; 0: no age weight): vote share of w, best
  similarity, the position-corrected reward rate sum(w * reward) / sum(w * exam(position))
  (exam(k) = 1 / log2(2 + k) at the position the case's decision showed the item, 1 for a case
  without one; with impression cases of the service, which record shown-and-ignored items at
  reward 0, this is a click rate corrected for where the item was shown), the log exposure count
  (retrieved cases proposing the item: 0 means unknown, not bad), and the rank score of the best
  of them in retrieval order;
- neighbours: cosine(state, item) and its rank score within the pool;
- popularity: time-decayed count over the pool's maximum and its rank score;
- item-kNN: co-occurrence score with the recent history (over the pool's maximum), its rank
  score, and the co-occurrence with the last item alone;
- successions: P(next item | each of the user's 3 latest items) from how often items followed
  each other in the training sequences (decay 0.5 per step back), share and rank score;
- the user's own history: log count of earlier events on the item, recency of the latest
  (exp(-hours / 72)), and cosine with the last item's vector;
- attributes: the user's recent affinity for the item's `key=value` title words (category,
  brand, genre), the largest and the mean over its words (`recsys.rec.item_attrs`).

Rank scores are 1 / log2(2 + rank); ranks and maxima are taken within the pool, so a request
costs O(pool) beyond the catalogue-wide scoring of each source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.ranking import top_n_stable
from recsys.rec.item_attrs import ItemAttributes
from recsys.records import Candidates

__all__ = [
    "ITEM_FEATURES",
    "CaseSums",
    "ItemEvidence",
    "case_sums",
    "case_vote",
    "case_weights",
    "exam_weight",
    "item_feature_matrix",
]

ITEM_FEATURES: tuple[str, ...] = (
    "case_votes",
    "case_max_sim",
    "case_outcome",
    "case_log_count",
    "case_best_rank",
    "nb_sim",
    "nb_rank",
    "pop",
    "pop_rank",
    "knn",
    "knn_rank",
    "knn_last",
    "next",
    "next_rank",
    "seen_log_count",
    "seen_recency",
    "sim_last",
    "attr_max",
    "attr_mean",
)
"""Column names of the item features (F = 19)."""

_RECENCY_HOURS = 72.0


@dataclass
class ItemEvidence:
    """Catalogue-wide signals of one request (I items) and the retrieved cases' evidence."""

    nb_sim: np.ndarray
    """(I,) cosine of the state with each item vector."""
    pop: np.ndarray
    """(I,) time-decayed popularity as of the decision."""
    knn: np.ndarray
    """(I,) co-occurrence score with the recent history (zeros when off or no history)."""
    knn_last: np.ndarray
    """(I,) co-occurrence score with the last item alone."""
    nxt: np.ndarray
    """(I,) succession score: P(next item | the user's latest items), decayed over them."""
    seen_count: dict[int, int]
    """item row -> the user's earlier events on it."""
    seen_last_ts: dict[int, float]
    """item row -> time of the user's latest earlier event on it."""
    last_vec: np.ndarray | None
    """(d,) vector of the user's last item (None: none)."""
    case_rows: list[tuple[int, ...]]
    """Per retrieved case (retrieval order): the item rows it proposes."""
    case_sims: np.ndarray
    """(K,) similarity of each retrieved case."""
    case_rewards: np.ndarray
    """(K,) outcome reward of each retrieved case."""
    case_ids: np.ndarray
    """(K,) bank ids of the retrieved cases."""
    case_age_hours: np.ndarray | None = None
    """(K,) age of each retrieved case at the decision (None: no age weight)."""
    case_positions: np.ndarray | None = None
    """(K,) position at which each case's decision showed its item (-1: unknown; None: all
    unknown)."""
    half_life_hours: float = 0.0
    """Age half-life of a case's weight (0: none)."""
    attributes: ItemAttributes | None = None
    """The catalogue's attribute words (None: no attribute features)."""
    affinity: np.ndarray | None = None
    """(V,) the user's recent affinity per attribute word (`ItemAttributes.affinity`)."""


def exam_weight(position: np.ndarray) -> np.ndarray:
    """Examination prior of a list position, 1 / log2(2 + k) (k >= 0); 1 where unknown (< 0)."""
    k = np.asarray(position, np.float64)
    return np.where(k >= 0, 1.0 / np.log2(2.0 + np.maximum(k, 0.0)), 1.0)


def case_weights(ev: ItemEvidence) -> np.ndarray:
    """(K,) evidence weight of each retrieved case: max(similarity, 0) x 2^(-age / half-life)."""
    w = np.maximum(ev.case_sims.astype(np.float64), 0.0)
    if ev.half_life_hours > 0 and ev.case_age_hours is not None:
        w = w * 0.5 ** (np.maximum(ev.case_age_hours, 0.0) / ev.half_life_hours)
    return w


def _rank_scores(values: np.ndarray) -> np.ndarray:
    """1 / log2(2 + rank) of each entry by descending value (`top_n_stable`: compared at
    `RANK_DECIMALS`, ties by pool position), 0 where value <= 0."""
    order = top_n_stable(values, len(values))
    ranks = np.empty(len(values), np.int64)
    ranks[order] = np.arange(len(values))
    out = 1.0 / np.log2(2.0 + ranks)
    return np.where(values > 0, out, 0.0)


def _share(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


@dataclass
class CaseSums:
    """Per pool item: the retrieved cases' evidence summed over the cases proposing it."""

    votes: np.ndarray
    """(P,) share of the total case weight."""
    max_sim: np.ndarray
    """(P,) best similarity."""
    outcome: np.ndarray
    """(P,) sum of weight x reward."""
    exams: np.ndarray
    """(P,) sum of weight x examination prior (the position-corrected exposure)."""
    count: np.ndarray
    """(P,) number of cases."""
    best: np.ndarray
    """(P,) retrieval rank of the first case (-1: none)."""
    support: dict[int, list[int]]
    """Item row -> bank ids of the cases proposing it."""


def case_sums(pool: Sequence[int], ev: ItemEvidence) -> CaseSums:
    """The retrieved cases' evidence of each pool item (`CaseSums`), summed once per request
    for the features and the vote."""
    rows = np.asarray(list(pool), np.int64)
    p = len(rows)
    at = {int(r): k for k, r in enumerate(rows.tolist())}
    out = CaseSums(
        np.zeros(p), np.zeros(p), np.zeros(p), np.zeros(p), np.zeros(p),
        np.full(p, -1, np.int64), {},
    )  # fmt: skip
    sims = np.maximum(ev.case_sims.astype(np.float64), 0.0)
    w = case_weights(ev)
    total = float(w.sum()) or 1.0
    pos = ev.case_positions if ev.case_positions is not None else np.full(len(sims), -1)
    exam = exam_weight(pos)
    # (case, pool position) of every proposal, in retrieval order: np.ufunc.at applies them
    # in that order, so each sum adds the same terms in the same order as a loop over cases
    pairs = [(c, k) for c, items in enumerate(ev.case_rows) for r in items
             if (k := at.get(int(r))) is not None]  # fmt: skip
    if not pairs:
        return out
    cs, ks = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
    wc = w[cs]
    np.add.at(out.votes, ks, wc / total)
    np.maximum.at(out.max_sim, ks, sims[cs])
    np.add.at(out.outcome, ks, wc * ev.case_rewards[cs].astype(np.float64))
    np.add.at(out.exams, ks, wc * exam[cs])
    np.add.at(out.count, ks, 1.0)
    first = np.full(p, len(ev.case_rows), np.int64)
    np.minimum.at(first, ks, cs)
    out.best = np.where(first < len(ev.case_rows), first, -1)
    ids, row_list = ev.case_ids.tolist(), rows.tolist()
    for c, k in zip(cs.tolist(), ks.tolist(), strict=True):
        out.support.setdefault(row_list[k], []).append(int(ids[c]))
    return out


def case_vote(s: CaseSums, prior: float = 1.0) -> np.ndarray:
    """(P,) the case memory's own estimate of each pool item's reward: its position-corrected
    reward rate among the retrieved (similar, recent) situations, shrunk towards the rate of
    all retrieved evidence: (sum w * reward + prior * r0) / (sum w * exam + prior), r0 the
    pooled rate (0 without evidence). An item no case proposed gets r0: unknown is average, not
    bad. Added to the policy's scores by `RecommendConfig.case_vote_weight`."""
    seen = float(s.exams.sum())
    r0 = float(s.outcome.sum()) / seen if seen > 0 else 0.0
    return (s.outcome + prior * r0) / (s.exams + prior)


def _lookup(rows: np.ndarray, table: Mapping[int, float], missing: float) -> np.ndarray:
    """(P,) `table[row]` of each row (float64), `missing` where absent: one sorted search over
    the table's few keys instead of a dict look-up per row."""
    out = np.full(len(rows), missing)
    if not table or not len(rows):
        return out
    keys = np.fromiter(table.keys(), np.int64, len(table))
    vals = np.fromiter(table.values(), np.float64, len(table))
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    at = np.minimum(np.searchsorted(keys, rows), len(keys) - 1)
    hit = keys[at] == rows
    out[hit] = vals[at[hit]]
    return out


def item_feature_matrix(
    pool: Sequence[int],
    ev: ItemEvidence,
    vecs: np.ndarray,
    now: float,
    sums: CaseSums | None = None,
) -> tuple[Candidates, dict[int, list[int]]]:
    """(item candidates over `pool`, item row -> bank ids of the retrieved cases proposing it).

    The candidates' `case_ids` are ITEM ROWS, `keys` the item vectors, `sims` cosine(state, item),
    `features` the `ITEM_FEATURES` columns. `sums`: `case_sums(pool, ev)` when the caller
    already has them."""
    rows = np.asarray(list(pool), np.int64)
    p = len(rows)
    cs = sums if sums is not None else case_sums(pool, ev)
    outcome = np.divide(cs.outcome, cs.exams, out=np.zeros(p), where=cs.exams > 0)
    best_rank = np.where(cs.best >= 0, 1.0 / np.log2(2.0 + np.maximum(cs.best, 0)), 0.0)
    nb = ev.nb_sim[rows]
    pop = ev.pop[rows]
    knn = ev.knn[rows]
    seen = _lookup(rows, ev.seen_count, 0.0)
    age_h = (now - _lookup(rows, ev.seen_last_ts, -np.inf)) / 3600.0
    recency = np.exp(-np.maximum(age_h, 0.0) / _RECENCY_HOURS)
    sim_last = vecs[rows] @ ev.last_vec if ev.last_vec is not None else np.zeros(p)
    attr = (
        ev.attributes.features(rows.tolist(), ev.affinity)
        if ev.attributes is not None and ev.affinity is not None
        else np.zeros((p, 2))
    )
    feats = np.stack(
        [
            cs.votes,
            cs.max_sim,
            outcome,
            np.log1p(cs.count),
            best_rank,
            nb,
            _rank_scores(nb + 2.0),  # cosine may be negative: rank every item
            _share(pop),
            _rank_scores(pop),
            _share(knn),
            _rank_scores(knn),
            _share(ev.knn_last[rows]),
            _share(ev.nxt[rows]),
            _rank_scores(ev.nxt[rows]),
            np.log1p(seen),
            recency,
            sim_last,
            attr[:, 0],
            attr[:, 1],
        ],
        axis=1,
    )
    assert feats.shape == (p, len(ITEM_FEATURES)), f"{feats.shape=}"
    cands = Candidates(
        case_ids=rows,
        keys=np.asarray(vecs[rows], np.float32),
        sims=nb.astype(np.float32),
        features=feats.astype(np.float32),
        mask=np.ones(p, bool),
    )
    return cands, cs.support
