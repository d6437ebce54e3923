"""The benchmark runner: per-iteration EM/F1 per mode, case reuse across iterations, resume."""

from __future__ import annotations

import json
from pathlib import Path

from agent.scripted_llm import HeuristicLLMServer
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from bench.research.bench import BenchConfig, bench_tools_args, run_bench
from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig, parse_text_tool_call
from recsys.memory.text_encoder import HashingTextEncoder

HOTPOT = [
    {
        "id": "q1",
        "question": "Which river flows north through northeastern Africa?",
        "answer": "Nile",
        "type": "bridge",
        "level": "easy",
        "supporting_facts": {"title": ["Nile"], "sent_id": [0]},
        "context": {
            "title": ["Nile", "Paris"],
            "sentences": [
                ["The Nile is a major north-flowing river in northeastern Africa."],
                ["Paris is the capital of France."],
            ],
        },
    },
    {
        "id": "q2",
        "question": "Which city is the capital of France?",
        "answer": "Paris",
        "type": "bridge",
        "level": "easy",
        "supporting_facts": {"title": ["Paris"], "sent_id": [0]},
        "context": {
            "title": ["Paris", "Lyon"],
            "sentences": [["Paris is the capital of France."], ["Lyon is a city in France."]],
        },
    },
]


def _run(tmp: Path, srv: HeuristicLLMServer) -> dict:
    src = tmp / "hotpot.json"
    src.write_text(json.dumps(HOTPOT))
    cfg = BenchConfig(
        "hotpotqa-closed", src, tmp / "out", modes=("non-parametric", "no-memory"), iterations=2
    )
    llm = OpenAIChatClient(OpenAIChatConfig(srv.base_url, "scripted", max_retries=0))
    corpus = bench_tools_args(cfg)["corpus"]
    with ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools:
        return run_bench(cfg, llm, llm, tools, HashingTextEncoder(64))


def test_bench_curve_case_reuse_and_resume(tmp_path: Path) -> None:
    """Iteration 2 reuses iteration 1's successful cases only when memory is on; a rerun
    skips every logged task and reproduces the same figures."""
    with HeuristicLLMServer() as srv:
        res = _run(tmp_path, srv)
        n_requests = len(srv.requests)
        again = _run(tmp_path, srv)
        assert len(srv.requests) == n_requests, "a resumed run called the LLM again"
    assert res["modes"] == again["modes"]
    mem = res["modes"]["non-parametric"]["iterations"]
    nomem = res["modes"]["no-memory"]["iterations"]
    assert [r["iteration"] for r in mem] == [1, 2] and mem[0]["n"] == 2
    assert mem[0]["em"] == nomem[0]["em"] == 1.0  # top hit titles are the answers here
    assert mem[1]["mean_tool_calls"] == 0.0, "successful cases were not reused"
    assert nomem[1]["mean_tool_calls"] == 1.0 and nomem[1]["mean_chosen_cases"] == 0.0
    logs = (tmp_path / "out" / "non-parametric" / "iter2.jsonl").read_text().splitlines()
    assert len(logs) == 2 and json.loads(logs[0])["chosen_ids"]


def test_text_tool_call_parsing_for_local_models() -> None:
    """JSON tool calls in text are parsed; list or string arguments go to the main parameter."""
    params = {"search": ["query", "k"]}
    call = parse_text_tool_call(
        'ANSWER: {"tool": "search", "arguments": {"query": "Nile"}}', params
    )
    assert call is not None and call.arguments == {"query": "Nile"}
    call = parse_text_tool_call('{"tool": "search", "arguments": ["k", "Ed Wood"]}', params)
    assert call is not None and call.arguments == {"query": "Ed Wood"}
    assert parse_text_tool_call('{"tool": "crawl", "arguments": {}}', params) is None
    assert parse_text_tool_call("Paris", params) is None


def test_resume_refuses_a_folder_written_by_other_models_or_settings(tmp_path: Path) -> None:
    """A rerun into the same folder with another planner model (or other settings) raises
    RunMismatchError naming what differs and runs nothing; the same run resumes."""
    import dataclasses

    import pytest

    from agent.errors import RunMismatchError

    src = tmp_path / "hotpot.json"
    src.write_text(json.dumps(HOTPOT))
    cfg = BenchConfig("hotpotqa-closed", src, tmp_path / "out", modes=("no-memory",), iterations=1)
    with HeuristicLLMServer() as srv:
        llm = OpenAIChatClient(OpenAIChatConfig(srv.base_url, "scripted", max_retries=0))
        other = OpenAIChatClient(OpenAIChatConfig(srv.base_url, "other-model", max_retries=0))
        corpus = bench_tools_args(cfg)["corpus"]
        with ToolClient.in_process(ToolServerConfig(corpus=corpus)) as tools:
            first = run_bench(cfg, llm, llm, tools, HashingTextEncoder(64))
            with pytest.raises(
                RunMismatchError, match="planner_model: 'scripted' -> 'other-model'"
            ):
                run_bench(cfg, other, llm, tools, HashingTextEncoder(64))
            with pytest.raises(RunMismatchError, match="limit"):
                run_bench(
                    dataclasses.replace(cfg, limit=1), llm, llm, tools, HashingTextEncoder(64)
                )
            again = run_bench(cfg, llm, llm, tools, HashingTextEncoder(64))
    assert again["modes"] == first["modes"]
