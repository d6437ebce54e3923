"""Disjoint user shards of a replay pass: each user's decisions stay on one actor, in time
order, so per-user state (history, pending reward windows) never crosses actors."""

from __future__ import annotations

import numpy as np

from training.replay_world import ReplayWorld

__all__ = ["shard_decisions", "shard_users"]


def shard_users(users: np.ndarray, workers: int) -> list[np.ndarray]:
    """Split the users of `users` ((n,) user id per decision) into `workers` disjoint sets
    covering them all, balanced by decision count (greedy: most decisions first, ties by id,
    each to the lightest shard). Deterministic; a shard may be empty when users < workers."""
    assert workers >= 1, f"{workers=}"
    uniq, counts = np.unique(np.asarray(users), return_counts=True)
    load = np.zeros(workers, np.int64)
    owner = np.empty(len(uniq), np.int64)
    for i in np.lexsort((uniq, -counts)):
        w = int(np.argmin(load))
        owner[i] = w
        load[w] += counts[i]
    return [np.sort(uniq[owner == w]) for w in range(workers)]


def shard_decisions(world: ReplayWorld, decisions: np.ndarray, workers: int) -> list[np.ndarray]:
    """(n_w,) event indices of each shard, in time order: `decisions` split by `shard_users`."""
    decisions = np.sort(np.asarray(decisions, np.int64))
    users = world.user[decisions]
    return [decisions[np.isin(users, s)] for s in shard_users(users, workers)]
