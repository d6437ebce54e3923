"""The planner's JSON plan: schema, a forgiving parser, and retry-then-fallback.

Schema: `{"steps": [{"id": str, "goal": str, "tool_hint"?: str}], "final_answer"?: str,
"follows"?: [int]}` (`follows`: ids of the past cases the plan imitates, for per-case credit).
A plan with a `final_answer` ends the task; a plan with neither steps nor answer means
"nothing more to do" (the runner then uses the executors' last answer).

Parsing: find a JSON object in fenced or unfenced text, repair common faults (trailing commas,
single quotes, Python literals, missing closing brackets), validate. `request_plan` re-asks the
LLM with the error message up to N times and finally falls back to a one-step plan: it never
raises on malformed model output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.errors import PlanParseError
from recsys.llm.chat import ChatClient, Message
from recsys.llm.json_text import iter_json_objects

__all__ = [
    "Plan",
    "PlanRequest",
    "PlanStep",
    "extract_json",
    "parse_plan",
    "request_plan",
]

PLAN_SCHEMA_TEXT = (
    'Reply with JSON only: {"steps": [{"id": "1", "goal": "...", "tool_hint": "search"}]} '
    'or, when you know the answer, {"steps": [], "final_answer": "..."}. If the plan imitates '
    'past cases, add "follows": [their case numbers].'
)
"""The schema as the planner prompt states it."""


@dataclass(frozen=True)
class PlanStep:
    """One step for an executor."""

    id: str
    goal: str
    tool_hint: str | None = None


@dataclass(frozen=True)
class Plan:
    """A validated plan."""

    steps: tuple[PlanStep, ...] = ()
    final_answer: str | None = None
    follows: tuple[int, ...] | None = None
    """Case ids the planner says this plan imitates (None: it did not say; () = none)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form (the schema above)."""
        out: dict[str, Any] = {
            "steps": [
                {"id": s.id, "goal": s.goal} | ({"tool_hint": s.tool_hint} if s.tool_hint else {})
                for s in self.steps
            ]
        }
        if self.final_answer is not None:
            out["final_answer"] = self.final_answer
        if self.follows is not None:
            out["follows"] = list(self.follows)
        return out


def extract_json(text: str) -> dict[str, Any]:
    """The first JSON object in `text` (raises PlanParseError when there is none)."""
    for obj in iter_json_objects(text):
        return obj
    raise PlanParseError("no JSON object found in the reply")


def _validate(obj: dict[str, Any]) -> Plan:
    raw_steps = obj.get("steps", [])
    if isinstance(raw_steps, dict):
        raw_steps = [raw_steps]
    if not isinstance(raw_steps, list):
        raise PlanParseError('"steps" must be a list')
    steps = []
    for i, s in enumerate(raw_steps):
        if isinstance(s, str):
            s = {"goal": s}
        if not isinstance(s, dict) or not str(s.get("goal", "")).strip():
            raise PlanParseError(f'step {i} needs a non-empty "goal"')
        hint = s.get("tool_hint")
        steps.append(PlanStep(str(s.get("id", i + 1)), str(s["goal"]).strip(), hint and str(hint)))
    answer = obj.get("final_answer")
    if answer is not None and not isinstance(answer, str | int | float):
        raise PlanParseError('"final_answer" must be a string')
    if "steps" not in obj and answer is None:
        raise PlanParseError('the object has neither "steps" nor "final_answer"')
    return Plan(
        tuple(steps), None if answer is None else str(answer).strip(), _follows(obj.get("follows"))
    )


def _follows(raw: Any) -> tuple[int, ...] | None:
    """Case ids from `"follows"`: ints or texts such as "case 12" (anything else is ignored:
    the field is a hint for credit, never a reason to reject a plan); None when absent."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    out: list[int] = []
    for it in items:
        found = re.search(r"\d+", str(it))
        if found and not isinstance(it, bool):
            out.append(int(found.group()))
    return tuple(dict.fromkeys(out))


def parse_plan(text: str) -> Plan:
    """Parse and validate a plan from model text (raises PlanParseError)."""
    errors = []
    for obj in iter_json_objects(text):
        try:
            return _validate(obj)
        except PlanParseError as exc:
            errors.append(str(exc))
    raise PlanParseError(errors[0] if errors else "no JSON object found in the reply")


@dataclass(frozen=True)
class PlanRequest:
    """What `request_plan` produced."""

    plan: Plan
    attempts: int
    """LLM calls made."""
    errors: tuple[str, ...] = ()
    """Parse errors of the rejected replies."""
    fallback: bool = False
    """True when every attempt failed and the one-step fallback plan was used."""
    raw: tuple[str, ...] = field(default_factory=tuple)
    """Raw replies, in order."""
    tokens: int = 0
    """Prompt + completion tokens spent."""


def request_plan(
    llm: ChatClient,
    messages: Sequence[Message],
    fallback_goal: str,
    max_retries: int = 2,
    max_tokens: int | None = None,
) -> PlanRequest:
    """Ask for a plan; on a parse error re-ask with the error up to `max_retries` times, then
    fall back to the one-step plan `[fallback_goal]`."""
    convo = list(messages)
    errors: list[str] = []
    raws: list[str] = []
    tokens = 0
    for attempt in range(1, max_retries + 2):
        reply = llm.chat(convo, max_tokens=max_tokens)
        tokens += reply.prompt_tokens + reply.completion_tokens
        raws.append(reply.content)
        try:
            return PlanRequest(
                parse_plan(reply.content), attempt, tuple(errors), False, tuple(raws), tokens
            )
        except PlanParseError as exc:
            errors.append(str(exc))
            convo += [
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": f"Invalid plan: {exc}. {PLAN_SCHEMA_TEXT}"},
            ]
    plan = Plan((PlanStep("1", fallback_goal, "search"),))
    return PlanRequest(plan, max_retries + 1, tuple(errors), True, tuple(raws), tokens)
