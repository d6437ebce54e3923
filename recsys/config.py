"""Frozen configuration dataclasses, one per component, composed into `CoreConfig`: THE model
schema. Each model setting is one field here with one default and a docstring saying why;
`TrainConfig`, `ServingSettings` and the comparisons hold a `CoreConfig` and never re-declare
its settings (`tests/recsys/test_one_default.py`). Where offline replay and the online service
need different values, a named preset says so (`recsys.presets`: `CoreConfig()` plus the
deviations its docstring names). The dependent fields are derived in one place each: those
that follow the scorer in `recsys.presets.derive` (from the scorer's own properties,
`recsys.rec.scorers`), the text width in `TextEncoderConfig.width`. Reading and writing them:
`recsys.config_io`. The recommend pipeline's settings live in `recsys.config_recommend`
(re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recsys.config_io import RETIRED_FIELDS, config_from_dict, config_to_dict
from recsys.config_recommend import (
    BlendConfig,
    CrossesPosition,
    CrossesTarget,
    RecommendConfig,
    Scorer,
)

__all__ = [
    "NO_MERGE",
    "RETIRED_FIELDS",
    "USE_DIM",
    "BlendConfig",
    "CaseBankConfig",
    "CoreConfig",
    "CreditConfig",
    "CrossesPosition",
    "CrossesTarget",
    "LearnerConfig",
    "PolicyConfig",
    "QNetworkConfig",
    "RecommendConfig",
    "RewardConfig",
    "Scorer",
    "StateConfig",
    "TextEncoderConfig",
    "config_from_dict",
    "config_to_dict",
]

LearnerMode = Literal["soft-q", "parametric-ce", "non-parametric", "tabular"]
IndexKind = Literal["flat", "hnsw", "ivf"]
QInput = Literal["key", "content"]
ListDraw = Literal["slotted", "plackett-luce"]
"""How a sampled list is drawn from the policy (`PolicyConfig.list_draw`)."""
USE_DIM = 512
"""Width of the Universal Sentence Encoder's vectors (fixed by the model)."""
NO_MERGE = 2.0
"""A `CaseBankConfig.merge_threshold` above any cosine: every case is kept on its own."""


@dataclass(frozen=True)
class TextEncoderConfig:
    kind: Literal["use", "hashing"] = "use"
    """"use" = multilingual Universal Sentence Encoder (512-d); "hashing" = fast test encoder."""
    dim: int = 512
    """Width of the hashing encoder (USE's width is fixed: `width` is the one rule)."""
    threads: int = 1
    """CPU threads of the USE encoder. 1: a served model encodes within a request, beside other
    requests (serving's `blas_threads` rule); offline the encodings are cached on disk."""
    cache_dir: str | None = None
    """Folder for the on-disk embedding cache (None = no cache)."""
    batch_size: int = 64
    """Texts per encoder call."""

    @property
    def width(self) -> int:
        """Width of the vectors this encoder produces: `USE_DIM` for "use", else `dim`."""
        return USE_DIM if self.kind == "use" else self.dim


@dataclass(frozen=True)
class StateConfig:
    max_events: int = 50
    """Most recent events kept per user."""
    half_life_hours: float = 24.0
    """Time decay: an event this old counts half. Offline replay uses 72 h
    (`presets.offline_replay`), its value since the first replay runs; the online service keeps
    24 h. Neither was compared with the other in a recorded run."""
    click: float = 1.0
    """Pooling weight of a click event."""
    collect: float = 2.0
    """Pooling weight of a collect event."""
    cart: float = 3.0
    """Pooling weight of a cart event."""
    alipay: float = 4.0
    """Pooling weight of a purchase event."""
    profile_weight: float = 0.3
    """Weight of the long-term profile vector added to the pooled session vector."""
    summary_events: int = 8
    """Events listed in the readable text summary."""


