"""Padded windows of user sequences: the model's input and the transitions it learns from.

A user sequence is its events in split order (time, then the dataset's order for equal times).
Windows are LEFT-padded to length L so the latest event sits at index L - 1. Transition at
position t: state s_t = encoder output after event t, action a_t = item of event t + 1, reward
r_t = reward of event t + 1's action, next state s_{t+1} = encoder output at t + 1 (same window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsys.config import RewardConfig
from recsys.rec.reward import action_reward
from recsys.records import Action, Interaction

__all__ = [
    "ACTION_INDEX",
    "SeqBatch",
    "UserSequence",
    "gap_bucket",
    "histories_batch",
    "sequence_of",
    "windows",
]

ACTION_INDEX: dict[str, int] = {a.value: k + 1 for k, a in enumerate(Action)}
"""Canonical action value -> embedding index (1..4; 0 = padding)."""


@dataclass(frozen=True)
class UserSequence:
    """One user's events in split order (numpy arrays of equal length n)."""

    items: np.ndarray
    """(n,) int64 item indices in 1..N."""
    actions: np.ndarray
    """(n,) int64 action indices in 1..A."""
    ts: np.ndarray
    """(n,) float64 unix seconds."""
    rewards: np.ndarray
    """(n,) float32 reward of each event's action."""


def sequence_of(
    events: Sequence[Interaction], index: Mapping[str, int], reward: RewardConfig | None = None
) -> UserSequence:
    """The events whose item is in `index` (item id -> 1..N), in the given (split) order, as a
    UserSequence; the reward of an event is `action_reward(action, reward)` (0 without
    `reward`: scoring a history reads no reward)."""
    known = [e for e in events if e.item_id in index]
    return UserSequence(
        np.array([index[e.item_id] for e in known], np.int64),
        np.array([ACTION_INDEX[Action(e.action).value] for e in known], np.int64),
        np.array([e.ts for e in known], np.float64),
        np.array(
            [0.0 if reward is None else action_reward(e.action, reward) for e in known], np.float32
        ),
    )


def gap_bucket(gaps: np.ndarray, n_gaps: int) -> np.ndarray:
    """(n,) seconds since the previous event (NaN = first event) -> (n,) bucket in 1..n_gaps-1.

    1 = first event; 2 + floor(log2(1 + gap)) capped at n_gaps - 1."""
    out = np.ones(len(gaps), np.int64)
    ok = ~np.isnan(gaps)
    b = 2 + np.floor(np.log2(1.0 + np.maximum(gaps[ok], 0.0))).astype(np.int64)
    out[ok] = np.minimum(b, n_gaps - 1)
    return out


@dataclass
class SeqBatch:
    """A batch of B left-padded windows of length L (torch tensors)."""

    items: torch.Tensor
    """(B, L) long: input item indices, 0 = padding."""
    actions: torch.Tensor
    """(B, L) long: input action indices, 0 = padding."""
    gaps: torch.Tensor
    """(B, L) long: input time-gap buckets, 0 = padding."""
    targets: torch.Tensor
    """(B, L) long: the next item a_t after position t, 0 = none (padding or last input)."""
    rewards: torch.Tensor
    """(B, L) float: reward r_t of the next item's action (0 where no target)."""
    target_ts: torch.Tensor
    """(B, L) float64: unix seconds of the next item's event (0 where no target)."""

    @property
    def valid(self) -> torch.Tensor:
        """(B, L) bool: a real input event."""
        return self.items > 0

    @property
    def has_target(self) -> torch.Tensor:
        """(B, L) bool: position t has a transition (a next item inside the window)."""
        return self.targets > 0

    def to(self, device: torch.device | str) -> SeqBatch:
        """The same batch on `device`."""
        return SeqBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def index(self, rows: torch.Tensor) -> SeqBatch:
        """The sub-batch of these window rows (B',)."""
        return SeqBatch(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


def _fill(
    seqs: Sequence[tuple[UserSequence, int, int]], length: int, n_gaps: int, targets: bool
) -> SeqBatch:
    """Left-pad slices (seq, start, stop) into a batch; targets inside each slice if asked."""
    b = len(seqs)
    arr = {k: np.zeros((b, length), np.int64) for k in ("items", "actions", "gaps", "targets")}
    rew = np.zeros((b, length), np.float32)
    tts = np.zeros((b, length), np.float64)
    for row, (s, start, stop) in enumerate(seqs):
        n = stop - start
        assert 0 < n <= length, f"{n=} {length=}"
        lo = length - n
        arr["items"][row, lo:] = s.items[start:stop]
        arr["actions"][row, lo:] = s.actions[start:stop]
        prev = np.concatenate([[np.nan], s.ts[:-1]])[start:stop]
        arr["gaps"][row, lo:] = gap_bucket(s.ts[start:stop] - prev, n_gaps)
        if targets and n > 1:
            arr["targets"][row, lo : length - 1] = s.items[start + 1 : stop]
            rew[row, lo : length - 1] = s.rewards[start + 1 : stop]
            tts[row, lo : length - 1] = s.ts[start + 1 : stop]
    return SeqBatch(
        torch.from_numpy(arr["items"]),
        torch.from_numpy(arr["actions"]),
        torch.from_numpy(arr["gaps"]),
        torch.from_numpy(arr["targets"]),
        torch.from_numpy(rew),
        torch.from_numpy(tts),
    )


def windows(seqs: Sequence[UserSequence], length: int, n_gaps: int) -> SeqBatch:
    """Every transition of every sequence exactly once, in windows of at most `length` inputs.

    A sequence of n events is cut from its end into windows overlapping by one event (the last
    input of a window is the first of the next one back), so each transition (t -> t + 1) and
    its next state lie in one window. Sequences with one event give no window."""
    assert length >= 2, f"{length=}"
    parts: list[tuple[UserSequence, int, int]] = []
    for s in seqs:
        stop = len(s.items)
        while stop >= 2:
            start = max(0, stop - length)
            parts.append((s, start, stop))
            stop = start + 1
    return _fill(parts, length, n_gaps, targets=True)


def histories_batch(seqs: Sequence[UserSequence], length: int, n_gaps: int) -> SeqBatch:
    """The latest `length` events of each (non-empty) history, no targets: read the state at
    index L - 1 to score the next decision."""
    parts = [(s, max(0, len(s.items) - length), len(s.items)) for s in seqs]
    return _fill(parts, length, n_gaps, targets=False)
