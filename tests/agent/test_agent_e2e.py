"""End-to-end research agent against the scripted OpenAI-compatible server and MCP tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.executor import Executor, ExecutorConfig
from agent.memory import AgentMemory, MemoryConfig
from agent.planner import Planner
from agent.runner import AgentRunner, RunnerConfig
from agent.scripted_server import (
    Rule,
    Script,
    ScriptedLLMServer,
    ScriptedReply,
    ScriptedToolCall,
)
from agent.tasks import Task
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from agent.tools.search import Document, write_corpus_jsonl
from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig
from recsys.memory.text_encoder import HashingTextEncoder

DOCS = [
    Document("paris", "Paris", "Paris is the capital and most populous city of France."),
    Document("nile", "Nile", "The Nile is a major north-flowing river in northeastern Africa."),
    Document("ed-wood", "Ed Wood", "Edward Davis Wood Jr. was an American filmmaker."),
]

SCRIPT = Script(
    rules=(
        # re-planning after the executor reported: nothing more to do
        Rule("Results so far", ScriptedReply(content='{"steps": []}')),
        Rule(
            "You are the planner",
            ScriptedReply(
                content='```json\n{"steps": [{"id": "1", "goal": "search the corpus", '
                '"tool_hint": "search"}]}\n```'
            ),
            where="system",
        ),
        # the executor has seen the search hit: answer
        Rule("most populous", ScriptedReply(content="ANSWER: Paris")),
        Rule(
            "You are the executor",
            ScriptedReply(tool_calls=(ScriptedToolCall("search", {"query": "capital France"}),)),
            where="system",
        ),
    )
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent-corpus") / "docs.jsonl"
    write_corpus_jsonl(DOCS, path)
    return path


def _runner(base_url: str, tools: ToolClient, mode: str = "soft-q") -> AgentRunner:
    llm = OpenAIChatClient(OpenAIChatConfig(base_url=base_url, model="scripted", max_retries=0))
    memory = AgentMemory(HashingTextEncoder(dim=64), MemoryConfig(mode=mode))  # type: ignore[arg-type]
    return AgentRunner(
        Planner(llm, memory),
        Executor(llm, tools, ExecutorConfig(max_turns=4)),
        memory,
        RunnerConfig(max_cycles=2),
    )


def test_e2e_stdio_case_written_then_retrieved_by_similar_task(corpus: Path) -> None:
    """Planner -> executor -> stdio search -> answer -> case; a similar task then retrieves it
    and the planner prompt the server received shows it as an exemplar."""
    with ScriptedLLMServer(SCRIPT) as srv, ToolClient.stdio(corpus=corpus) as tools:
        runner = _runner(srv.base_url, tools)
        first = runner.run_task(Task("t1", "What is the capital of France?", "Paris"))
        assert first.answer == "Paris" and first.em == 1.0
        assert first.retrieved_ids == [] and first.case_id is not None
        tool_events = [e for s in first.steps for e in s["trajectory"] if e["event"] == "tool"]
        assert tool_events and tool_events[0]["name"] == "search"
        assert "paris" in tool_events[0]["result"]
        n_before = len(srv.requests)
        second = runner.run_task(Task("t2", "What is the capital city of France?", "Paris"))
        assert first.case_id in second.retrieved_ids
        assert first.case_id in second.chosen_ids
        planner_prompts = [
            m["content"]
            for r in srv.requests[n_before:]
            for m in r["messages"]
            if m["role"] == "user" and "Past successful cases" in m["content"]
        ]
        assert planner_prompts, "the planner prompt carried no exemplar"
        assert f"[case {first.case_id}] Task: What is the capital of France?" in planner_prompts[0]
        assert second.case_id != first.case_id and len(runner.memory.bank) == 2


def test_judged_reward_reaches_learner_and_raises_q(corpus: Path) -> None:
    """The learner receives the task's transition with the judged reward; +1 raises that
    case's Q."""
    with (
        ScriptedLLMServer(SCRIPT) as srv,
        ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools,
    ):
        runner = _runner(srv.base_url, tools)
        first = runner.run_task(Task("t1", "What is the capital of France?", "Paris"))
        assert first.case_id is not None
        mem = runner.memory
        state = mem.embed("Which city is the capital of France?")
        cands = mem.retrieve(state)
        q_before = np.minimum(*mem.learner.q_values(state, cands))[0]
        rec = runner.run_task(Task("t2", "Which city is the capital of France?", "Paris"))
        assert rec.reward == 1.0 and len(mem.learner.replay) == 1
        q_after = np.minimum(*mem.learner.q_values(state, cands))[0]
        assert q_after > q_before + 0.05, f"{q_before=} {q_after=}"
        assert mem.case(first.case_id).visits == 1


def test_no_memory_mode_retrieves_nothing(corpus: Path) -> None:
    """In no-memory mode a similar second task sees no case and the prompt has no exemplar."""
    with (
        ScriptedLLMServer(SCRIPT) as srv,
        ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools,
    ):
        runner = _runner(srv.base_url, tools, mode="no-memory")
        runner.run_task(Task("t1", "What is the capital of France?", "Paris"))
        second = runner.run_task(Task("t2", "What is the capital city of France?", "Paris"))
        assert second.retrieved_ids == [] and second.chosen_ids == []
        assert not any("Past successful" in str(r["messages"]) for r in srv.requests)


@pytest.mark.parametrize(
    "default",
    [
        ScriptedReply(tool_calls=(ScriptedToolCall("search", {"query": "Nile"}),)),
        ScriptedReply(content=""),
    ],
    ids=["always-tool-call", "silent"],
)
def test_step_cap_stops_executor_that_never_answers(corpus: Path, default: ScriptedReply) -> None:
    """An executor model that only calls tools, or says nothing, stops after max_turns replies."""
    with (
        ScriptedLLMServer(Script(default=default)) as srv,
        ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools,
    ):
        llm = OpenAIChatClient(OpenAIChatConfig(base_url=srv.base_url, model="s", max_retries=0))
        from agent.plan import PlanStep

        res = Executor(llm, tools, ExecutorConfig(max_turns=3)).run_step(
            "Which river?", PlanStep("1", "find the river")
        )
        assert res.turns == 3 and res.stop == "max_turns" and res.answer == ""
        assert len(srv.requests) == 3


def test_executor_offers_only_allowed_tools(corpus: Path) -> None:
    """With an allowlist the model is offered exactly those tools."""
    reply = ScriptedReply(content="ANSWER: Nile")
    with (
        ScriptedLLMServer(Script(default=reply)) as srv,
        ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools,
    ):
        llm = OpenAIChatClient(OpenAIChatConfig(base_url=srv.base_url, model="s", max_retries=0))
        from agent.plan import PlanStep

        cfg = ExecutorConfig(allowed_tools=("search", "read_document"))
        res = Executor(llm, tools, cfg).run_step("Which river?", PlanStep("1", "find it"))
        offered = {t["function"]["name"] for t in srv.requests[0]["tools"]}
        assert offered == {"search", "read_document"} and res.answer == "Nile"
