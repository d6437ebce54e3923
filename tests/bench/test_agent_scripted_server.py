"""Tests of the scripted OpenAI-compatible server (through the real `openai` client)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from agent.scripted_server import (
    Rule,
    Script,
    ScriptedLLMServer,
    ScriptedReply,
    ScriptedToolCall,
)


def _ask(client: OpenAI, text: str, system: str = "sys") -> object:
    return client.chat.completions.create(
        model="scripted",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": text}],
    )


def test_replays_queue_then_default() -> None:
    """Replies come back in script order, then the default reply."""
    script = Script(
        replies=(ScriptedReply(content="first"), ScriptedReply(content="second")),
        default=ScriptedReply(content="done"),
    )
    with ScriptedLLMServer(script) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        got = [_ask(client, "hi").choices[0].message.content for _ in range(4)]  # type: ignore[attr-defined]
        assert got == ["first", "second", "done", "done"]
        assert len(srv.requests) == 4 and srv.requests[0]["messages"][1]["content"] == "hi"


def test_rules_match_before_queue_and_emit_tool_calls() -> None:
    """A matching rule wins over the queue and its tool calls arrive in OpenAI format."""
    call = ScriptedToolCall("search", {"query": "Ed Wood", "k": 3})
    script = Script(
        rules=(
            Rule("nationality", ScriptedReply(tool_calls=(call,))),
            Rule("PLANNER", ScriptedReply(content="plan"), where="system", max_uses=1),
        ),
        replies=(ScriptedReply(content="queued"),),
    )
    with ScriptedLLMServer(script) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        r = _ask(client, "What nationality was Ed Wood?")
        choice = r.choices[0]  # type: ignore[attr-defined]
        assert choice.finish_reason == "tool_calls"
        (tc,) = choice.message.tool_calls
        assert tc.function.name == "search"
        assert json.loads(tc.function.arguments) == {"query": "Ed Wood", "k": 3}
        assert _ask(client, "x", system="You are the PLANNER").choices[0].message.content == "plan"  # type: ignore[attr-defined]
        assert (
            _ask(client, "x", system="You are the PLANNER").choices[0].message.content == "queued"
        )  # type: ignore[attr-defined]


def test_bad_requests_get_clear_errors() -> None:
    """Streaming, bad JSON and unknown paths are refused with 400/404 and a message."""
    with ScriptedLLMServer(Script()) as srv:
        url = srv.base_url
        r = httpx.post(f"{url}/chat/completions", json={"messages": [], "stream": True})
        assert r.status_code == 400 and "stream" in r.json()["error"]["message"]
        r = httpx.post(f"{url}/chat/completions", content=b"{nope")
        assert r.status_code == 400
        assert httpx.get(f"{url}/nowhere").status_code == 404
        assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "scripted"


def test_runs_as_subprocess_from_json_script(tmp_path: Path) -> None:
    """`python -m agent.scripted_server --script F` serves the JSON script."""
    spec = {
        "rules": [{"contains": "2+2", "reply": {"content": "4"}}],
        "default": {"tool_calls": [{"name": "math", "arguments": {"expression": "1+1"}}]},
    }
    path = tmp_path / "script.json"
    path.write_text(json.dumps(spec))
    cmd = [sys.executable, "-m", "agent.scripted_server", "--script", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        client = OpenAI(base_url=line.split()[1], api_key="x", max_retries=0)
        assert _ask(client, "what is 2+2").choices[0].message.content == "4"  # type: ignore[attr-defined]
        tc = _ask(client, "other").choices[0].message.tool_calls[0]  # type: ignore[attr-defined]
        assert tc.function.name == "math"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("where", ["last", "any"])
def test_rule_scope(where: str) -> None:
    """A `last` rule ignores earlier messages; an `any` rule sees them."""
    script = Script(rules=(Rule("KEY", ScriptedReply(content="hit"), where=where),))  # type: ignore[arg-type]
    srv = ScriptedLLMServer(script)
    msgs = [{"role": "user", "content": "KEY"}, {"role": "user", "content": "later"}]
    expected = "hit" if where == "any" else ""
    assert srv.choose_reply(msgs).content == expected
    srv.stop()