@dataclass(frozen=True)
class CaseBankConfig:
    index: IndexKind = "flat"
    """faiss index: exact flat inner product, HNSW, or IVF-flat."""
    normalize: bool = True
    """L2-normalise keys and queries so inner product is cosine similarity."""
    hnsw_m: int = 32
    """HNSW graph degree."""
    hnsw_ef_construction: int = 80
    """HNSW build beam width."""
    hnsw_ef_search: int = 64
    """HNSW search beam width."""
    ivf_nlist: int = 1024
    """IVF coarse cells (trained on the first batch written)."""
    ivf_nprobe: int = 16
    """IVF cells probed per query."""
    merge_threshold: float = NO_MERGE
    """Merge a new case into an existing one above this cosine with the same payload_key
    (> 1 disables merging). The recommender keeps every event or feedback as its own case
    (offline and online alike); the research agent merges repeated attempts (0.98)."""
    capacity: int = 0
    """Maximum cases kept (0 = unbounded); the lowest eviction score goes first."""
    age_weight_per_day: float = 0.01
    """Eviction score = utility - age_weight_per_day * age_days."""
    key_state_weight: float = 0.5
    """Share of the state in the keys of this bank's cases (`recsys.memory.case_encoder`): 0.5
    mixes state and item content; 1.0 keys a case by its situation alone, so retrieval returns
    what users were shown and did from similar situations (offline replay's choice, made on the
    Tianchi sample's validation events). The online service keeps 0.5: with outcome cases and
    aged evidence, 1.0 measured worse there (`presets.online` gives the figures)."""
    q_input: QInput = "key"
    """The vector the Q network sees for a retrieved case: its retrieval `key`, or `content`
    (the L2-normalised mean vector of the case's items, substituted by the caller). With
    state-only keys, `content` lets Q score (state, outcome item) pairs, which retrieval by
    situation cannot see (offline replay: with `key`, soft-q's synthetic learning curve was flat,
    0.188/0.194/0.183 over 3 passes; with `content` it rose in all 3 seeds)."""


@dataclass(frozen=True)
class QNetworkConfig:
    proj_dim: int = 64
    """State and key projection width."""
    hidden: int = 128
    """Hidden width of the scoring MLP."""
    layers: int = 2
    """Hidden layers of the scoring MLP."""
    feature_dim: int = 4
    """Per-candidate features F. Derived in a model from its scorer (`recsys.presets.derive`:
    the scorer's `feature_width`); set it only for a bare learner."""
    use_vectors: bool = True
    """Feed the state and key vectors (their projections and product) to the MLP; False
    scores from the features alone. The blend scorer always feeds them (`recsys.presets.derive`:
    Q tells cases apart by their keys). Offline, the items scorer sets False
    (`presets.offline_replay`): with the vectors, its synthetic validation NDCG@10 fell pass
    after pass (0.475, 0.429, 0.436) while the training reward rose (Q memorised replayed
    items). A fresh online model keeps True (what its online benchmark measured)."""


@dataclass(frozen=True)
class PolicyConfig:
    alpha: float = 0.1
    """Soft-Q temperature (initial value when auto_alpha). Online the service samples its lists
    from softmax(Q / alpha) (exploration, logged propensities); 0.1 is its value, not tuned
    online (the online benchmark ran with it). Offline replay uses 0.02
    (`presets.offline_replay`): window rewards are ~0.1, so Q differs across candidates by
    a few hundredths, and at 0.2 the training policy stayed near uniform (Tianchi validation,
    1,200 decisions x 3 passes: reward 0.110 -> 0.118 at 0.2, 0.127 -> 0.135 at 0.02)."""
    auto_alpha: bool = False
    """Tune alpha towards a target entropy."""
    target_entropy_ratio: float = 0.5
    """Target entropy = ratio * log(number of valid candidates)."""
    alpha_lr: float = 3e-4
    """Learning rate of log(alpha)."""
    list_draw: ListDraw = "slotted"
    """How soft-q / parametric-ce draw a sampled list (`Learner.act`; greedy and the other
    modes are unaffected). slotted (`recsys.rl.slotted`): the list follows the score order
    except in `explore_slots` exploration slots, each drawn by SquareCB over the candidates not
    yet placed; exact propensities, position 0's marginal and later positions' conditional on
    the items above them. plackett-luce: every position drawn from softmax(score / alpha)
    without replacement (Gumbel top-m), propensities of positions > 2 estimated from sampled
    prefixes. slotted is the default of every preset: after `make run` the served
    plackett-luce list was near-random (entropy ~3.2 nats over the pool, issue 27)."""
    explore_slots: int = 2
    """slotted: exploration slots per list: position 0 (its propensity then has support over
    the whole pool, what off-policy evaluation of the first position needs) and the last
    `explore_slots - 1` positions; 0: the greedy list (propensities 1)."""
    squarecb_gamma_scale: float = 10.0
    """slotted: SquareCB's gamma = squarecb_gamma_scale * sqrt(t), t the learner's update
    count (Vowpal Wabbit's `--gamma_scale` schedule and default, 10): a fresh learner explores
    uniformly, and exploration narrows as it learns. Online (`memento bench online` soft-q,
    planted, seed 0, 3,000 decisions): last-20% expected reward 0.584 / 0.589 / 0.565 at 10 /
    30 / 100 (Plackett-Luce: 0.584), before the shift 0.571 / 0.520 / 0.559 of the oracle's
    (0.525), regret 2,128 / 2,376 / 2,257 (2,287). A model trained by offline replay uses 100
    (`presets.offline_replay`): its few hundred updates each learned from a batch of fully
    labelled pools, and its Q gaps are a few hundredths, so at 10 the served first position
    (SquareCB over ~140 items) went to the greedy item 14% of the time after `make run`
    (entropy 4.5 nats); 100 gave 59% (2.3 nats), 1000 92% (0.5 nats). No reward was measured
    for the served trained model at either value."""


