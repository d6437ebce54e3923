"""A rule-based "LLM" for the scripted benchmark backend: a plumbing demo, not a model.

It subclasses the scripted test server and answers from the conversation itself:
- planner: if a past *successful* case of the very same task is among the exemplars, its answer
  becomes the final answer (case reuse); else a one-step "search" plan; after results, no steps;
- executor: first turn searches the corpus with the task text; after the search result it
  answers "yes" to yes/no questions, else the title of the top hit.
No gold answer is ever seen: rewards reach it only through the case memory (the judged outcome).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agent.scripted_server import Script, ScriptedLLMServer, ScriptedReply, ScriptedToolCall

__all__ = ["HeuristicLLMServer"]

_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had)\b", re.IGNORECASE)
_CASE = re.compile(r"\[case \d+\] Task: (.*)\n  Plan: .*\n  Answer: (.*) \(reward ([0-9.]+)\)")


def _text(m: Mapping[str, Any]) -> str:
    c = m.get("content")
    return c if isinstance(c, str) else ""


def _task(messages: Sequence[Mapping[str, Any]]) -> str:
    for m in messages:
        if m.get("role") == "user":
            found = re.search(r"^Task: (.*)$", _text(m), re.MULTILINE)
            if found:
                return found.group(1).strip()
    return ""


class HeuristicLLMServer(ScriptedLLMServer):
    """OpenAI-compatible loopback server with the rule-based planner/executor above."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Script(), host, port)

    def choose_reply(self, messages: Sequence[Mapping[str, Any]]) -> ScriptedReply:
        system = " ".join(_text(m) for m in messages if m.get("role") == "system")
        task = _task(messages)
        last = messages[-1] if messages else {}
        if "planner" in system:
            return self._plan(task, _text(last))
        if last.get("role") == "tool":
            return self._answer(task, _text(last))
        if last.get("role") == "user" and "Step goal" in _text(last):
            return ScriptedReply(tool_calls=(ScriptedToolCall("search", {"query": task, "k": 3}),))
        return ScriptedReply(content="ANSWER: unknown")

    @staticmethod
    def _plan(task: str, prompt: str) -> ScriptedReply:
        if "Results so far" in prompt:
            return ScriptedReply(content='{"steps": []}')
        section = prompt.split("Past failed cases")[0]
        for m in _CASE.finditer(section):
            if m.group(1).strip() == task and float(m.group(3)) >= 0.5:
                return ScriptedReply(content=json.dumps({"steps": [], "final_answer": m.group(2)}))
        plan = {"steps": [{"id": "1", "goal": "search the corpus", "tool_hint": "search"}]}
        return ScriptedReply(content=json.dumps(plan))

    @staticmethod
    def _answer(task: str, tool_text: str) -> ScriptedReply:
        if _YES_NO.match(task):
            return ScriptedReply(content="ANSWER: yes")
        found = re.search(r'"title":\s*"((?:[^"\\]|\\.)*)"', tool_text)
        title = json.loads(f'"{found.group(1)}"') if found else "unknown"
        return ScriptedReply(content=f"ANSWER: {title}")
