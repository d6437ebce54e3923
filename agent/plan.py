"""The planner's JSON plan: schema, a forgiving parser, and retry-then-fallback.

Schema: `{"steps": [{"id": str, "goal": str, "tool_hint"?: str}], "final_answer"?: str}`.
A plan with a `final_answer` ends the task; a plan with neither steps nor answer means
"nothing more to do" (the runner then uses the executors' last answer).

Parsing: find a JSON object in fenced or unfenced text, repair common faults (trailing commas,
single quotes, Python literals, missing closing brackets), validate. `request_plan` re-asks the
LLM with the error message up to N times and finally falls back to a one-step plan: it never
raises on malformed model output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError
from agent.llm_client import ChatClient, Message

__all__ = [
    "Plan",
    "PlanParseError",
    "PlanRequest",
    "PlanStep",
    "extract_json",
    "iter_json_objects",
    "parse_plan",
    "repair_json",
    "request_plan",
]

PLAN_SCHEMA_TEXT = (
    'Reply with JSON only: {"steps": [{"id": "1", "goal": "...", "tool_hint": "search"}]} '
    'or, when you know the answer, {"steps": [], "final_answer": "..."}.'
)
"""The schema as the planner prompt states it."""


class PlanParseError(AgentError):
    """Text could not be turned into a valid plan."""


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
        return out


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)


def _balanced(text: str, start: int) -> str:
    """The object starting at text[start] == '{' up to its matching brace (or the end)."""
    depth, in_str, quote, esc = 0, False, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                in_str = False
        elif ch in "\"'":
            in_str, quote = True, ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def repair_json(text: str) -> str:
    """Best-effort fixes: single quotes, Python literals, trailing commas, unclosed brackets."""
    s = text.strip()
    if "'" in s and '"' not in s:
        s = s.replace("'", '"')
    s = re.sub(r"\bNone\b", "null", s)
    s = re.sub(r"\bTrue\b", "true", s)
    s = re.sub(r"\bFalse\b", "false", s)
    s = re.sub(r",\s*([}\]])", r"\1", s)
    stack: list[str] = []
    in_str, esc = False, False
    for ch in s:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    if in_str:
        s += '"'
    s = re.sub(r',?\s*"[^"]*"\s*:\s*$', "", s)  # a key cut off before its value
    s = re.sub(r",\s*$", "", s)
    return s + "".join(reversed(stack))


def _loads(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        return json.loads(repair_json(candidate))


def iter_json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object found in `text` (fenced blocks first, then bare braces), repaired."""
    chunks = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    seen: set[str] = set()
    for chunk in chunks:
        for m in re.finditer(r"\{", chunk):
            cand = _balanced(chunk, m.start())
            if cand in seen:
                continue
            seen.add(cand)
            try:
                obj = _loads(cand)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


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
    return Plan(tuple(steps), None if answer is None else str(answer).strip())


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
