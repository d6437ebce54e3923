"""The planner: retrieve past cases (Top-K from the case bank, then the learner's policy picks
a few), show them as positive and negative exemplars, and ask the LLM for a JSON plan or a
final answer. Re-planning cycles see the executors' results so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.memory import AgentMemory
from agent.plan import PLAN_SCHEMA_TEXT, PlanRequest, request_plan
from recsys.llm.chat import ChatClient, Message
from recsys.records import Candidates, Case, Choice

__all__ = ["PLANNER_SYSTEM", "Planner", "PlannerConfig", "Retrieval", "format_exemplars"]

PLANNER_SYSTEM = (
    "You are the planner of a research agent. Break the task into a few short steps that an "
    "executor with tools (search, read_document, read_file, math, run_python) can carry out, "
    "or give the final answer once the results suffice. Final answers are short (a name, a "
    "number, yes/no). " + PLAN_SCHEMA_TEXT
)
"""System prompt of the planner."""


@dataclass(frozen=True)
class PlannerConfig:
    """Planner settings."""

    max_retries: int = 2
    """Re-asks after a malformed plan before the one-step fallback."""
    max_tokens: int = 256
    """Completion budget of one planning call."""
    exemplar_chars: int = 300
    """Each exemplar's trajectory summary is cut to this many characters."""
    result_chars: int = 400
    """Each step result shown to the re-planner is cut to this many characters."""


@dataclass(frozen=True)
class Retrieval:
    """The cases retrieved for one task and those the policy chose."""

    state: np.ndarray
    """(d,) task embedding."""
    cands: Candidates
    """Snapshot of the Top-K retrieved cases."""
    choice: Choice | None
    """The policy's choice (None when nothing was retrieved)."""
    cases: tuple[Case, ...] = field(default_factory=tuple)
    """The chosen cases, in chosen order."""

    @property
    def retrieved_ids(self) -> list[int]:
        """Ids of all retrieved cases."""
        return [int(i) for i in self.cands.case_ids[self.cands.mask]]

    @property
    def chosen_ids(self) -> list[int]:
        """Ids of the chosen cases."""
        return [c.case_id for c in self.cases]


def format_exemplars(cases: Sequence[Case], threshold: float, chars: int) -> str:
    """Positive and negative exemplar blocks for the prompt ('' when there are none)."""
    pos = [c for c in cases if c.reward >= threshold]
    neg = [c for c in cases if c.reward < threshold]

    def block(c: Case) -> str:
        p = c.payload
        plan = "; ".join(str(s) for s in p.get("plan", []))
        summ = str(p.get("trajectory_summary", ""))[:chars]
        return (
            f"[case {c.case_id}] Task: {p.get('task')}\n  Plan: {plan}\n  Answer: "
            f"{p.get('answer')} (reward {c.reward:.2f})\n  Trajectory: {summ}"
        )

    parts = []
    if pos:
        parts.append("Past successful cases (imitate):\n" + "\n".join(block(c) for c in pos))
    if neg:
        parts.append(
            "Past failed cases (avoid their mistakes):\n" + "\n".join(block(c) for c in neg)
        )
    return "\n\n".join(parts)


class Planner:
    """Case-based planner over the shared memory."""

    def __init__(
        self, llm: ChatClient, memory: AgentMemory, cfg: PlannerConfig = PlannerConfig()
    ) -> None:
        self.llm = llm
        self.memory = memory
        self.cfg = cfg

    def retrieve(self, task: str) -> Retrieval:
        """Embed the task, retrieve Top-K cases, let the policy choose some."""
        state = self.memory.embed(task)
        cands = self.memory.retrieve(state)
        choice = self.memory.choose(state, cands)
        cases = (
            tuple(self.memory.case(int(i)) for i in choice.case_ids) if choice is not None else ()
        )
        return Retrieval(state, cands, choice, cases)

    def messages(
        self, task: str, retrieval: Retrieval, results: Sequence[str], attachments: str = ""
    ) -> list[Message]:
        """The planning prompt (exemplars, task, attachments, results so far)."""
        ex = format_exemplars(
            retrieval.cases, self.memory.cfg.success_threshold, self.cfg.exemplar_chars
        )
        user = (ex + "\n\n" if ex else "") + f"Task: {task}"
        if attachments:
            user += f"\n\n{attachments}"
        if results:
            shown = "\n".join(f"- {r[: self.cfg.result_chars]}" for r in results)
            user += (
                f"\n\nResults so far:\n{shown}\n\nGive the final answer if the results "
                "suffice, else the remaining steps."
            )
        return [{"role": "system", "content": PLANNER_SYSTEM}, {"role": "user", "content": user}]

    def plan(
        self,
        task: str,
        retrieval: Retrieval,
        results: Sequence[str] = (),
        attachments: str = "",
    ) -> PlanRequest:
        """A validated plan (repaired, retried, or the one-step fallback: never raises on
        malformed output)."""
        return request_plan(
            self.llm,
            self.messages(task, retrieval, results, attachments),
            fallback_goal=f"Find the answer to: {task}",
            max_retries=self.cfg.max_retries,
            max_tokens=self.cfg.max_tokens,
        )
