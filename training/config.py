"""Configuration of offline replay training and evaluation (`memento train`, `bench replay`).

Reward window (documented rule): a decision at event e (user u, time t) produces a top-N
list L (its first `reward_top` items are what the user is shown). The reward is the largest
action weight (alipay 1.0, cart 0.6, collect 0.3, click 0.1
by default, `recsys.config.RewardConfig`) among u's events in [t, t + W] whose item is in L,
0 if none. It reaches the learner only once the replay clock has passed t + W.

LLM use: `llm_fraction` of TRAINING decisions go through the frozen LLM (the rest use the
no-LLM blend, same candidates); evaluation decisions of LLM modes ALWAYS use the LLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recsys.config import (
    BlendConfig,
    CreditConfig,
    LearnerConfig,
    PolicyConfig,
    RecommendConfig,
    RewardConfig,
    StateConfig,
)
from recsys.rec.scorers import get_scorer

__all__ = [
    "ABLATIONS",
    "ALL_MODES",
    "BASELINES",
    "LEARNED_MODES",
    "LLM_MODES",
    "RECBOLE_PEERS",
    "SplitProtocol",
    "TrainConfig",
]

SplitProtocol = Literal["leave-last-out", "time-cutoff"]

LEARNED_MODES: tuple[str, ...] = (
    "soft-q",
    "soft-q-blend",
    "soft-q-cases",
    "parametric-ce",
    "non-parametric",
    "tabular",
)
"""Modes that choose cases with a `recsys.rl.learner.Learner` of that mode."""
LLM_MODES: tuple[str, ...] = (*LEARNED_MODES, "no-memory")
"""Modes whose final ranking includes the frozen LLM."""
ABLATIONS: tuple[str, ...] = ("soft-q-blend", "soft-q-cases", "parametric-ce", "tabular")
"""Learned modes that are ablations or older designs of soft-q (`ablation_seeds`)."""
BASELINES: tuple[str, ...] = ("popularity", "causal-popularity", "item-knn", "ease", "rp3beta")
"""Peers fitted in process (`bench.replay.baselines`)."""
RECBOLE_PEERS: tuple[str, ...] = ("recbole-bpr", "recbole-sasrec", "recbole-gru4rec")
"""Peers trained by RecBole in their own environment (`bench.peers`)."""
ALL_MODES: tuple[str, ...] = (
    *LEARNED_MODES,
    "no-memory",
    "no-llm",
    *BASELINES,
    *RECBOLE_PEERS,
)
"""Every method the harness knows (peers run in their own environment)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything `training.fit.fit` (and a comparison, `bench.replay.compare`) needs;
    defaults = `memento train` with no argument."""

    data: str = "synthetic"
    """synthetic | tianchi:PATH | movielens-100k | tmall-sample."""
    synth_users: int = 300
    """Synthetic data: users."""
    synth_items: int = 500
    """Synthetic data: items."""
    synth_events: int = 15_000
    """Synthetic data: events."""
    synth_seed: int = 0
    """Synthetic data: generator seed."""
    split: SplitProtocol = "leave-last-out"
    """leave-last-out: per user in time order, the last event is the test decision (the
    protocol of the RecBole comparison); time-cutoff: the last `test_fraction` of time."""
    test_fraction: float = 0.1
    """time-cutoff only: share of the time span held out."""
    modes: tuple[str, ...] = (
        "soft-q",
        "non-parametric",
        "no-memory",
        "popularity",
        "causal-popularity",
    )
    """Methods to run (see `ALL_MODES`)."""
    iterations: int = 3
    """Passes over the training period (memory statistics and Q carried over)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds (learner init, sampling, decision subsampling)."""
    ablation_seeds: tuple[int, ...] | None = None
    """Seeds of the ablations (`ABLATIONS`); None: `seeds` (they cost as much as soft-q)."""
    top_n: int = 50
    """Length of the produced list (metrics are computed on it)."""
    reward_top: int = 10
    """The user is shown the first `reward_top` items: the window reward counts actions on
    those (metrics use the whole top-N list)."""
    top_k: int = 32
    """K: cases retrieved from the case bank per decision."""
    num_chosen: int = 8
    """m: cases the policy chooses per decision."""
    n_neighbours: int = 60
    """Catalogue neighbours of the state vector added to the candidates."""
    n_popular: int = 20
    """Causal popularity items (counted from past events only) added to the candidates."""
    exclude_seen: bool = False
    """Remove the user's past items from the candidates (off: repeat purchases are real)."""
    llm_model: str = "qwen2.5-0.5b"
    """Frozen LLM name for `recsys.llm.provider` ("smollm2-135m" = tiny, for tests)."""
    use_llm: bool = False
    """Evaluate the LLM modes with the frozen LLM re-scoring the head of every warm list. Off
    by default: on the measured runs it did not improve NDCG (see docs/results.md), and every
    LLM call costs CPU seconds; `memento bench llm-rerank` measures it."""
    llm_fraction: float = 0.0
    """Share of TRAINING decisions ranked with the LLM (evaluation always uses it). The
    default 0 keeps `memento train` within ~10 CPU minutes: the LLM is frozen, so training
    needs it only to expose the learner to the LLM's reordering."""
    prompt_lang: str = "auto"
    """Prompt template language: zh | en | auto (zh when titles contain CJK)."""
    max_train_decisions: int = 400
    """Cap on training decisions per pass (a seeded, fixed subset; 0 = all)."""
    keep_best_pass: bool = True
    """Evaluate (and ship) the learner as it was after the pass with the best validation
    NDCG@10: early stopping on validation, as the RecBole peers get."""
    max_valid_decisions: int = 400
    """Validation decisions (each user's latest training event) on which the learning curve
    is measured after every pass; training passes leave them out (0 = every user)."""
    max_eval_decisions: int = 0
    """Cap on evaluated test decisions (a seeded subset shared by every method; 0 = all)."""
    window_hours: float = 24.0
    """W: reward window after a decision (see the module docstring)."""
    updates_per_transition: float = 0.5
    """Learner gradient steps per finished transition (0.5 = one step every 2; CPU cost)."""
    prequential: bool = False
    """Also evaluate with learning continuing during the test period."""
    text_encoder: Literal["use", "hashing"] = "use"
    """Item title encoder: multilingual USE (cached on disk) or the fast hashing encoder."""
    text_dim: int = 512
    """Dimension of the hashing encoder (USE is 512)."""
    collab_dim: int = 0
    """> 0: append collaborative item vectors of this rank (PPMI co-occurrence SVD of the
    training rows, `training.item_vectors`) to the title vectors. Changes the vector width, so
    a model trained with it needs the same catalogue vectors to be served."""
    collab_weight: float = 0.9
    """Share of the item vector's squared norm given to the collaborative part."""
    case_state_weight: float = 1.0
    """Share of the state in a case key (`RecCaseEncoder`). 1.0 keys a case "state before the
    event -> item" by the state alone, so retrieval returns what users did next from similar
    situations, a signal the state's own item neighbours do not carry; 0.5 (the serving default)
    also mixes in the item's title. Chosen on the Tianchi sample's validation events."""
    q_content_keys: bool = True
    """The Q network sees a retrieved case through its item's vector (`CaseBankConfig.q_input`
    = "content") instead of its state-only key, so it can learn which outcomes suit which
    states. Off, soft-q's synthetic learning curve was flat (0.188/0.194/0.183 over 3 passes);
    on, it rose in all 3 seeds and ended above non-parametric."""
    blend: BlendConfig = field(default_factory=BlendConfig)
    """Final ranking blend (the case-choosing modes) and the item-pool sizes."""
    soft_q_scorer: Literal["blend", "items"] = "items"
    """What soft-q's policy decides (`recsys.config.RecommendConfig.scorer`): the list itself,
    softmax(Q(s, item) / alpha) over the evidence of the retrieved cases and the other
    sources (items), or m cases feeding the hand-weighted blend (blend, the ablation
    `soft-q-blend`). The other case modes always choose cases."""
    top_k_items: int = 64
    """K of the items scorer: cases retrieved per decision (over-fetched: each proposes one
    item, and the pool de-duplicates them)."""
    items_n_popular: int = 60
    """items scorer: popular items in the pool (the blend's `n_popular` is for its head)."""
    label_events: int = 3
    """items scorer: a training decision's labels are the user's next `label_events` events
    (the decision's own event first, what the test scores)."""
    items_listwise_weight: float = 1.0
    """items scorer: weight of the listwise term next to the soft TD loss
    (`recsys.config.LearnerConfig.listwise_weight`)."""
    items_use_vectors: bool = False
    """items scorer: Q also sees the state and item vectors (`QNetworkConfig.use_vectors`).
    Off: on the synthetic default its validation NDCG@10 fell pass after pass with them
    (0.475, 0.429, 0.436) while the training reward rose: Q memorised replayed items."""
    label_negatives: int = 48
    """items scorer: unlabelled pool items kept per training transition (a seeded sample;
    0 = all). Every labelled item is kept."""
    label_decay: float = 0.5
    """items scorer: label of the p-th next event = label_decay ** p."""
    pop_half_life_hours: float = 168.0
    """Half-life of the popularity term's counts (0: plain counts of every past event)."""
    learner: LearnerConfig = field(
        default_factory=lambda: LearnerConfig(
            batch_size=32,
            min_replay=64,
            lr=2e-3,
            gamma=0.0,
            policy=PolicyConfig(alpha=0.02, num_chosen=8),
        )
    )
    """Learner settings (mode and seed are set per run). gamma 0: log replay is a contextual
    bandit (what the policy shows does not change the logged user's next state), so the soft
    TD target is the reward; serving and the simulators use gamma > 0. alpha 0.02:
    window rewards are ~0.1, so Q differs across cases by a few hundredths; at alpha 0.2 the
    training policy stayed near uniform over the K retrieved cases and the learning curve
    barely rose (Tianchi validation, 1,200 decisions x 3 passes: reward 0.110 -> 0.118 at 0.2,
    0.127 -> 0.135 at 0.02)."""
    state: StateConfig = field(default_factory=lambda: StateConfig(half_life_hours=72.0))
    """State encoder settings."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Action weights."""
    credit: CreditConfig = field(default_factory=CreditConfig)
    """Credit rule across chosen cases (attributed: cases whose item was acted on)."""
    peer_seeds: tuple[int, ...] = (0, 1)
    """Seeds of the RecBole peers (each (model, seed, split) result is cached)."""
    peer_max_epochs: int = 60
    """RecBole peers: epoch cap; training stops earlier once validation NDCG@10 has not
    improved for `peer_patience` epochs (the best epoch's model is tested)."""
    peer_patience: int = 3
    """RecBole peers: early-stopping patience in epochs."""
    peers_epochs: int = 30
    """RecBole peers: training epochs."""
    sasrec_epochs: int | None = None
    """RecBole SASRec: training epochs (None = `peers_epochs`). On MovieLens-100K one SASRec
    epoch costs ~5 CPU-minutes at one thread (99k training sequences of up to 50 items), so
    the benchmark caps it there; the batch size (256) does not change the cost per epoch."""
    sasrec_seeds: tuple[int, ...] | None = None
    """Seeds of the SASRec peer (None: the run's seeds). SASRec is the slow one: about 45
    CPU-minutes per seed on MovieLens-100K at one thread."""
    tracking_uri: str | None = None
    """MLflow URI (None: $MEMENTO_MLFLOW_URI, else sqlite under mlflow/)."""
    experiment: str = "memento-replay"
    """MLflow experiment name."""
    register_name: str = "memento-recsys"
    """Registered model name of the soft-q policy + case bank (alias `champion`)."""
    register: bool = True
    """Register the trained soft-q policy."""
    output_dir: Path = Path("runs/train")
    """Where plots, tables, checkpoints and the config JSON are written."""
    progress: bool = False
    """Show rich progress bars (the CLI turns them on)."""

    def recommend_config(self, scorer: Literal["blend", "items"] = "blend") -> RecommendConfig:
        """The pipeline settings the replay evaluates and the bundle ships to serving."""
        by_item = get_scorer(scorer).chooses_items
        return RecommendConfig(
            scorer=scorer,
            top_k=self.top_k_items if by_item else self.top_k,
            num_chosen=self.num_chosen,
            top_n=self.top_n,
            n_neighbours=self.n_neighbours,
            n_popular=self.items_n_popular if by_item else self.n_popular,
            exclude_seen=self.exclude_seen,
            pop_half_life_hours=self.pop_half_life_hours,
            prompt_lang=self.prompt_lang,
            blend=self.blend,
        )
