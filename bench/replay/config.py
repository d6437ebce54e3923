"""What a replay comparison runs (`memento train`, `memento bench replay`): the fitted product
(`training.config.TrainConfig`, its model `core`) against the other methods on the same rows.

Only comparison settings live here (methods, seeds, LLM evaluation, RecBole peers); every
model setting is in a `recsys.config.CoreConfig`: the product's (`train.core`) and the model of
the methods that choose cases for the blend (`case_core`). `replay_cores` builds both with the
same edits, so the methods differ only where their scorer does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from bench.peers.harness import PEER_MAX_EPOCHS, PEER_PATIENCE
from recsys.config import CoreConfig
from recsys.presets import derive, offline_replay
from training.config import LEARNED_MODES, TrainConfig

__all__ = [
    "ABLATIONS",
    "ALL_MODES",
    "BASELINES",
    "DEFAULT_MODES",
    "LLM_MODES",
    "RECBOLE_PEERS",
    "SEQ_ABLATIONS",
    "CompareConfig",
    "ModelEdit",
    "Policy",
    "SeqMethodConfig",
    "model_edit",
    "replay_cores",
]

LLM_MODES: tuple[str, ...] = (*LEARNED_MODES, "no-memory")
"""Modes whose final ranking includes the frozen LLM."""
ABLATIONS: tuple[str, ...] = (
    "soft-q-blend",
    "soft-q-cases",
    "parametric-ce",
    "tabular",
    "items-scorer",
)
"""Learned modes that are ablations or older designs of soft-q (`ablation_seeds`);
`items-scorer`: with the sequence policy as soft-q (`CompareConfig.policy`), the items
scorer's soft-q (the previous product) under that name."""
SEQ_ABLATIONS: tuple[str, ...] = ("no-prior", "q-only", "ce-head", "cases-only")
"""Results produced beside the sequence policy's soft-q from the same fitted model, every
seed (`bench.replay.seq_method`): without the item prior, Q without cases (prior kept), the
supervised head alone, the cases without Q."""
Policy = Literal["items", "seq"]
"""What soft-q is in a comparison: the items scorer's learner trained by replay passes, or the
learned sequence policy (`bench.replay.seq_method`)."""
BASELINES: tuple[str, ...] = ("popularity", "causal-popularity", "item-knn", "ease", "rp3beta")
"""Peers fitted in process (`bench.replay.baselines`)."""
RECBOLE_PEERS: tuple[str, ...] = ("recbole-bpr", "recbole-sasrec", "recbole-gru4rec")
"""Peers trained by RecBole in their own environment (`bench.peers`)."""
ALL_MODES: tuple[str, ...] = (
    *LEARNED_MODES,
    "items-scorer",
    "no-memory",
    "no-llm",
    *BASELINES,
    *RECBOLE_PEERS,
)
"""Every method the harness knows (peers run in their own environment)."""
DEFAULT_MODES: tuple[str, ...] = (
    "soft-q",
    "non-parametric",
    "no-memory",
    "popularity",
    "causal-popularity",
)
"""The methods of `memento train`."""


@dataclass(frozen=True)
class SeqMethodConfig:
    """The sequence policy's setting and its validation grids (docs/sequence_policy.md)."""

    setting: str = "gru-prior"
    """A named setting of `bench.replay.seq_method.GRID` (encoder, loss and fit overrides):
    "gru-prior" was chosen on validation (seed 0) by `bench.replay.seq_eval`'s grid."""
    epochs: int = 21
    """Training epochs (the epoch of the best validation NDCG@10 of that grid run)."""
    refit: bool = True
    """Refit the chosen setting on the refit rows for test (the protocol's rule); False: test
    the selection fit (trained on the fit rows; its case memory still holds the refit rows),
    half the training cost, as the items scorer's soft-q does."""
    ablations: bool = True
    """Also rank the test rows with the ablations (`SEQ_ABLATIONS`) of each fitted model."""
    ks: tuple[int, ...] = (10, 30, 100)
    """Case-memory K tried on validation."""
    weights: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
    """Case-memory vote weights tried on validation."""
    prior_peers: tuple[str, ...] = ("ease", "rp3beta")
    """Peers whose tuned item x item matrix may be the item prior (`bench.replay.seq_prior`)."""
    prior_weights: tuple[float, ...] = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0)
    """Item prior weights v tried on validation (0 = no prior)."""
    work: Path = Path(".cache/seq")
    """Cache folder of the per-seed fits."""

    def fit_key(self) -> str:
        """A short hash of what the fits depend on (setting, epochs): the cache key's part
        that is not the split or the seed (K, w and the prior are chosen after the fits)."""
        fields = {"setting": self.setting, "epochs": self.epochs}
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


ModelEdit = Callable[[CoreConfig], CoreConfig]
"""A change to a model configuration (`dataclasses.replace` calls)."""


