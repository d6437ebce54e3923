"""Issue 16 fixes: bounded `math`, sandbox kills the whole tree, executor needs an answer line."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psutil
import pytest

from agent.errors import MathEvalError
from agent.executor import Executor, ExecutorConfig, extract_answer, has_answer
from agent.plan import PlanStep
from agent.scripted_server import Script, ScriptedLLMServer, ScriptedReply
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from agent.tools.math_eval import MathWorker, evaluate
from agent.tools.sandbox import SandboxConfig, detect_backend, run_python
from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig

HUGE = ["comb(10**6, 5*10**5)", "perm(1500000)", "factorial(10**7)", "12345 ** 99999"]


@pytest.fixture(scope="module")
def tools() -> Iterator[ToolClient]:
    with ToolClient.in_process(ToolServerConfig()) as client:
        yield client


@pytest.mark.parametrize("expr", HUGE)
def test_huge_results_are_refused_before_computing(expr: str) -> None:
    """Results estimated above the digit limit are refused at once with a clear message."""
    t0 = time.monotonic()
    with pytest.raises(MathEvalError, match="digits"):
        evaluate(expr)
    assert time.monotonic() - t0 < 0.5


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("comb(10, 3)", 120),
        ("perm(5)", 120),
        ("perm(5, 2)", 20),
        ("factorial(20)", 2432902008176640000),
        ("2 ** 100", 1 << 100),
        ("comb(3, 5)", 0),
        ("round(2.567, 2)", 2.57),
    ],
)
def test_normal_math_still_works(expr: str, expected: float) -> None:
    """Small combinatorics and powers give the hand-computed value."""
    assert evaluate(expr) == expected


@pytest.mark.parametrize("expr", ["comb(10**6, 5*10**5)", "perm(1500000)"])
def test_server_math_refuses_huge_calls_fast(tools: ToolClient, expr: str) -> None:
    """Through the MCP server the issue's two calls come back as a tool error in < 2 s."""
    t0 = time.monotonic()
    res = tools.call_tool("math", {"expression": expr}, timeout_s=10)
    assert time.monotonic() - t0 < 2.0
    assert res.is_error and "digits" in res.text
    ok = tools.call_tool("math", {"expression": "comb(10, 3) + 2 ** 10"}, timeout_s=10)
    assert not ok.is_error and "1144" in ok.text


def test_worker_kills_a_runaway_evaluation() -> None:
    """With the digit limit lifted, a slow call is killed at the deadline; the next call works."""
    with MathWorker(timeout_s=1.0, max_digits=10**9) as worker:
        assert worker.evaluate("1 + 1") == 2
        t0 = time.monotonic()
        with pytest.raises(MathEvalError, match="longer than"):
            worker.evaluate("perm(1500000)")
        assert time.monotonic() - t0 < 3.0
        assert worker.evaluate("6 * 7") == 42


def _sleepers() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if cmd[-2:] == ["sleep", "67"] and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


@pytest.mark.skipif(detect_backend() is None, reason="no sandbox backend here")
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
@pytest.mark.parametrize("new_session", [False, True], ids=["same-group", "setsid"])
def test_timeout_kills_spawned_children(backend: str, new_session: bool) -> None:
    """A run leaving a sleeping child (even in its own session) ends at the limit; child gone."""
    cfg = SandboxConfig(timeout_s=2, backend=backend)  # type: ignore[arg-type]
    if run_python("pass", cfg).returncode != 0:
        pytest.skip(f"{backend} backend does not work here")
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '67'], start_new_session={new_session})\n"
        "print('spawned', flush=True)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    r = run_python(code, cfg)
    assert r.timed_out and time.monotonic() - t0 < 8, r
    deadline = time.monotonic() + 3
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sleepers() == []


def test_answer_line_detection() -> None:
    """Only an explicit 'ANSWER:' / 'FINAL ANSWER:' line counts as an answer."""
    assert not has_answer("To find the answer to this question, I will use the tools.")
    assert extract_answer("Looked it up.\nFINAL ANSWER: Paris.") == "Paris"
    assert extract_answer("**ANSWER:** Nile") == "Nile"
    assert extract_answer("no marker here") == ""


def _run_step(script: Script, max_turns: int = 3) -> tuple[object, int]:
    with (
        ScriptedLLMServer(script) as srv,
        ToolClient.in_process(ToolServerConfig()) as client,
    ):
        llm = OpenAIChatClient(OpenAIChatConfig(base_url=srv.base_url, model="s", max_retries=0))
        res = Executor(llm, client, ExecutorConfig(max_turns=max_turns)).run_step(
            "Which river?", PlanStep("1", "find the river")
        )
        return res, len(srv.requests)


def test_chatter_does_not_end_the_step() -> None:
    """Chatter without an answer line is not scored; the step goes on to the real answer."""
    chatter = ScriptedReply(content="To find the answer I will use the tools.")
    script = Script(replies=(chatter, ScriptedReply(content="ANSWER: Nile")))
    res, n = _run_step(script)
    assert (res.stop, res.answer, res.turns, n) == ("answered", "Nile", 2, 2)  # type: ignore[attr-defined]


def test_step_limit_without_answer_returns_no_answer() -> None:
    """Only chatter until the step limit: an explicit no-answer result, not the last chatter."""
    script = Script(default=ScriptedReply(content="Let me think about the answer some more."))
    res, n = _run_step(script)
    assert (res.stop, res.result, res.answer, res.answered, n) == ("max_turns", "", "", False, 3)  # type: ignore[attr-defined]
    assert res.trajectory[-1]["event"] == "no_answer"  # type: ignore[attr-defined]
