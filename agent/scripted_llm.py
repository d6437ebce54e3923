"""A rule-based "LLM" for the scripted benchmark backend: a plumbing demo, not a model.

It subclasses the scripted test server and answers from the conversation itself:
- planner: if a past *successful* case of the very same task is among the exemplars, its answer
  becomes the final answer (case reuse); else a one-step "search" plan; after results, no steps;
- executor: with attachments listed in its prompt, it first reads the first one with
  `read_file` and answers the last number on the line naming the question's quoted term;
  else its first turn searches the corpus with the task text, and after the search result it
  answers "yes" to yes/no questions, else the title of the top hit.
No gold answer is ever seen: rewards reach it only through the case memory (the judged outcome).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agent.scripted_server import (
    Script,
    ScriptedLLMServer,
    ScriptedReply,
    ScriptedToolCall,
    message_text,
    user_field,
)

__all__ = ["HeuristicLLMServer"]

_YES_NO = re.compile(r"^(is|are|was|were|do|does|did|can|could|has|have|had)\b", re.IGNORECASE)
_ATTACHED = re.compile(r"^### (.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\'\"‘“]([^\'\"’”]+)[\'\"’”]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CASE = re.compile(r"\[case \d+\] Task: (.*)\n  Plan: .*\n  Answer: (.*) \(reward ([0-9.]+)\)")


def _called(messages: Sequence[Mapping[str, Any]], tool: str) -> bool:
    """Whether the assistant's latest tool call in the conversation was `tool`."""
    for m in reversed(messages):
        calls = m.get("tool_calls") or []
        if m.get("role") == "assistant" and calls:
            return any(c.get("function", {}).get("name") == tool for c in calls)
    return False


class HeuristicLLMServer(ScriptedLLMServer):
    """OpenAI-compatible loopback server with the rule-based planner/executor above."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Script(), host, port)

    def choose_reply(self, messages: Sequence[Mapping[str, Any]]) -> ScriptedReply:
        system = " ".join(message_text(m) for m in messages if m.get("role") == "system")
        task = user_field(messages, "Task")
        last = messages[-1] if messages else {}
        if "planner" in system:
            return self._plan(task, message_text(last))
        if last.get("role") == "tool":
            if _called(messages, "read_file"):
                return self._from_file(task, message_text(last))
            return self._answer(task, message_text(last))
        if last.get("role") == "user" and "Step goal" in message_text(last):
            attached = _ATTACHED.search(message_text(last))
            if attached:
                call = ScriptedToolCall("read_file", {"path": attached.group(1)})
                return ScriptedReply(tool_calls=(call,))
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
    def _from_file(task: str, tool_text: str) -> ScriptedReply:
        term = _QUOTED.search(task)
        try:
            text = str(json.loads(tool_text).get("text", tool_text))
        except (json.JSONDecodeError, AttributeError):
            text = tool_text
        for line in text.splitlines():
            if term and term.group(1).lower() in line.lower():
                numbers = _NUMBER.findall(line)
                if numbers:
                    return ScriptedReply(content=f"ANSWER: {numbers[-1]}")
        return ScriptedReply(content="ANSWER: unknown")

    @staticmethod
    def _answer(task: str, tool_text: str) -> ScriptedReply:
        if _YES_NO.match(task):
            return ScriptedReply(content="ANSWER: yes")
        found = re.search(r'"title":\s*"((?:[^"\\]|\\.)*)"', tool_text)
        title = json.loads(f'"{found.group(1)}"') if found else "unknown"
        return ScriptedReply(content=f"ANSWER: {title}")
