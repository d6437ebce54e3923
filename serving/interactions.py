"""The service's event records as the core's interactions (`recsys.records.Interaction`):
what the recommend path and the learning path both read."""

from __future__ import annotations

from collections.abc import Sequence

from recsys.records import Action, Interaction
from serving.service import EventRecord

__all__ = ["ACTIONS", "interactions"]

ACTIONS = {a.value: a for a in Action}
"""Action name -> `Action` (the names the service's events and feedback use)."""


def interactions(user_id: str, events: Sequence[EventRecord]) -> list[Interaction]:
    """Core records of the API events (unknown action names are dropped by the schema)."""
    return [
        Interaction(user_id, e.item_id, ACTIONS[e.action], float(e.ts))
        for e in events
        if e.action in ACTIONS
    ]
