"""Replay buffer of transitions; each keeps its own snapshot of the next candidate set.

The buffer is a ring of the latest `capacity` transitions (the online service keeps 512:
`recsys.presets.online`), so uniform sampling draws from a recency window, never from the
whole history; the online learner's batched steps (`recsys.loop.MemoryLoop.train`) put the
transitions not yet learned from first and fill the batch from this window
(`sample_transitions`)."""

from __future__ import annotations

import numpy as np
import torch

from recsys.records import CandidateBatch, Transition, TransitionBatch

__all__ = ["ReplayBuffer", "collate_transitions"]


def collate_transitions(
    items: list[Transition], k: int | None = None, m: int | None = None
) -> TransitionBatch:
    """Pad and stack transitions: K = the largest candidate set, M = the largest slate."""
    assert items, "cannot collate an empty list"
    k = k or max(1, max(max(len(t.cands), len(t.next_cands)) for t in items))
    m = m or max(len(t.chosen) for t in items)
    b = len(items)
    chosen = np.zeros((b, m), np.int64)
    rewards = np.zeros((b, m), np.float32)
    logp = np.zeros((b, m), np.float32)
    lens = np.fromiter((len(t.chosen) for t in items), np.int64, b)
    cmask = np.arange(m)[None, :] < lens[:, None]  # each slate left-aligned in its row
    chosen[cmask] = np.concatenate([t.chosen for t in items])
    rewards[cmask] = np.concatenate([t.rewards for t in items])
    logp[cmask] = np.concatenate([t.logp for t in items])
    return TransitionBatch(
        state=torch.from_numpy(np.stack([t.state for t in items]).astype(np.float32)),
        cands=CandidateBatch.from_candidates([t.cands for t in items], k),
        chosen=torch.from_numpy(chosen),
        chosen_mask=torch.from_numpy(cmask),
        logp=torch.from_numpy(logp),
        rewards=torch.from_numpy(rewards),
        next_state=torch.from_numpy(np.stack([t.next_state for t in items]).astype(np.float32)),
        next_cands=CandidateBatch.from_candidates([t.next_cands for t in items], k),
        done=torch.tensor([float(t.done) for t in items]),
    )


class ReplayBuffer:
    """Ring buffer of `Transition`s with uniform sampling."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        assert capacity > 0, f"{capacity=}"
        self.capacity = capacity
        self._items: list[Transition] = []
        self._pos = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, t: Transition) -> None:
        """Append, overwriting the oldest transition when full."""
        if len(self._items) < self.capacity:
            self._items.append(t)
        else:
            self._items[self._pos] = t
        self._pos = (self._pos + 1) % self.capacity

    def clear(self) -> None:
        """Drop every transition (a drift alarm's forgetting, `RecommendConfig.drift_forget`)."""
        self._items.clear()
        self._pos = 0

    def sample(self, batch_size: int) -> TransitionBatch:
        """A uniformly sampled (with replacement) padded batch."""
        return collate_transitions(self.sample_transitions(batch_size))

    def sample_transitions(self, n: int) -> list[Transition]:
        """n transitions drawn uniformly with replacement (an empty list for n <= 0)."""
        assert self._items, "replay buffer is empty"
        if n <= 0:
            return []
        idx = self._rng.integers(0, len(self._items), size=n)
        return [self._items[i] for i in idx]

    def transitions(self) -> list[Transition]:
        """All stored transitions (oldest first only before the ring wraps)."""
        return list(self._items)
