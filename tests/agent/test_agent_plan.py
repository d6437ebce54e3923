"""Plan parsing, repair, retry and fallback (never crashes on malformed model output)."""

from __future__ import annotations

import pytest

from agent.errors import PlanParseError
from agent.plan import Plan, parse_plan, request_plan
from agent.scripted_server import Rule, Script, ScriptedLLMServer, ScriptedReply
from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig
from recsys.llm.json_text import repair_json


@pytest.mark.parametrize(
    "text",
    [
        '{"steps": [{"id": "1", "goal": "search X"}]}',
        'Plan:\n```json\n{"steps": [{"id": "1", "goal": "search X",}],}\n```',
        "{'steps': [{'id': '1', 'goal': 'search X'}]}",
        'Sure. {"steps": [{"id": "1", "goal": "search X"}',
    ],
    ids=["clean", "fenced-trailing-commas", "single-quotes", "unclosed"],
)
def test_parse_plan_repairs_common_faults(text: str) -> None:
    """Fenced/unfenced JSON with trailing commas, single quotes or missing brackets parses."""
    plan = parse_plan(text)
    assert [s.goal for s in plan.steps] == ["search X"] and plan.final_answer is None


def test_parse_plan_final_answer_and_rejects() -> None:
    """A final answer parses; prose, and steps without goals, are rejected."""
    assert parse_plan('{"steps": [], "final_answer": "Paris"}') == Plan((), "Paris")
    with pytest.raises(PlanParseError):
        parse_plan("I would search for it.")
    with pytest.raises(PlanParseError):
        parse_plan('{"steps": [{"id": "1"}]}')
    assert repair_json('{"a": [1, 2,') == '{"a": [1, 2]}'
    assert repair_json('{"t": "s", "arguments": {"query": "q", "k":') == (
        '{"t": "s", "arguments": {"query": "q"}}'
    )


def test_malformed_plan_recovered_by_retry_with_error_message() -> None:
    """Broken output first, then a repairable plan: two attempts, the error was sent back."""
    script = Script(
        rules=(
            Rule("planner", ScriptedReply(content="Let me think {steps: oops"), "system", 1),
            Rule(
                "planner",
                ScriptedReply(content='```\n{"steps": [{"goal": "look up",}]\n```'),
                "system",
            ),
        )
    )
    with ScriptedLLMServer(script) as srv:
        llm = OpenAIChatClient(OpenAIChatConfig(base_url=srv.base_url, model="s", max_retries=0))
        msgs = [
            {"role": "system", "content": "You are the planner"},
            {"role": "user", "content": "Task: x"},
        ]
        req = request_plan(llm, msgs, fallback_goal="answer x", max_retries=2)
        assert req.attempts == 2 and not req.fallback and len(req.errors) == 1
        assert [s.goal for s in req.plan.steps] == ["look up"]
        assert "Invalid plan" in srv.requests[1]["messages"][-1]["content"]


def test_always_broken_plan_falls_back_to_one_step() -> None:
    """A model that never returns JSON yields the one-step fallback after max_retries + 1 calls."""
    with ScriptedLLMServer(Script(default=ScriptedReply(content="no idea"))) as srv:
        llm = OpenAIChatClient(OpenAIChatConfig(base_url=srv.base_url, model="s", max_retries=0))
        req = request_plan(llm, [{"role": "user", "content": "Task: x"}], "answer x", max_retries=1)
        assert req.fallback and req.attempts == 2 and len(srv.requests) == 2
        assert [s.goal for s in req.plan.steps] == ["answer x"]
