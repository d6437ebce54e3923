"""Frozen configuration dataclasses, one per component, composed into `CoreConfig`.

`config_to_dict` / `config_from_dict` round-trip any of them through plain JSON-able dicts
(used by checkpoints).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "BlendConfig",
    "CaseBankConfig",
    "CoreConfig",
    "CreditConfig",
    "LearnerConfig",
    "PolicyConfig",
    "QNetworkConfig",
    "RecommendConfig",
    "RewardConfig",
    "StateConfig",
    "TextEncoderConfig",
    "config_from_dict",
    "config_to_dict",
]

LearnerMode = Literal["soft-q", "parametric-ce", "non-parametric", "tabular"]
IndexKind = Literal["flat", "hnsw", "ivf"]
QInput = Literal["key", "content"]


@dataclass(frozen=True)
class TextEncoderConfig:
    kind: Literal["use", "hashing"] = "use"
    """"use" = multilingual Universal Sentence Encoder (512-d); "hashing" = fast test encoder."""
    dim: int = 512
    """Output dimension (fixed at 512 for "use")."""
    threads: int = 2
    """CPU threads for the USE encoder."""
    cache_dir: str | None = None
    """Folder for the on-disk embedding cache (None = no cache)."""
    batch_size: int = 64
    """Texts per encoder call."""


@dataclass(frozen=True)
class StateConfig:
    max_events: int = 50
    """Most recent events kept per user."""
    half_life_hours: float = 24.0
    """Time decay: an event this old counts half."""
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
    merge_threshold: float = 0.98
    """Merge a new case into an existing one above this cosine with the same payload_key
    (> 1 disables merging)."""
    capacity: int = 0
    """Maximum cases kept (0 = unbounded); the lowest eviction score goes first."""
    age_weight_per_day: float = 0.01
    """Eviction score = utility - age_weight_per_day * age_days."""
    top_k: int = 32
    """Default number of candidates retrieved per request."""
    key_state_weight: float = 0.5
    """Share of the state in the keys of this bank's cases (`recsys.memory.case_encoder`): 0.5 mixes
    state and item content; 1.0 keys a case by its situation alone (offline replay's choice)."""
    q_input: QInput = "key"
    """The vector the Q network sees for a retrieved case: its retrieval `key`, or `content`
    (the L2-normalised mean vector of the case's items, substituted by the caller). With
    state-only keys, `content` lets Q score (state, outcome item) pairs, which retrieval by
    situation cannot see."""


@dataclass(frozen=True)
class QNetworkConfig:
    proj_dim: int = 64
    """State and key projection width."""
    hidden: int = 128
    """Hidden width of the scoring MLP."""
    layers: int = 2
    """Hidden layers of the scoring MLP."""
    feature_dim: int = 4
    """Per-candidate features F (see records.CASE_FEATURES)."""
    use_vectors: bool = True
    """Feed the state and key vectors (their projections and product) to the MLP; False
    scores from the features alone (the items scorer: its evidence features generalise,
    while per-item vectors let Q memorise the replayed decisions)."""


@dataclass(frozen=True)
class PolicyConfig:
    alpha: float = 0.1
    """Soft-Q temperature (initial value when auto_alpha)."""
    auto_alpha: bool = False
    """Tune alpha towards a target entropy."""
    target_entropy_ratio: float = 0.5
    """Target entropy = ratio * log(number of valid candidates)."""
    alpha_lr: float = 3e-4
    """Learning rate of log(alpha)."""
    num_chosen: int = 4
    """Cases chosen per request (m)."""


@dataclass(frozen=True)
class LearnerConfig:
    mode: LearnerMode = "soft-q"
    """soft-q | parametric-ce | non-parametric | tabular."""
    gamma: float = 0.9
    """Discount of the soft TD target."""
    lr: float = 1e-3
    """Adam learning rate of the Q network."""
    batch_size: int = 64
    """Transitions per update."""
    min_replay: int = 64
    """No update before the buffer holds this many transitions."""
    replay_capacity: int = 50_000
    """Replay buffer size (oldest dropped first)."""
    tau: float = 0.005
    """Polyak factor: target <- (1 - tau) * target + tau * online."""
    grad_clip: float = 10.0
    """Max global gradient norm."""
    ce_threshold: float = 0.0
    """parametric-ce: a reward above this is a positive label."""
    listwise_weight: float = 0.0
    """soft-q: weight of `recsys.rl.losses.listwise_loss` added to the soft TD loss (fits
    softmax(Q / alpha) to where the reward is; used by the items scorer, whose replay labels
    every candidate)."""
    tabular_lr: float = 0.1
    """tabular: Q(c) += tabular_lr * (r - Q(c))."""
    tabular_sim_weight: float = 0.5
    """tabular: score = w * sim + (1 - w) * Q(c) (MemRL)."""
    tabular_epsilon: float = 0.1
    """tabular: probability of a uniformly random choice per slot."""
    seed: int = 0
    """Seed of the network initialisation and action sampling."""
    q: QNetworkConfig = field(default_factory=QNetworkConfig)
    """Q network shape."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Policy temperature and slate size."""


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
    """K: cases retrieved from the case bank per decision."""
    num_chosen: int = 8
    """m: cases the policy chooses per decision."""
    top_n: int = 50
    """Length of the produced list."""
    n_neighbours: int = 60
    """Catalogue neighbours of the state vector added to the candidates."""
    n_popular: int = 20
    """Popular items added to the candidates (when `blend.w_pop` > 0)."""
    exclude_seen: bool = False
    """Remove the user's past items from the candidates (off: repeat purchases are real)."""
    pop_half_life_hours: float = 168.0
    """Half-life of the popularity counts (0: plain counts of every past event)."""
    prompt_lang: str = "auto"
    """LLM prompt language: zh | en | auto (zh when titles contain CJK)."""
    blend: BlendConfig = field(default_factory=BlendConfig)
    """Final ranking blend (the `blend` scorer; item-pool sizes of the `items` scorer)."""
    scorer: Literal["blend", "items"] = "blend"
    """What the policy decides. blend: the policy chooses m cases, whose items join the
    neighbour / popularity / item-kNN candidates in a hand-weighted blend. items: the policy
    scores candidate ITEMS, Q(s, item) over the item's vector and its evidence
    (`recsys.rec.item_features`: the retrieved cases proposing it, neighbours, popularity,
    item-kNN, the user's own history), and softmax(Q / alpha) is the list."""
    n_explore: int = 0
    """items scorer: uniformly random unseen catalogue items added to each pool, so the policy
    can discover what no other source proposes (e.g. after a taste shift); 0 = off."""
    n_seen: int = 20
    """items scorer: the user's latest distinct items added to the pool (unless excluded)."""


@dataclass(frozen=True)
class CoreConfig:
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


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A nested plain dict of a config dataclass."""
    return dataclasses.asdict(cfg)


C = TypeVar("C")


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild config class `cls` from `config_to_dict` output (unknown keys rejected)."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = config_from_dict(hint, value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
