"""The one constructor of a model (`derive`) and the named presets of `recsys.config.CoreConfig`:
where offline replay and the online service truly need different values.

`derive` computes the fields that follow the scorer, from the scorer's own properties
(`recsys.rec.scorers`): the Q network's feature width, the listwise weight (the items scorer's
configured weight, 0 for the blend) and whether Q sees vectors (always for the blend). Every
preset, `TrainConfig` and `ServingSettings` apply it, so no caller computes them.

Each preset is `CoreConfig()` (the field defaults) with the deviations its docstring names, each
explained in that field's docstring; it never copies a field it does not change, so a default
changed in `recsys.config` reaches every preset (`tests/recsys/test_one_default.py` checks that a
preset differs from the defaults exactly where its docstring says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from recsys.config import CoreConfig, Scorer
from recsys.rec.scorers import get_scorer

__all__ = [
    "ITEMS_LISTWISE_WEIGHT",
    "ONLINE_DRIFT_DROP",
    "ONLINE_DRIFT_EXPLORE",
    "ONLINE_HALF_LIFE_HOURS",
    "PRESETS",
    "derive",
    "offline_replay",
    "online",
    "preset",
]

ITEMS_LISTWISE_WEIGHT = 1.0
"""`learner.listwise_weight` of every preset: the items scorer's weight of the listwise term
(every measured items-scorer run used 1.0); `derive` makes it 0 for the blend scorer."""


ONLINE_HALF_LIFE_HOURS = 6.0
"""Half-life of the online service's case evidence, popularity and co-occurrence: 6 hours
(360 decisions of the online benchmark's simulators, a decision a minute; the planted run of
3,000 decisions shifts tastes after 25 hours)."""


def derive(core: CoreConfig) -> CoreConfig:
    """`core` with the fields that follow its scorer computed by the scorer (an unknown scorer
    raises `recsys.errors.UnknownScorerError`)."""
    scorer = get_scorer(core.recommend.scorer)
    lc = core.learner
    q = replace(
        lc.q, feature_dim=scorer.feature_width, use_vectors=scorer.use_vectors(lc.q.use_vectors)
    )
    learner = replace(lc, q=q, listwise_weight=scorer.listwise_weight(lc.listwise_weight))
    return core if learner == lc else replace(core, learner=learner)


def _base() -> CoreConfig:
    """`CoreConfig()` with the items scorer's listwise weight (what both presets share)."""
    core = CoreConfig()
    return replace(core, learner=replace(core.learner, listwise_weight=ITEMS_LISTWISE_WEIGHT))


def offline_replay(scorer: Scorer = "items") -> CoreConfig:
    """The model `memento train` fits by replaying a log and ships (`TrainConfig.core`), items
    scorer by default (the product). Deviations: `recommend.scorer`,
    `learner.listwise_weight` (`ITEMS_LISTWISE_WEIGHT`), `learner.gamma` 0,
    `learner.lr` 2e-3, `learner.policy.alpha` 0.02, `learner.policy.squarecb_gamma_scale` 100,
    `state.half_life_hours` 72,
    `case_bank.key_state_weight` 1.0, `case_bank.q_input` content; with a scorer that chooses
    items also `recommend.top_k` 64, `recommend.n_popular` 60 and `learner.q.use_vectors`
    False."""
    base = _base()
    core = replace(
        base,
        state=replace(base.state, half_life_hours=72.0),
        case_bank=replace(base.case_bank, key_state_weight=1.0, q_input="content"),
        learner=replace(
            base.learner,
            gamma=0.0,
            lr=2e-3,
            policy=replace(base.learner.policy, alpha=0.02, squarecb_gamma_scale=100.0),
        ),
        recommend=replace(base.recommend, scorer=scorer),
    )
    if get_scorer(scorer).chooses_items:  # an over-fetched item pool, Q from the features
        core = _items_replay_pool(core)
    return derive(core)


ONLINE_ITEM_CROSSES_LR = 0.1
"""AdaGrad rate of the items scorer's cross model online (`RecommendConfig.item_crosses_lr`).
Measured (`memento bench online` soft-q, planted, seed 0, 3,000 decisions, in process, the
learner applied before every decision; runs repeat on the seed): last-20% expected reward
0.494 without it, 0.584 at 0.1 (0.433 of the oracle's); before the shift 0.469 and 0.525 of
the oracle's; regret 2,582 and 2,287. An earlier pair of runs (decision ids not yet seeded,
so +-0.03 between repeats) gave 0.487, 0.569 at 0.1 and 0.540 at 0.3. Session 22 (held-out
planted seeds 5 and 6, 6,000 decisions, the current model): 0.03 ranked the served run's pools
better by the cross model alone (`bench.online.cross_replay`) but its own runs had regret
3,309 and 3,098 against 3,007 and 2,879, recovering later on both seeds."""


