"""What the service keeps per feedback stays bounded: open decisions and case payloads."""

from __future__ import annotations

import numpy as np

from recsys.memory.case_encoder import SUMMARY_CHARS, case_summary, rec_payload
from recsys.records import Action, UserState
from serving.outcomes import OPEN_DECISIONS_LIMIT, OpenDecisions
from serving.service import DecisionSnapshot


def _decision(k: int) -> DecisionSnapshot:
    return DecisionSnapshot(f"d{k}", "u", b"", b"", (), ("a", "b", "c"), "m", float(k))


def test_plain_feedback_decisions_are_forgotten_past_the_limit() -> None:
    """Decisions answered by one click each (never closed) keep at most `limit` entries."""
    open_ = OpenDecisions(limit=50)
    for k in range(500):
        assert open_.add(_decision(k), "a", acted=True) is False
    assert len(open_._open) == 50
    assert OPEN_DECISIONS_LIMIT <= 10_000  # a few MB at ~0.45 KB per entry


def test_an_outcome_still_closes_after_many_plain_feedback_decisions() -> None:
    """The newest decision's rows still complete it: the cap drops only the oldest."""
    open_ = OpenDecisions(limit=50)
    for k in range(500):
        open_.add(_decision(k), "a", acted=True)
    last = _decision(1_000)
    assert open_.add(last, "a", acted=False) is False
    assert open_.add(last, "b", acted=False) is False
    assert open_.add(last, "c", acted=False) is True  # no item acted on: one learning step
    assert "d1000" not in open_._open


def test_a_case_keeps_only_the_prompt_part_of_a_long_state_summary() -> None:
    """A served state's long summary is cut to what the prompt shows of a case."""
    text = "User u recent actions: " + "; ".join(f"click 「商品 {i}」 (0m ago)" for i in range(200))
    state = UserState("u", np.zeros(4, np.float32), text, 0.0)
    payload = rec_payload(state, "i1", "title", Action.CLICK)
    assert len(text) > 4 * SUMMARY_CHARS
    assert payload["user_summary"] == text[:SUMMARY_CHARS] == case_summary(text)
