"""A rule-based "LLM" for the ledger family (`bench.research.ledger_family`): a careful but
blind agent.

It never sees a gold answer or the live ledger's name; what it knows comes from the prompt:
- planner: among the exemplar cases, the first *successful* one about the *same registry* whose
  trajectory read a ledger is imitated (plan: read that ledger; `"follows": [its case id]`).
  Otherwise it plans to search the registry's ledgers, skipping those that failed cases of the
  same registry read (negative exemplars). After results it stops (the executor's answer is
  final);
- executor: reads the named ledger, or searches, picks one of the registry's unskipped ledgers
  at random (seeded), reads it, and answers the code of the task's depot.
Cases of other registries are ignored, as a careful reader would: similar wording, useless plan.
"""

from __future__ import annotations

import json
import random
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
from bench.research.ledger_family import registry_of

__all__ = ["LedgerLLMServer"]

_CASE = re.compile(
    r"\[case (\d+)\] Task: (.*)\n  Plan: .*\n  Answer: .* \(reward ([0-9.]+)\)\n  Trajectory: (.*)"
)
_READ = re.compile(r'read_document\{"doc_id": "([^"]+)"')
_READ_GOAL = re.compile(r"read the ledger (\S+)")
_SKIP = re.compile(r"skip: (.*)$")
_DEPOT = re.compile(r"depot (.+?) in the ")
_HIT = re.compile(r'"doc_id": "([^"]+)",\s*"title": "[^"]*",\s*"snippet": "([^"]*)"')


class LedgerLLMServer(ScriptedLLMServer):
    """OpenAI-compatible loopback server playing planner and executor for the ledger family."""

    def __init__(self, seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Script(), host, port)
        self._rng = random.Random(seed)

    def choose_reply(self, messages: Sequence[Mapping[str, Any]]) -> ScriptedReply:
        system = " ".join(message_text(m) for m in messages if m.get("role") == "system")
        task = user_field(messages, "Task")
        last = messages[-1] if messages else {}
        if "planner" in system:
            return self._plan(task, message_text(last))
        goal = user_field(messages, "Step goal")
        if last.get("role") == "tool":
            return self._after_tool(task, goal, message_text(last))
        read = _READ_GOAL.search(goal)
        if read:
            return ScriptedReply(
                tool_calls=(ScriptedToolCall("read_document", {"doc_id": read[1]}),)
            )
        registry = registry_of(task) or task
        query = {"query": f"{registry} registry", "k": 8}
        return ScriptedReply(tool_calls=(ScriptedToolCall("search", query),))

    @staticmethod
    def _plan(task: str, prompt: str) -> ScriptedReply:
        if "Results so far" in prompt:
            return ScriptedReply(content='{"steps": []}')
        registry = registry_of(task)
        positive, _, negative = prompt.partition("Past failed cases")
        for m in _CASE.finditer(positive):
            read = _READ.search(m[4])
            if read and float(m[3]) >= 0.5 and registry_of(m[2]) == registry:
                step = {
                    "id": "1",
                    "goal": f"read the ledger {read[1]}",
                    "tool_hint": "read_document",
                }
                return ScriptedReply(content=json.dumps({"steps": [step], "follows": [int(m[1])]}))
        skip = sorted(
            {
                r[1]
                for m in _CASE.finditer(negative)
                if registry_of(m[2]) == registry
                for r in _READ.finditer(m[4])
            }
        )
        goal = f"search the {registry} registry ledgers" + (
            f"; skip: {', '.join(skip)}" if skip else ""
        )
        step = {"id": "1", "goal": goal, "tool_hint": "search"}
        return ScriptedReply(content=json.dumps({"steps": [step], "follows": []}))

    def _after_tool(self, task: str, goal: str, tool_text: str) -> ScriptedReply:
        # The model sees tool results cut to a few thousand characters: read them as text.
        if '"hits"' in tool_text:
            skip_m = _SKIP.search(goal)
            skip = set(skip_m[1].split(", ")) if skip_m else set()
            registry = registry_of(task) or ""
            found = _HIT.findall(tool_text)
            hits = [d for d, snippet in found if registry in snippet] or [d for d, _ in found]
            pool = [d for d in hits if d not in skip] or hits
            if not pool:
                return ScriptedReply(content="ANSWER: unknown")
            with self._lock:
                pick = self._rng.choice(pool)
            return ScriptedReply(tool_calls=(ScriptedToolCall("read_document", {"doc_id": pick}),))
        depot = _DEPOT.search(task)
        code = re.search(rf"depot {re.escape(depot[1])}: code (\d+)", tool_text) if depot else None
        return ScriptedReply(content=f"ANSWER: {code[1] if code else 'unknown'}")
