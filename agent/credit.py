"""Per-case credit for the research agent: which chosen cases did the plans follow?

A chosen case is *followed* when a plan names it in `"follows"`, or when a plan's final answer
is the case's answer (case reuse). When no plan says what it follows, a case also counts as
followed when most of the plans' procedure words (content words of the step goals that are
not in the task's own question) occur in the case's plan and trajectory: the plan copied its
procedure. Followed cases get the task's
reward, the others `beta` times it: the shared `recsys.rl.credit.assign_credit` rule
("attributed"), with "followed" as the acted-on item. Without this, every chosen case got the
full reward and Q learned task difficulty instead of case usefulness.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from agent.plan import Plan
from recsys.config import CreditConfig
from recsys.records import Case
from recsys.rl.credit import assign_credit

__all__ = ["case_rewards", "followed_cases"]

_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_STOP_TEXT = (
    "a an the of in on to for and or by with from at is are was be it this that what "
    "which who find answer task step use search read document look up"
)
_STOP = frozenset(_STOP_TEXT.split(" "))
_FOLLOW = "followed"


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def _case_text(case: Case) -> str:
    p = case.payload
    plan = " ".join(str(s) for s in p.get("plan", []))
    return f"{plan} {p.get('trajectory_summary', '')}"


def followed_cases(
    plans: Sequence[Plan], cases: Sequence[Case], task: str = "", min_overlap: float = 0.6
) -> list[bool]:
    """For each chosen case (in chosen order), whether the plans for `task` followed it."""
    said = any(p.follows is not None for p in plans)
    named = {cid for p in plans for cid in (p.follows or ())}
    answers = {p.final_answer.strip().lower() for p in plans if p.final_answer}
    goals = _words(" ".join(s.goal for p in plans for s in p.steps)) - _words(task)
    out = []
    for case in cases:
        if case.case_id in named:
            out.append(True)
            continue
        answer = str(case.payload.get("answer", "")).strip().lower()
        if answer and answer in answers:
            out.append(True)
            continue
        if goals and not said:
            shared = len(goals & _words(_case_text(case))) / len(goals)
            out.append(shared >= min_overlap)
        else:
            out.append(False)
    return out


def case_rewards(reward: float, followed: Sequence[bool], beta: float) -> np.ndarray:
    """(m,) rewards of the m chosen cases: `reward` for followed ones, `beta * reward` else."""
    items = [{_FOLLOW} if f else set() for f in followed]
    return assign_credit(reward, items, {_FOLLOW}, CreditConfig("attributed", beta))
