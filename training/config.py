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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from recsys.config import CoreConfig
from recsys.presets import derive, offline_replay

__all__ = ["LEARNED_MODES", "SplitProtocol", "TrainConfig"]

SplitProtocol = Literal["leave-last-out", "time-cutoff"]

LEARNED_MODES: tuple[str, ...] = (
    "soft-q",
    "soft-q-blend",
    "soft-q-cases",
    "parametric-ce",
    "non-parametric",
    "tabular",
)
"""Modes that choose with a `recsys.rl.learner.Learner` of that mode (the comparison's list of
every method: `bench.replay.config`)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything `training.fit.fit` needs: data, split, passes, tracking, and the model
    (`core`, the one schema of every model setting); defaults = `memento fit` with no argument.
    A comparison (`bench.replay.config.CompareConfig`) holds one."""

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
    iterations: int = 3
    """Passes over the training period (memory statistics and Q carried over)."""
    reward_top: int = 10
    """The user is shown the first `reward_top` items: the window reward counts actions on
    those (metrics use the whole top-N list, `core.recommend.top_n`)."""
    llm_fraction: float = 0.0
    """Share of TRAINING decisions ranked with the LLM when one is given (evaluation always
    uses it). The default 0 keeps `memento train` within ~10 CPU minutes: the LLM is frozen, so
    training needs it only to expose the learner to the LLM's reordering."""
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
    collab_dim: int = 0
    """> 0: append collaborative item vectors of this rank (PPMI co-occurrence SVD of the
    training rows, `training.item_vectors`) to the title vectors. Changes the vector width, so
    a model trained with it needs the same catalogue vectors to be served."""
    collab_weight: float = 0.9
    """Share of the item vector's squared norm given to the collaborative part."""
    label_events: int = 3
    """items scorer: a training decision's labels are the user's next `label_events` events
    (the decision's own event first, what the test scores)."""
    label_negatives: int = 48
    """items scorer: unlabelled pool items kept per training transition (a seeded sample;
    0 = all). Every labelled item is kept."""
    label_decay: float = 0.5
    """items scorer: label of the p-th next event = label_decay ** p."""
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
    core: CoreConfig = field(default_factory=offline_replay)
    """The model fitted and shipped (`recsys.presets.offline_replay`: the items scorer); its
    `learner.seed` seeds the learner and the training decision subsample."""

    def __post_init__(self) -> None:
        """Keep `core`'s scorer-dependent fields derived (`recsys.presets.derive`)."""
        object.__setattr__(self, "core", derive(self.core))

    @property
    def seed(self) -> int:
        """The run's seed (`core.learner.seed`)."""
        return self.core.learner.seed

    def with_seed(self, seed: int) -> TrainConfig:
        """This run with another seed."""
        core = replace(self.core, learner=replace(self.core.learner, seed=seed))
        return replace(self, core=core)