ONLINE_ITEM_CROSSES_WEIGHT = 3.0
"""Weight of the cross model's r(s, item) beside Q in the items scorer's scores online
(`RecommendConfig.item_crosses_weight`). Chosen on seeds kept out of the reported runs
(session 17, docs/online.md): ranking the same served pools by each part of the score, r alone
beat Q + r in every window of a 6,000-decision run on both simulators (planted seed 5: before
the shift 0.843 against 0.839 expected reward of the top 10, 500-1,000 decisions after it 0.659
against 0.581; MovieLens seed 5, last 20%: 0.657 against 0.584; Q alone 0.740 and 0.553), and
on planted seeds 5 and 6 (6,000 decisions) weight 3 lowered the regret (3,312 against 3,319,
3,261 against 3,587) and the decisions to recover after the shift (964 against 1,404, 1,642
against 2,280); the last 20% moved -0.10 and +0.05."""


ONLINE_DRIFT_DROP = 0.4
"""The online reward-drop alarm (`RecommendConfig.drift_drop`, `recsys.rec.drift`): it fires
when the reward per shown item falls below 0.6 of its slower recent mean. Chosen with
`ONLINE_DRIFT_EXPLORE` on seeds kept out of the reported runs (session 18, docs/online.md:
planted seeds 5 and 6, 6,000 decisions, shift at 3,000; it fired once per run, in the
first minutes after the shift, never before it): regret 3,253 and 2,864 against 3,312 and 3,261
without it, decisions to recover 1,167 and 1,075 against 964 and 1,642, last 20% 0.724 and
0.744 against 0.654 and 0.767. Restarting SquareCB's exploration at the alarm as well measured
worse (seed 6: regret 3,156, recovery 2,258), and the wider pool alone (no AdaGrad restart)
recovered later (seed 6: 1,213, regret 2,896)."""


ONLINE_DRIFT_EXPLORE = 400
"""Random catalogue draws added to each pool for 12 hours (`RecommendConfig.drift_explore_hours`,
720 decisions of the benchmark's simulators) after a drift alarm (`ONLINE_DRIFT_DROP`): the
new favourites can enter a pool built from old evidence. Session 18 chose 60 (6 hours instead:
seed 5 regret 3,281, recovery 992); session 19 (planted seeds 5 and 6, 6,000 decisions, with
`ONLINE_DRIFT_Q_WEIGHT`, docs/online.md): 400 draws (about 250 distinct items of planted's
400) and Q out of the window's ranking gave regret 3,007 and 2,879 against 3,253 and 2,864,
recovery 1,140 and 1,116 against 1,167 and 1,075, expected reward 1,000-3,000 decisions after
the shift 0.790 and 0.796 against 0.704 and 0.769; 400 draws with Q in: regret 3,262 and
2,717."""


ONLINE_DRIFT_Q_WEIGHT = 0.0
"""Q's weight in the items scorer's scores while a drift alarm's window lasts
(`RecommendConfig.drift_q_weight`): the cross model and the case vote alone rank the widened
pool, as the cross model alone ranked the new tastes better than Q + r after the shift
(session 17's probe, `ONLINE_ITEM_CROSSES_WEIGHT`). Chosen with `ONLINE_DRIFT_EXPLORE` (figures
there); forgetting the old cases and the replay at the alarm as well (`drift_forget` "all")
measured within noise of it (regret 3,031 and 2,806, recovery 1,079 and 1,139) and was left
off; four exploration slots in the window (`drift_explore_slots`, with 60 draws) recovered
earlier on seed 5 (983) and later on seed 6 (1,641)."""


