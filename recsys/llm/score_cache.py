"""A bounded LRU cache of candidate scores keyed by (model, prompt, candidate) hashes."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["ScoreCache", "prompt_key", "score_key"]


def prompt_key(model_id: str, prompt: str) -> str:
    """Hex sha256 of (model id, prompt)."""
    return hashlib.sha256(f"{model_id}\x00{prompt}".encode()).hexdigest()


def score_key(prompt_hash: str, candidate: str) -> str:
    """Hex sha256 of (prompt key, candidate text)."""
    return hashlib.sha256(f"{prompt_hash}\x00{candidate}".encode()).hexdigest()


class ScoreCache:
    """LRU map from `score_key` to a float score; `capacity == 0` disables it."""

    def __init__(self, capacity: int) -> None:
        assert capacity >= 0, f"{capacity=}"
        self.capacity = capacity
        self._data: OrderedDict[str, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> float | None:
        """The cached score or None (counts hits and misses)."""
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: float) -> None:
        """Store a score, evicting the least recently used entry when full."""
        if self.capacity == 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Drop every entry."""
        self._data.clear()
