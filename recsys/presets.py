"""The named presets of `recsys.config.CoreConfig`: where offline replay and the online service
truly need different values.

Each preset is `CoreConfig()` (the field defaults) with the deviations its docstring names, each
explained in that field's docstring; it never copies a field it does not change, so a default
changed in `recsys.config` reaches every preset (`tests/recsys/test_one_default.py` checks that a
preset differs from the defaults exactly where its docstring says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from recsys.config import CoreConfig, Scorer

__all__ = ["PRESETS", "offline_replay", "online", "preset"]


def offline_replay(scorer: Scorer = "items") -> CoreConfig:
    """The model `memento train` fits by replaying a log and ships (`TrainConfig.core`), items
    scorer by default (the product). Deviations: `recommend.scorer`, `learner.gamma` 0,
    `learner.lr` 2e-3, `learner.policy.alpha` 0.02, `state.half_life_hours` 72,
    `case_bank.key_state_weight` 1.0, `case_bank.q_input` content; with the items scorer also
    `recommend.top_k` 64, `recommend.n_popular` 60 and `learner.q.use_vectors` False."""
    base = CoreConfig()
    core = replace(
        base,
        state=replace(base.state, half_life_hours=72.0),
        case_bank=replace(base.case_bank, key_state_weight=1.0, q_input="content"),
        learner=replace(
            base.learner, gamma=0.0, lr=2e-3, policy=replace(base.learner.policy, alpha=0.02)
        ),
        recommend=replace(base.recommend, scorer=scorer),
    )
    return _REPLAY_POOL[scorer](core)


def online(scorer: Scorer = "blend") -> CoreConfig:
    """A fresh (untrained) model of the online service (`ServingSettings.fresh`), blend scorer
    by default. Deviations: `recommend.scorer`, `case_bank.index` hnsw, `learner.min_replay` 1,
    `learner.replay_capacity` 512,
    `recommend.num_chosen` 4, `recommend.n_neighbours` 20, `recommend.pop_half_life_hours` 0,
    `text.dim` 64 (the hashing width of tests and simulator runs; USE is always 512)."""
    base = CoreConfig()
    return replace(
        base,
        text=replace(base.text, dim=64),
        case_bank=replace(base.case_bank, index="hnsw"),
        learner=replace(base.learner, min_replay=1, replay_capacity=512),
        recommend=replace(
            base.recommend,
            scorer=scorer,
            num_chosen=4,
            n_neighbours=20,
            pop_half_life_hours=0.0,
        ),
    )


def _items_replay_pool(core: CoreConfig) -> CoreConfig:
    """The items scorer's pool and Q input in offline replay (see `offline_replay`)."""
    return replace(
        core,
        recommend=replace(core.recommend, top_k=64, n_popular=60),
        learner=replace(core.learner, q=replace(core.learner.q, use_vectors=False)),
    )


_REPLAY_POOL: dict[Scorer, Callable[[CoreConfig], CoreConfig]] = {
    "blend": lambda core: core,
    "items": _items_replay_pool,
}
"""What offline replay changes per scorer (keyed by scorer name, like the scorer registry)."""

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
