"""The executor: for one plan step, a tool-calling loop with a turn cap, a token budget and
per-call tool timeouts.

Every model reply is a turn: tool calls are run and their results appended; only a reply with
an explicit answer line (`ANSWER: ...` or `FINAL ANSWER: ...`) ends the step. Any other text
("I will use the tools...") or a silent reply also costs a turn and is followed by a nudge, so a
model that never answers stops at `max_turns` with an empty result and answer (no answer), never
with its last chatter. Every event is appended to the trajectory as a JSON-able dict.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agent.errors import ToolCallError
from agent.plan import PlanStep
from recsys.llm.chat import ChatClient, Message

__all__ = [
    "EXECUTOR_SYSTEM",
    "Executor",
    "ExecutorConfig",
    "StepResult",
    "ToolRunner",
    "extract_answer",
    "has_answer",
    "summarize",
]

EXECUTOR_SYSTEM = (
    "You are the executor of a research agent. Carry out the given step using the tools. "
    "When you have the result, reply with a line starting with 'ANSWER:' followed by a "
    "short answer; only such a line ends the step."
)
"""System prompt of the executor."""

StopReason = Literal["answered", "max_turns", "token_budget"]


class ToolRunner(Protocol):
    """What the executor needs from a tool client (`agent.tools.client.ToolClient`)."""

    def openai_tools(self) -> list[dict[str, Any]]: ...

    def call_tool(
        self, name: str, args: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class ExecutorConfig:
    """Executor limits."""

    max_turns: int = 4
    """Model replies per step (tool calls and silent replies count)."""
    token_budget: int = 8000
    """Prompt + completion tokens per step; the step stops once exceeded."""
    tool_timeout_s: float = 30.0
    """Per tool call."""
    max_tokens: int = 256
    """Completion budget of one executor call."""
    tool_result_chars: int = 1500
    """Tool results are cut to this many characters before the model sees them."""
    allowed_tools: tuple[str, ...] | None = None
    """Offer only these tools to the model (None = every tool the server lists)."""


@dataclass(frozen=True)
class StepResult:
    """Outcome of one plan step."""

    step_id: str
    goal: str
    result: str
    """The executor's final text, the reply with the answer line ('' when it never answered)."""
    answer: str
    """The short answer: text after 'ANSWER:' in `result` ('' when it never answered)."""
    turns: int
    tool_calls: int
    tokens: int
    stop: StopReason
    trajectory: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        """Whether the step ended on an explicit answer line."""
        return self.stop == "answered"


# An answer line: optional markdown emphasis/heading, then 'ANSWER:' or 'FINAL ANSWER:'.
_ANSWER = re.compile(
    r"^[\s>#*_]*(?:final[\s_]+)?answer[*_]*\s*[:：][*_]*[ \t]*(\S.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_NUDGE = (
    "Continue the step: reply with a tool call, or with a line 'ANSWER: <short answer>' once "
    "you have the result."
)


def has_answer(text: str) -> bool:
    """Whether `text` has an explicit answer line ('ANSWER: ...' / 'FINAL ANSWER: ...')."""
    return _ANSWER.search(text) is not None


def extract_answer(text: str) -> str:
    """The text of the first 'ANSWER:' line (trailing period and emphasis removed), else ''."""
    m = _ANSWER.search(text)
    return m.group(1).strip().strip("*_").strip().rstrip(".").strip() if m else ""


class Executor:
    """Runs plan steps with tools."""

    def __init__(
        self, llm: ChatClient, tools: ToolRunner, cfg: ExecutorConfig = ExecutorConfig()
    ) -> None:
        self.llm = llm
        self.tools = tools
        self.cfg = cfg
        self._specs: list[dict[str, Any]] | None = None

    def specs(self) -> list[dict[str, Any]]:
        """Tool specs in OpenAI format (listed once)."""
        if self._specs is None:
            allowed = self.cfg.allowed_tools
            self._specs = [
                t
                for t in self.tools.openai_tools()
                if allowed is None or t["function"]["name"] in allowed
            ]
        return self._specs

    def _call(self, name: str, args: Mapping[str, Any]) -> tuple[str, bool, float]:
        t0 = time.perf_counter()
        try:
            res = self.tools.call_tool(name, dict(args), timeout_s=self.cfg.tool_timeout_s)
            text, err = str(res.text), bool(res.is_error)
        except ToolCallError as exc:  # timeouts included: the model sees the error
            text, err = f"error: {exc}", True
        return text, err, time.perf_counter() - t0

    def run_step(
        self, task: str, step: PlanStep, context: Sequence[str] = (), attachments: str = ""
    ) -> StepResult:
        """Execute one step; never loops past `max_turns` model replies."""
        ctx = "\n".join(f"- {c}" for c in context)
        hint = f" (suggested tool: {step.tool_hint})" if step.tool_hint else ""
        user = f"Task: {task}\nStep goal: {step.goal}{hint}"
        if attachments:
            user += f"\n{attachments}"
        if ctx:
            user += f"\nEarlier results:\n{ctx}"
        messages: list[Message] = [
            {"role": "system", "content": EXECUTOR_SYSTEM},
            {"role": "user", "content": user},
        ]
        traj: list[dict[str, Any]] = []
        tokens = turns = n_calls = 0
        stop: StopReason = "max_turns"
        result = ""
        while turns < self.cfg.max_turns:
            if tokens >= self.cfg.token_budget:
                stop = "token_budget"
                break
            reply = self.llm.chat(messages, tools=self.specs(), max_tokens=self.cfg.max_tokens)
            turns += 1
            tokens += reply.prompt_tokens + reply.completion_tokens
            traj.append(
                {
                    "event": "llm",
                    "turn": turns,
                    "content": reply.content,
                    "tool_calls": [
                        {"name": c.name, "arguments": c.arguments} for c in reply.tool_calls
                    ],
                    "tokens": reply.prompt_tokens + reply.completion_tokens,
                }
            )
            if reply.tool_calls:
                messages.append(reply.as_message())
                for call in reply.tool_calls:
                    text, err, dt = self._call(call.name, call.arguments)
                    n_calls += 1
                    traj.append(
                        {
                            "event": "tool",
                            "name": call.name,
                            "arguments": call.arguments,
                            "is_error": err,
                            "duration_s": round(dt, 4),
                            "result": text,  # the whole result: traces are for audits
                            "chars": len(text),
                        }
                    )
                    shown = text[: self.cfg.tool_result_chars]  # what the model reads
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": shown})
                continue
            if has_answer(reply.content):
                result, stop = reply.content.strip(), "answered"
                break
            messages += [
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": _NUDGE},
            ]
        else:
            stop = "max_turns"
        if stop != "answered":
            traj.append({"event": "no_answer", "turns": turns})
        if stop != "answered" and tokens >= self.cfg.token_budget:
            stop = "token_budget"
        return StepResult(
            step.id, step.goal, result, extract_answer(result), turns, n_calls, tokens, stop, traj
        )


def summarize(results: Sequence[StepResult], chars: int = 600) -> str:
    """A short trajectory summary for the case payload."""
    parts = []
    for r in results:
        tools = [
            e["name"] + json.dumps(e["arguments"])[:80]
            for e in r.trajectory
            if e["event"] == "tool"
        ]
        parts.append(f"{r.goal} -> tools {tools} -> {r.answer or '(no answer)'} [{r.stop}]")
    return " | ".join(parts)[:chars]
