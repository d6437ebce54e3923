"""The data a training run replays: the configured dataset, its split and the replay world.

Every fitted signal of the world (case keys, popularity, co-occurrence, collaborative vectors)
comes from the past of each decision (`training.replay_world`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from training.config import TrainConfig
from training.replay_env import SplitParts, build_split_parts
from training.replay_world import ReplayWorld, build_world

__all__ = ["Prepared", "load_data", "prepare", "prepare_world", "split_data"]


def load_data(cfg: TrainConfig) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """(interactions, items, dataset name) in the canonical schema, prepared once and cached."""
    from data.paths import cache_dir, tmall_sample_dir
    from data.schema import load_canonical
    from data.tianchi import PrepareConfig, prepare_tianchi

    root = cache_dir() / "memento" / "replay-data"
    if cfg.data == "movielens-100k":
        from data.movielens import fetch_movielens_100k

        d = load_canonical(fetch_movielens_100k())
        return d.interactions, d.items, "movielens-100k"
    if cfg.data == "synthetic":
        from data.synthetic import SynthConfig, generate_synthetic

        sc = SynthConfig(cfg.synth_users, cfg.synth_items, cfg.synth_events, cfg.synth_seed)
        tag = f"synthetic-u{sc.users}-i{sc.items}-e{sc.events}-s{sc.seed}"
        raw, canon, name = root / tag / "raw", root / tag / "canonical", "synthetic"
        if not (canon / "interactions.parquet").is_file():
            generate_synthetic(sc, raw)
    elif cfg.data == "tmall-sample":
        raw, canon, name = tmall_sample_dir(), root / "tmall-sample", "tmall-sample"
    elif cfg.data.startswith("tianchi:"):
        raw = Path(cfg.data.removeprefix("tianchi:")).expanduser()
        tag = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:10]
        canon, name = root / f"tianchi-{tag}", f"tianchi:{raw}"
    else:
        raise ValueError(f"unknown data source {cfg.data!r}")
    if not (canon / "interactions.parquet").is_file():
        prepare_tianchi(raw, canon, PrepareConfig())
    d = load_canonical(canon)
    return d.interactions, d.items, name


def split_data(cfg: TrainConfig, interactions: pl.DataFrame) -> Any:
    """The `data.splits.Split` of the configured protocol."""
    from data.splits import leave_last_out, temporal_split

    if cfg.split == "leave-last-out":
        return leave_last_out(interactions, with_valid=True)
    return temporal_split(interactions, valid_fraction=0.0, test_fraction=cfg.test_fraction)


def text_encoder(cfg: TrainConfig) -> Any:
    """The model's item-title encoder (`cfg.core.text`) with the on-disk cache."""
    from data.paths import cache_dir
    from recsys.memory.text_encoder import build_text_encoder

    cache = str(cache_dir() / "memento" / "text-cache")
    return build_text_encoder(dataclasses.replace(cfg.core.text, cache_dir=cache))


def prepare_world(cfg: TrainConfig) -> tuple[ReplayWorld, Any, str]:
    """(world, split, dataset name): the configured data, split and replayed as arrays."""
    interactions, items, name = load_data(cfg)
    split = split_data(cfg, interactions)
    world = build_world(
        interactions,
        split.test,
        items,
        text_encoder(cfg),
        cfg.core.state,
        cfg.core.reward,
        cfg.window_hours,
        collab_dim=cfg.collab_dim,
        collab_weight=cfg.collab_weight,
        case_state_weight=cfg.core.case_bank.key_state_weight,
    )
    return world, split, name


@dataclass
class Prepared:
    """One prepared replay: every method of a comparison runs on the same one."""

    world: ReplayWorld
    """The replayed log."""
    split: Any
    """The `data.splits.Split`."""
    name: str
    """Dataset name."""
    parts: SplitParts
    """The training parts and the evaluated (served) parts."""


def prepare(cfg: TrainConfig) -> Prepared:
    """World, split and parts of the configured data (`prepare_world` + `build_split_parts`)."""
    world, split, name = prepare_world(cfg)
    return Prepared(world, split, name, build_split_parts(world, cfg))