def replay_cores(edit: ModelEdit | None = None) -> tuple[CoreConfig, CoreConfig]:
    """(product model, case-choosing methods' model): `recsys.presets.offline_replay` for the
    items and the blend scorer, each with the same `edit` applied."""
    product, cases = offline_replay("items"), offline_replay("blend")
    if edit is None:
        return product, cases
    return derive(edit(product)), derive(edit(cases))


def model_edit(
    top_n: int | None = None,
    top_k: int | None = None,
    num_chosen: int | None = None,
    text_encoder: str | None = None,
    exclude_seen: bool | None = None,
    case_state_weight: float | None = None,
    item_knn_weight: float | None = None,
    case_weight: float | None = None,
    llm_depth: int | None = None,
) -> ModelEdit:
    """The model changes of the command-line options (None: the model's own value)."""

    def edit(core: CoreConfig) -> CoreConfig:
        rc, text, bank = core.recommend, core.text, core.case_bank
        blend = rc.blend
        rc = replace(
            rc,
            top_n=rc.top_n if top_n is None else top_n,
            top_k=rc.top_k if top_k is None else top_k,
            num_chosen=rc.num_chosen if num_chosen is None else num_chosen,
            exclude_seen=rc.exclude_seen if exclude_seen is None else exclude_seen,
            blend=replace(
                blend,
                w_knn=blend.w_knn if item_knn_weight is None else item_knn_weight,
                w_case=blend.w_case if case_weight is None else case_weight,
                llm_depth=blend.llm_depth if llm_depth is None else llm_depth,
            ),
        )
        if text_encoder is not None:
            text = replace(text, kind=text_encoder)  # type: ignore[arg-type]
        if case_state_weight is not None:
            bank = replace(bank, key_state_weight=case_state_weight)
        return replace(core, recommend=rc, text=text, case_bank=bank)

    return edit


@dataclass(frozen=True)
class CompareConfig:
    """One comparison; defaults = `memento train` with no argument."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """Data, split, passes, tracking and the product model (soft-q's `core`); fitted and
    registered through `training.fit.fit` with the first of `seeds`."""
    case_core: CoreConfig = field(default_factory=lambda: offline_replay("blend"))
    """The model of the methods that choose m cases for the blend (non-parametric, no-memory,
    soft-q-blend, parametric-ce, tabular): `train.core`'s settings with the blend scorer's
    (`replay_cores` builds both)."""
    modes: tuple[str, ...] = DEFAULT_MODES
    """Methods to run (see `ALL_MODES`)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds (learner init, sampling, decision subsampling)."""
    ablation_seeds: tuple[int, ...] | None = None
    """Seeds of the ablations (`ABLATIONS`); None: `seeds` (they cost as much as soft-q)."""
    use_llm: bool = False
    """Evaluate the LLM modes with the frozen LLM re-scoring the head of every warm list. Off
    by default: on the measured runs it did not improve NDCG (see docs/results.md), and every
    LLM call costs CPU seconds; `memento bench llm-rerank` measures it."""
    llm_model: str = "qwen2.5-0.5b"
    """Frozen LLM name for `recsys.llm.provider` ("smollm2-135m" = tiny, for tests)."""
    peer_seeds: tuple[int, ...] = (0, 1)
    """Seeds of the RecBole peers (each (model, seed, split) result is cached)."""
    peer_max_epochs: int = PEER_MAX_EPOCHS
    """RecBole peers: epoch cap; training stops earlier once validation NDCG@10 has not
    improved for `peer_patience` epochs (the best epoch's model is tested)."""
    peer_patience: int = PEER_PATIENCE
    """RecBole peers: early-stopping patience in epochs."""
    policy: Policy = "items"
    """soft-q = the items scorer's learner (`memento train`, the shipped default) or the
    sequence policy (`memento bench replay`; its ablations `SEQ_ABLATIONS` come with it and the
    items scorer's soft-q runs as the `items-scorer` mode)."""
    seq: SeqMethodConfig = field(default_factory=lambda: SeqMethodConfig())
    """The sequence policy's setting, grids and cache folder (with `policy` "seq")."""

    def __post_init__(self) -> None:
        """Keep `case_core`'s scorer-dependent fields derived (`recsys.presets.derive`)."""
        object.__setattr__(self, "case_core", derive(self.case_core))

    def core_of(self, mode: str) -> CoreConfig:
        """The model a method runs: soft-q the product's, `soft-q-cases` the product's with
        an item pool of the retrieved cases' items only, every other case-memory method (and
        no-memory) `case_core`."""
        if mode == "soft-q":
            return self.train.core
        if mode == "soft-q-cases":
            rc = self.train.core.recommend
            rc = replace(
                rc, n_neighbours=0, n_popular=0, n_seen=0, blend=replace(rc.blend, n_knn=0)
            )
            return replace(self.train.core, recommend=rc)
        return self.case_core

    def train_of(self, mode: str, seed: int) -> TrainConfig:
        """The training run of one method and seed (its model, `core_of(mode)`)."""
        return replace(self.train, core=self.core_of(mode)).with_seed(seed)