ONLINE_CASE_VOTE_WEIGHT = 3.0
"""Weight of the case memory's direct vote in the items scorer's scores online
(`RecommendConfig.case_vote_weight`). Chosen on a seed kept out of the reported runs
(`memento bench online` soft-q, planted, seed 5, 3,000 decisions, in process, one run each,
Plackett-Luce draw): last-20% expected reward 0.595 at 0 (Q reads the case evidence as features
only), 0.625 at 1, 0.635 at 3; no-memory 0.636 on the same seed. With 256 cases retrieved
instead of 32 the case support of the pool rose from 5% to 30% but the reward did not (0.558
at 0, 0.615 at 1)."""


def online(scorer: Scorer = "blend") -> CoreConfig:
    """A fresh (untrained) model of the online service (`ServingSettings.fresh`), blend scorer
    by default. Deviations: `recommend.scorer`, `learner.listwise_weight`
    (`ITEMS_LISTWISE_WEIGHT`), `case_bank.index` hnsw, `learner.min_replay` 1,
    `learner.replay_capacity` 512, `recommend.num_chosen` 4, `recommend.n_neighbours` 20,
    `text.dim` 64 (the hashing width of tests and simulator runs; USE is always 512), a
    memory that adapts (`ONLINE_HALF_LIFE_HOURS`): `recommend.evidence_half_life_hours`,
    `recommend.pop_half_life_hours` and `recommend.cooc_half_life_hours` (older evidence,
    popularity and co-occurrence count less); with a scorer that chooses items also
    `learner.gamma` 0 (the item scorer's online target is the reward: the soft value of s' cost
    a second pass over the next pool per update and feedback, and no run measured gamma > 0
    better) and `recommend.item_crosses_lr` `ONLINE_ITEM_CROSSES_LR` (item identity learned
    per shown item by the hashed cross model of recsys/rec/item_crosses.py), weighted
    `ONLINE_ITEM_CROSSES_WEIGHT` beside Q (`recommend.item_crosses_weight`), and
    `recommend.case_vote_weight` `ONLINE_CASE_VOTE_WEIGHT` (the case memory's direct vote),
    `recommend.drift_drop` `ONLINE_DRIFT_DROP`, `recommend.drift_explore`
    `ONLINE_DRIFT_EXPLORE` and `recommend.drift_q_weight` `ONLINE_DRIFT_Q_WEIGHT` (relearning
    after a reward drop).
    Case keys keep
    the default state share 0.5:
    situation-only keys (1.0) measured worse online (planted, seed 0, 3,000 decisions:
    pre-shift expected reward 0.364 of the oracle's against 0.458, regret 2,910 against 2,654,
    last 20% 0.400 against 0.403)."""
    base = _base()
    h = ONLINE_HALF_LIFE_HOURS
    core = replace(
        base,
        text=replace(base.text, dim=64),
        case_bank=replace(base.case_bank, index="hnsw"),
        learner=replace(base.learner, min_replay=1, replay_capacity=512),
        recommend=replace(
            base.recommend,
            scorer=scorer,
            num_chosen=4,
            n_neighbours=20,
            pop_half_life_hours=h,
            evidence_half_life_hours=h,
            cooc_half_life_hours=h,
        ),
    )
    if get_scorer(scorer).chooses_items:
        core = replace(
            core,
            learner=replace(core.learner, gamma=0.0),
            recommend=replace(
                core.recommend,
                item_crosses_lr=ONLINE_ITEM_CROSSES_LR,
                item_crosses_weight=ONLINE_ITEM_CROSSES_WEIGHT,
                case_vote_weight=ONLINE_CASE_VOTE_WEIGHT,
                drift_drop=ONLINE_DRIFT_DROP,
                drift_explore=ONLINE_DRIFT_EXPLORE,
                drift_q_weight=ONLINE_DRIFT_Q_WEIGHT,
            ),
        )
    return derive(core)


def _items_replay_pool(core: CoreConfig) -> CoreConfig:
    """An item-choosing scorer's pool and Q input in offline replay (see `offline_replay`)."""
    return replace(
        core,
        recommend=replace(core.recommend, top_k=64, n_popular=60),
        learner=replace(core.learner, q=replace(core.learner.q, use_vectors=False)),
    )


PRESETS: dict[str, Callable[..., CoreConfig]] = {
    "offline-replay": offline_replay,
    "online": online,
}
"""Every named preset (`MEMENTO_PRESET` picks the one of a fresh served model)."""


def preset(name: str, scorer: Scorer | None = None) -> CoreConfig:
    """The preset `name` (a key of `PRESETS`), with its own default scorer unless given."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    build = PRESETS[name]
    return build() if scorer is None else build(scorer)
