"""The recommend pipeline's settings (`RecommendConfig`, with the blend scorer's
`BlendConfig`), a part of the model schema `recsys.config.CoreConfig` (re-exported there; the
rules of `recsys.config` apply: one field, one default, a docstring saying why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["BlendConfig", "CrossesPosition", "CrossesTarget", "RecommendConfig", "Scorer"]

Scorer = Literal["blend", "items", "seq"]
"""What the policy decides (`RecommendConfig.scorer`)."""

CrossesTarget = Literal["reward", "click"]
"""What a step of the cross model fits: the shown item's reward, or 1 for any reward above 0
(a click, whatever the funnel's value after it) and 0 otherwise
(`RecommendConfig.item_crosses_target`, `recsys.rec.item_crosses`)."""

CrossesPosition = Literal["bias", "exam"]
"""How the shown position k enters a cross-model step's prediction: r + b_k, a learned bias
added ("bias", Vowpal Wabbit's `|P` feature), or m_k * r, a learned examination factor
multiplied ("exam", the position-based click model's P(examined at k) / P(examined first): a
reward at a low position then counts for more than at the top, and no reward there for less;
`RecommendConfig.item_crosses_position`, `recsys.rec.item_crosses`)."""


@dataclass(frozen=True)
class BlendConfig:
    """Final ranking = w_case * case score + w_nb * neighbour score + w_pop * popularity
    + w_knn * item-kNN + w_llm * z-scored LLM log-likelihood (the LLM re-scores the top
    `llm_depth` of the blend; items below keep their blend order). Every term but the case and
    LLM terms is a rank score 1 / log2(2 + rank)."""

    w_case: float = 1.0
    """Weight of the case score: sum over the chosen cases holding the item of
    1 / log2(2 + rank of the case in the policy's order), capped at 1.5."""
    w_nb: float = 1.0
    """Weight of the neighbour score: rank of the item by cosine with the state vector."""
    w_pop: float = 0.5
    """Weight of the item's popularity rank score (time-decayed counts of past events)."""
    w_knn: float = 0.0
    """Weight of the item-kNN score's rank score (co-occurrence cosine summed over the user's
    recent items, `recsys.rec.cooccurrence`); its top `n_knn` items join the candidates.
    0 = off (and the co-occurrence counts are not built)."""
    n_knn: int = 40
    """Item-kNN items added to the candidates when `w_knn` > 0."""
    knn_recent: int = 10
    """Latest history items that score the item-kNN term (decay 0.9 per step back)."""
    w_llm: float = 0.15
    """Weight of the z-scored LLM log-likelihood."""
    llm_depth: int = 10
    """Candidates re-scored by the LLM per decision (its cost is linear in this)."""


@dataclass(frozen=True)
class RecommendConfig:
    """The one recommend pipeline (`recsys.rec.recommender.Recommender`): what offline replay
    measures and what serving serves, saved in the model bundle."""

    top_k: int = 32
    """K: cases retrieved from the case bank per decision (the only K). The items scorer
    offline over-fetches 64 (`presets.offline_replay`): each case proposes one item and
    the pool de-duplicates them."""
    num_chosen: int = 8
    """m: cases the policy chooses per decision (the only m; only the blend scorer chooses
    cases). A fresh served model keeps 4 (`presets.online`), the service's value before the
    presets; neither value was compared with the other in a recorded run."""
    top_n: int = 50
    """Length of the produced list."""
    n_neighbours: int = 60
    """Catalogue neighbours of the state vector added to the candidates. A fresh served model
    keeps 20 (`presets.online`), the value the online benchmark (docs/online.md) ran with;
    the two were never compared on one workload."""
    n_popular: int = 20
    """Popular items added to the candidates (when `blend.w_pop` > 0). The items scorer offline
    takes 60 into its pool (`presets.offline_replay`); the blend's 20 are for its head."""
    exclude_seen: bool = False
    """Remove the user's past items from the candidates (off: repeat purchases are real)."""
    pop_half_life_hours: float = 168.0
    """Half-life of the popularity counts (0: plain counts of every past event). The online
    service uses `presets.ONLINE_HALF_LIFE_HOURS` (`presets.online`): with plain counts the
    popularity ranked worse than random after a taste shift (issue 27); an earlier 5 h trial did
    not help while the case memory was switched off by the clock bug (docs/online.md)."""
    evidence_half_life_hours: float = 0.0
    """items scorer: age half-life of a retrieved case's weight in the item evidence
    (`recsys.rec.item_features`: w = similarity x 2^(-age / h); 0: similarity alone, what
    offline replay trained with). The online service ages its evidence (`presets.online`)."""
    cooc_half_life_hours: float = 0.0
    """Half-life of the served events in the live co-occurrence counts (`serving` refits them
    as events arrive; 0: every event in the window counts 1). The bundle's own (offline)
    counts never decay."""
    cooc_successions_across_times: bool = False
    """Live co-occurrence: count a succession from a user's last event at one time to each of
    their events at the next time only, never between events at one time (several clicks on
    one shown list carry one time and no order of their own; in the planted simulator 56% of
    consecutive served events were such co-clicks). Off: consecutive events in the order they
    were posted. Measured off (docs/online.md, session 21; planted, held-out seeds 5-8, 6,000
    decisions): the `next` feature ranks the planted successor first in 19-20% of the pools
    holding it instead of 11-13%, but the lists show it no more often; regret 12,005 against
    12,057 summed over the four seeds, recovery later on two of them."""
    prompt_lang: str = "auto"
    """LLM prompt language: zh | en | auto (zh when titles contain CJK)."""
    blend: BlendConfig = field(default_factory=BlendConfig)
    """Final ranking blend (the `blend` scorer; item-pool sizes of the `items` scorer)."""
    scorer: Scorer = "blend"
    """What the policy decides (a key of the scorer registry). blend: the policy chooses m
    cases, whose items join the neighbour / popularity / item-kNN candidates in a hand-weighted
    blend. items: the policy scores candidate ITEMS, Q(s, item) over the item's vector and its
    evidence (`recsys.rec.item_features`: the retrieved cases proposing it, neighbours,
    popularity, item-kNN, the user's own history), and softmax(Q / alpha) is the list. seq: a
    learned sequence state with a soft-Q head and case memory ranks the whole catalogue
    (`recsys.rec.seq.policy`; the bundle carries the trained model, `ModelBundle.seq`). A fresh
    (untrained) model keeps the blend, which ranks by its hand weights from the first request;
    the trained product is items (`presets.offline_replay`)."""
    n_explore: int = 0
    """items scorer: uniformly random unseen catalogue items added to each pool, so the policy
    can discover what no other source proposes (e.g. after a taste shift); 0 = off."""
    n_seen: int = 20
    """items scorer: the user's latest distinct items added to the pool (unless excluded)."""
    item_crosses_lr: float = 0.0
    """items scorer, online: AdaGrad rate of the hashed (history token x item token) reward
    model added to Q in the policy's scores (`recsys.rec.item_crosses`: item identity and
    attributes, learned from every shown item of each closed decision); 0 = off (offline
    replay). A fresh served model uses 0.1 (`presets.online`). Not saved in a bundle: a
    restart starts it from zero."""
    item_crosses_history: int = 5
    """items scorer, online: the cross model's history, the user's latest items whose tokens
    are crossed with each candidate's (`recsys.rec.item_crosses`); 0: the candidate's own
    tokens alone (item identity and attributes, no personal crosses)."""
    item_crosses_weight: float = 1.0
    """items scorer, online: weight of the cross model's r(s, item) in the policy's scores,
    Q(s, item) + weight * r(s, item) (+ the case vote); above 1 the cross model's ranking
    prevails over Q's where they disagree."""
    item_crosses_power_t: float = 0.5
    """items scorer, online: the cross model's step decay, each step divided by (sum of the
    weight's past squared gradients) ** power_t (`recsys.rec.item_crosses`): 0.5 is AdaGrad
    (Vowpal Wabbit's `--power_t`; its online peer runs at 0.25). Lower shrinks the steps more
    slowly as gradients add up but, with the small gradients of a mean over ~57 features,
    makes every step smaller: 0.25 ranked the same pools better before a taste shift and
    relearned far slower after it (docs/online.md, session 22: regret higher on both held-out
    seeds)."""
    item_crosses_last_weight: float = 1.0
    """items scorer, online: the value of each (last event's token x item token) cross in the
    cross model relative to its other features (`recsys.rec.item_crosses`; 1: every active
    feature counts alike, so the one cross naming the item that follows the user's last item
    is 1 of ~57 features of a planted candidate). 5 measured worse (docs/online.md, session
    22; planted, held-out seeds 5-8, 6,000 decisions): regret higher on three seeds of four,
    12,518 against 12,057 summed."""
    item_crosses_mix: int = 0
    """items scorer, online: the latest events whose attribute shares the cross model crosses
    with each candidate's tokens (`recsys.rec.item_crosses.mix_tokens`: one token per
    attribute word and share bucket, e.g. `cat=3` on over 3/4 of them); 0: off. Alone, 20
    measured mixed (docs/online.md, session 23; planted, held-out seeds 5-8, 6,000 decisions):
    last-20% reward higher on three seeds, regret lower on two. With
    `item_crosses_position` "exam" it is the lead candidate (regret lower on all four seeds,
    -341 [-622, -61] per seed; recovery sooner on all four), not yet the default: it has not
    been run at 20,000 decisions or on MovieLens."""
    item_crosses_target: CrossesTarget = "reward"
    """items scorer, online: what each step of the cross model fits, the shown item's reward
    or 1 for any reward above 0 (`CrossesTarget`). "click" ranked the
    probed pools better by replay but online (planted, held-out seeds 5-8, 6,000 decisions,
    with "exam" and mix 20) recovered sooner and ended lower: last 20% below the kept model on
    every seed (-0.042 [-0.104, +0.021]; docs/online.md, session 23)."""
    item_crosses_position: CrossesPosition = "bias"
    """items scorer, online: the shown position in the cross model's steps, an added bias or a
    multiplied examination factor (`CrossesPosition`); a model learned
    with one does not load into the other. "exam" with `item_crosses_mix` 20 measured best of
    session 23's variants (docs/online.md)."""
    drift_drop: float = 0.0
    """items scorer, online: the reward-drop alarm (`recsys.rec.drift`): when the reward per
    shown item falls below (1 - drift_drop) x its slower recent mean, the cross model's
    AdaGrad steps restart at full size (what was learned before is unlearned fast) and the
    pool takes `drift_explore` random catalogue items for `drift_explore_hours`; 0 = off.
    Restarting SquareCB's exploration as well measured worse (docs/online.md, session 18)."""
    drift_explore: int = 0
    """items scorer, online: random catalogue draws (with replacement, seen items skipped) added
    to each pool after a drift alarm (`drift_drop`), so the new favourites can enter a pool
    built from old evidence."""
    drift_explore_hours: float = 12.0
    """How long after a drift alarm the pool takes `drift_explore` random items."""
    drift_forget: Literal["none", "cases", "replay", "all"] = "none"
    """items scorer, online: what a drift alarm forgets: "cases", retrieval finds only the cases
    written after the last alarm (the old season's votes and evidence stop counting); "replay",
    the learner's replay is emptied (Q learns from the new season only); "all", both; "none",
    nothing."""
    drift_explore_slots: int = 0
    """items scorer, online: the slotted explorer's exploration slots while a drift alarm's
    window lasts (`drift_explore_hours`); 0 = the policy's own (`PolicyConfig.explore_slots`)."""
    drift_q_weight: float = 1.0
    """items scorer, online: Q's weight beside the cross model and the case vote while a drift
    alarm's window lasts (0: the cross model and the vote alone rank)."""
    drift_gamma_scale: float = 0.0
    """items scorer, online: the slotted explorer's SquareCB gamma scale while a drift alarm's
    window lasts; 0 = the policy's own (`PolicyConfig.squarecb_gamma_scale`). 100 measured on
    held-out planted seeds (docs/online.md, session 20): recovery after the shift sooner and
    the first 1,000 decisions after it higher, but the last 20% lower on both seeds and regret
    mixed, so the online preset keeps the policy's own."""
    drift_crosses_lr: float = 0.0
    """items scorer, online: the cross model's AdaGrad rate while a drift alarm's window lasts
    (`drift_explore_hours`; `item_crosses_lr` before and after it); 0 = `item_crosses_lr`
    throughout. The steps that follow the alarm's restart are this large, so the old season's
    crosses are unlearned faster, and the rate outside the window can be lower (steadier
    estimates) without slowing the relearning. Measured with `item_crosses_lr` 0.03 and 0.1
    here (docs/online.md, session 22; planted, held-out seeds 5-8, 6,000 decisions): recovery
    after the shift sooner on three seeds of four, regret higher (12,283 against 12,057
    summed), before the shift lower on three; off in the preset."""
    case_vote_weight: float = 0.0
    """items scorer: weight of the case memory's direct vote in the policy's scores, added to Q
    like the cross model (`recsys.rec.item_features.case_vote`: each pool item's shrunk,
    position-corrected reward rate among the retrieved similar and recent situations, in
    reward units); 0 = off (Q alone reads the case evidence as features). A fresh served items
    model uses 3 (`presets.online`)."""
    item_lane: int = 0
    """items scorer: besides the K nearest cases, each pool item's `item_lane` latest cases
    (known before the decision) join its case evidence, weighted by their similarity to the
    state and their age like retrieved ones (`recsys.rec.item_lane`); 0 = off, in every preset:
    offline, a bank written ahead of an as-of replay holds future cases; online it measured no
    better (docs/online.md, session 14)."""
    item_lane_scope: Literal["all", "user"] = "all"
    """Whose cases the item lane keeps per item: everyone's (`all`), or the requesting user's
    own (`user`: what this user was shown and did with each pool item)."""