@dataclass(frozen=True)
class LearnerConfig:
    mode: LearnerMode = "soft-q"
    """soft-q | parametric-ce | non-parametric | tabular."""
    gamma: float = 0.9
    """Discount of the soft TD target. Online, what is shown changes the user's next state.
    Offline replay uses 0 (`presets.offline_replay`): log replay is a contextual bandit
    (what the policy shows does not change the logged user's next state), so the target is
    the reward."""
    lr: float = 1e-3
    """Adam learning rate of the Q network. Offline replay uses 2e-3 (`presets.offline_replay`),
    its value since the first replay runs; not compared with 1e-3 in a recorded run."""
    batch_size: int = 32
    """Transitions per update (offline replay and the online service alike)."""
    min_replay: int = 64
    """No update before the buffer holds this many transitions. The online service learns
    from its first feedback (1, `presets.online`); a served trained bundle gets it too."""
    replay_capacity: int = 50_000
    """Replay buffer size (oldest dropped first). The online service keeps the latest 512
    (`presets.online`, a memory cap: each transition holds two candidate snapshots, ~29 KB with
    the trained items scorer; serving/README.md, memory budget); a served trained bundle gets
    it too."""
    tau: float = 0.005
    """Polyak factor: target <- (1 - tau) * target + tau * online."""
    grad_clip: float = 10.0
    """Max global gradient norm."""
    ce_threshold: float = 0.0
    """parametric-ce: a reward above this is a positive label."""
    listwise_weight: float = 0.0
    """soft-q: weight of `recsys.rl.losses.listwise_loss` added to the soft TD loss (fits
    softmax(Q / alpha) to where the reward is). 0 for a bare learner (the research agent's,
    the bandit benchmark's). In a model it is the items scorer's weight, 1.0 in every preset
    (`recsys.presets.ITEMS_LISTWISE_WEIGHT`: the weight of every measured run); the blend
    scorer's is derived 0 (`recsys.presets.derive`: its transitions reward the chosen cases
    only, there is no list to fit)."""
    tabular_lr: float = 0.1
    """tabular: Q(c) += tabular_lr * (r - Q(c))."""
    tabular_sim_weight: float = 0.5
    """tabular: score = w * sim + (1 - w) * Q(c) (MemRL)."""
    tabular_epsilon: float = 0.1
    """tabular: probability of a uniformly random choice per slot."""
    seed: int = 0
    """Seed of the network initialisation and action sampling (offline: also of the training
    decision subsample; a comparison sets it per seed)."""
    q: QNetworkConfig = field(default_factory=QNetworkConfig)
    """Q network shape."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Policy temperature."""


@dataclass(frozen=True)
class RewardConfig:
    click: float = 0.1
    """Reward of a click."""
    collect: float = 0.3
    """Reward of a collect (favourite)."""
    cart: float = 0.6
    """Reward of an add-to-cart."""
    alipay: float = 1.0
    """Reward of a purchase."""
    dwell_weight: float = 0.0
    """Added reward per capped dwell minute (0 = off)."""
    dwell_cap_seconds: float = 300.0
    """Dwell time is capped at this many seconds."""
    aggregate: Literal["max", "sum"] = "max"
    """How several actions on one list combine."""


@dataclass(frozen=True)
class CreditConfig:
    rule: Literal["attributed", "equal"] = "attributed"
    """attributed: cases whose items were acted on get the reward, others beta * reward;
    equal: every chosen case gets the full reward."""
    beta: float = 0.1
    """Share of the reward for chosen cases not attributed."""


@dataclass(frozen=True)
class CoreConfig:
    """The model: every setting of a `recsys.bundle.ModelBundle`. Its dependent fields (the Q
    network's feature width, the listwise weight and the Q input of the blend scorer) follow
    its scorer through `recsys.presets.derive`, which every preset, `TrainConfig` and
    `ServingSettings` apply (the scorer registry imports this module, so the derivation cannot
    live here)."""

    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """Text encoder."""
    state: StateConfig = field(default_factory=StateConfig)
    """State encoder."""
    case_bank: CaseBankConfig = field(default_factory=CaseBankConfig)
    """Case bank."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    """Learner (Q network, policy, replay)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights."""
    credit: CreditConfig = field(default_factory=CreditConfig)
    """Credit assignment across chosen cases."""
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    """The recommend pipeline (candidate sources, blend, list length)."""
