"""In-process peers behind the `OnlinePolicy` interface of the loop.

A peer exposes `recommend(user_id, history, n) -> (items, pscores)` and
`learn(user_id, history, shown, pscores, rewards)` (rewards per shown position). The adapter
applies the seen-item rule every method gets (acted items are never shown: it asks for more
and drops them) and turns the simulator's events into per-position rewards with the one
reward function (`bench.sim.base.SIM_REWARD`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bench.sim.base import SIM_REWARD, HistoryEvent, SimEvent
from recsys.rec.reward import action_reward
from recsys.records import Action


class Peer(Protocol):
    """What an in-process peer implements."""

    name: str

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int
    ) -> tuple[list[str], list[float]]: ...

    def learn(
        self,
        user_id: str,
        history: list[HistoryEvent],
        shown: list[str],
        pscores: list[float],
        rewards: list[float],
    ) -> None: ...


class PeerAdapter:
    """`OnlinePolicy` over a `Peer` (module docstring)."""

    def __init__(self, peer: Peer) -> None:
        self.name = peer.name
        self.peer = peer
        self._last: dict[str, tuple[list[HistoryEvent], list[str], list[float]]] = {}

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int, now: float
    ) -> tuple[list[str], list[float | None]]:
        seen = {e.item_id for e in history}
        items, pscores = self.peer.recommend(user_id, history, n + len(seen))
        kept = [(i, p) for i, p in zip(items, pscores, strict=True) if i not in seen][:n]
        shown = [i for i, _ in kept]
        ps = [p for _, p in kept]
        self._last[user_id] = (history, shown, ps)
        return shown, list(ps)

    def learn(self, user_id: str, events: Sequence[SimEvent], now: float) -> None:
        history, shown, ps = self._last.pop(user_id)
        got = {e.item_id: e for e in events}
        rewards = [
            action_reward(Action(got[i].action), SIM_REWARD, got[i].dwell_seconds)
            if i in got
            else 0.0
            for i in shown
        ]
        self.peer.learn(user_id, history, shown, ps, rewards)


__all__ = ["Peer", "PeerAdapter"]
