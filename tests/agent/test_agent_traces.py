"""Traces keep every tool result whole, while the model reads at most `tool_result_chars`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.executor import Executor, ExecutorConfig
from agent.plan import PlanStep
from recsys.llm.chat import ChatReply, ToolCall

LONG = "x" * 2000 + " the answer is 7"


@dataclass
class _Result:
    text: str
    is_error: bool = False


class _Tools:
    def openai_tools(self) -> list[dict[str, Any]]:
        return []

    def call_tool(self, name: str, args: Any = None, timeout_s: float | None = None) -> _Result:
        return _Result(LONG)


class _LLM:
    model_id = "fake"

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def chat(self, messages: Any, tools: Any = None, max_tokens: int = 0) -> ChatReply:
        self.seen.append([dict(m) for m in messages])
        if len(self.seen) == 1:
            return ChatReply("", (ToolCall("c1", "search", {"query": "q"}),))
        return ChatReply("ANSWER: 7")


def test_the_trace_keeps_the_whole_tool_result_and_the_model_a_bounded_one() -> None:
    """A 2,016-character result is logged whole (with its length); the model's tool message
    is cut at tool_result_chars."""
    llm = _LLM()
    ex = Executor(llm, _Tools(), ExecutorConfig(tool_result_chars=100))  # type: ignore[arg-type]
    res = ex.run_step("task", PlanStep("s1", "find it"))
    tool = next(e for e in res.trajectory if e["event"] == "tool")
    assert tool["result"] == LONG and tool["chars"] == len(LONG)
    sent = next(m for m in llm.seen[1] if m.get("role") == "tool")["content"]
    assert sent == LONG[:100]
    assert res.answer == "7"
