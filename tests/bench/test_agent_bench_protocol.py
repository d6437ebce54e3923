"""Benchmark runs a user can trust: attachments answered from the file, pass@k, the SimpleQA
judge's labels, concurrency, planner parse errors in traces, the held-out split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest

from agent.scorers import OpenAIJudge
from agent.scripted_llm import HeuristicLLMServer
from agent.scripted_server import Rule, Script, ScriptedLLMServer, ScriptedReply
from agent.tasks import Task
from agent.tools.client import ToolClient
from agent.tools.config import ToolServerConfig
from bench.research.bench import BenchConfig, pass_at_k, run_bench, split_tasks
from recsys.llm.chat import OpenAIChatClient, OpenAIChatConfig
from recsys.memory.text_encoder import HashingTextEncoder


def _gaia(folder: Path, with_file: bool = True) -> Path:
    """A GAIA-format folder whose answer is only in the attached spreadsheet."""
    folder.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["item", "units sold"])
    ws.append(["Gadget", 77])
    ws.append(["Widget", 1234])
    wb.save(folder / "sales.xlsx")
    row = {
        "task_id": "t1",
        "Question": "How many units of 'Widget' were sold according to the attached sheet?",
        "Final answer": "1234",
        "Level": 1,
        "file_name": "sales.xlsx" if with_file else "",
    }
    (folder / "metadata.jsonl").write_text(json.dumps(row) + "\n")
    return folder


def _client(srv: ScriptedLLMServer, name: str = "scripted") -> OpenAIChatClient:
    return OpenAIChatClient(OpenAIChatConfig(srv.base_url, name, max_retries=0))


def _gaia_run(folder: Path, out: Path) -> dict:
    cfg = BenchConfig("gaia", folder, out, modes=("no-memory",), iterations=1, samples=3)
    with (
        HeuristicLLMServer() as srv,
        ToolClient.in_process(ToolServerConfig(files_root=folder)) as tools,
    ):
        return run_bench(cfg, _client(srv), _client(srv), tools, HashingTextEncoder(64))


def test_gaia_task_is_answered_from_its_attachment_with_pass_at_3(tmp_path: Path) -> None:
    """The executor sees the attachment block, reads the xlsx through read_file and answers
    1234 (GAIA scoring); pass@1..3 are reported; without the attachment it cannot."""
    res = _gaia_run(_gaia(tmp_path / "gaia"), tmp_path / "out")
    it = res["modes"]["no-memory"]["iterations"][0]
    assert it["em"] == 1.0 and it["pass@3"] == 1.0 and it["pass@1"] == 1.0
    rec = json.loads((tmp_path / "out" / "no-memory" / "iter1.jsonl").read_text().splitlines()[0])
    assert rec["attachments"] == ["sales.xlsx"] and rec["answer"] == "1234"
    tools = [e["name"] for s in rec["steps"] for e in s["trajectory"] if e["event"] == "tool"]
    assert tools == ["read_file"]
    bare = _gaia_run(_gaia(tmp_path / "bare", with_file=False), tmp_path / "out-bare")
    assert bare["modes"]["no-memory"]["iterations"][0]["em"] == 0.0


def test_simpleqa_is_graded_by_the_llm_judge_and_its_labels_counted(tmp_path: Path) -> None:
    """Three questions, the judge (a scripted endpoint) says A, B, C: the run counts one
    CORRECT, one INCORRECT, one NOT_ATTEMPTED and rewards only the correct one."""
    src = tmp_path / "simpleqa.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["problem", "answer"])
        w.writerows([["Is water wet?", "yes"], ["Is fire cold?", "no"], ["Capital?", "Paris"]])
    judge_script = Script(
        rules=(
            Rule("Question: Is water wet?", ScriptedReply(content="A"), where="any"),
            Rule("Question: Is fire cold?", ScriptedReply(content="B"), where="any"),
        ),
        default=ScriptedReply(content="C"),
    )
    cfg = BenchConfig("simpleqa", src, tmp_path / "out", modes=("no-memory",), iterations=1)
    with (
        HeuristicLLMServer() as srv,
        ScriptedLLMServer(judge_script) as judge_srv,
        ToolClient.in_process(ToolServerConfig()) as tools,
    ):
        judge = OpenAIJudge(_client(judge_srv, "judge"))
        res = run_bench(cfg, _client(srv), _client(srv), tools, HashingTextEncoder(64), None, judge)
        assert any("Is water wet?" in json.dumps(r) for r in judge_srv.requests)
    it = res["modes"]["no-memory"]["iterations"][0]
    assert it["judge_labels"] == {"CORRECT": 1, "INCORRECT": 1, "NOT_ATTEMPTED": 1}
    assert it["reward"] == pytest.approx(1 / 3, abs=1e-3)
    assert res["judge"] == "judge"


def test_concurrent_attempts_log_every_task_once_and_record_planner_errors(tmp_path: Path) -> None:
    """With concurrency 3 every task is logged once; a planner reply that is not JSON appears
    in the trace with its parse error (then the fallback plan runs)."""
    rows = [
        {"task_id": f"t{i}", "Question": f"What is '{name}'?", "Final answer": "x"}
        for i, name in enumerate(["a", "b", "c", "d"])
    ]
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Script(
        rules=(Rule("planner", ScriptedReply(content="no json here"), where="system"),),
        default=ScriptedReply(content="ANSWER: x"),
    )
    cfg = BenchConfig(
        "gaia", folder, tmp_path / "out", modes=("no-memory",), iterations=1, concurrency=3
    )
    with ScriptedLLMServer(script) as srv, ToolClient.in_process(ToolServerConfig()) as tools:
        res = run_bench(cfg, _client(srv), _client(srv), tools, HashingTextEncoder(64))
    it = res["modes"]["no-memory"]["iterations"][0]
    # 4 tasks x 2 planning cycles x 3 tries (the first ask and 2 re-asks) before each fallback
    assert it["n"] == 4 and it["em"] == 1.0 and it["plan_parse_errors"] == 4 * 2 * 3
    lines = (tmp_path / "out" / "no-memory" / "iter1.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert sorted(r["task_id"] for r in recs) == ["t0", "t1", "t2", "t3"]
    call = recs[0]["planner_calls"][0]
    assert call["fallback"] and call["replies"][0] == "no json here" and call["parse_errors"]


def test_pass_at_k_estimator_and_split() -> None:
    """Unbiased pass@k on known values; a hash split is seeded and disjoint, and a dataset's
    own split wins."""
    assert pass_at_k(3, 0, 1) == 0.0 and pass_at_k(3, 3, 2) == 1.0
    assert pass_at_k(3, 1, 1) == pytest.approx(1 / 3)
    assert pass_at_k(3, 1, 2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)
    tasks = [Task(f"t{i}", f"q{i}", "a") for i in range(200)]
    train, test = split_tasks(tasks, 0.3, seed=1)
    assert {t.task_id for t in train}.isdisjoint(t.task_id for t in test)
    assert len(train) + len(test) == 200 and 40 < len(test) < 80
    assert split_tasks(tasks, 0.3, seed=1) == (train, test)
    assert split_tasks(tasks, 0.3, seed=2) != (train, test)
    own = [Task("a", "q", "x", (), {"split": "test"}), Task("b", "q", "x", (), {"split": "train"})]
    assert split_tasks(own, 0.9) == ([own[1]], [own[0]])
    assert split_tasks(tasks, None) == (tasks, [])


def test_agent_run_reads_an_attachment_and_refuses_a_missing_one(tmp_path: Path) -> None:
    """`memento agent run --attach FILE` (scripted backend, real stdio tool server) answers from
    the spreadsheet; a missing attachment is a usage error, not a crash."""
    from typer.testing import CliRunner

    from memento.cli import app

    folder = _gaia(tmp_path / "g")
    q = "How many units of 'Widget' were sold?"
    res = CliRunner().invoke(
        app, ["agent", "run", "--task", q, "--attach", str(folder / "sales.xlsx")]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{") :])["answer"] == "1234"
    res = CliRunner().invoke(
        app, ["agent", "run", "--task", q, "--attach", str(tmp_path / "no.csv")]
    )
    assert res.exit_code == 2 and "attachment not found" in res.output


def test_deepresearcher_reward_is_f1_with_judged_partial_match(tmp_path: Path) -> None:
    """DeepResearcher: reward = token F1; the judge's YES / NO partial match is counted."""
    src = tmp_path / "dr.jsonl"
    rows = [{"question": "Is water wet?", "answer": "yes"}, {"question": "Name it", "answer": "b"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    judge_script = Script(
        rules=(Rule("Question: Is water wet?", ScriptedReply(content="YES"), where="any"),),
        default=ScriptedReply(content="NO"),
    )
    cfg = BenchConfig("deepresearcher", src, tmp_path / "out", modes=("no-memory",), iterations=1)
    with (
        HeuristicLLMServer() as srv,
        ScriptedLLMServer(judge_script) as judge_srv,
        ToolClient.in_process(ToolServerConfig()) as tools,
    ):
        judge = OpenAIJudge(_client(judge_srv, "judge"))
        res = run_bench(cfg, _client(srv), _client(srv), tools, HashingTextEncoder(64), None, judge)
    it = res["modes"]["no-memory"]["iterations"][0]
    assert it["judge_labels"] == {"NO_MATCH": 1, "PARTIAL_MATCH": 1}
    assert it["reward"] == it["f1"] == pytest.approx(0.5, abs=1e-3)
