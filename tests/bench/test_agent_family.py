"""Memory that learns the right thing: per-case credit, a non-uniform policy, saved banks,
`agent memory` commands, and the held-out ledger family where only a relevant plan helps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.credit import case_rewards, followed_cases
from agent.errors import MemoryMismatchError
from agent.memory import AgentMemory, MemoryConfig, agent_payload
from agent.plan import Plan, PlanStep, parse_plan
from bench.research.family_bench import FamilyBenchConfig, run_family_bench
from bench.research.ledger_family import FamilyConfig, make_family, registry_of, useful_choice
from recsys.memory.text_encoder import HashingTextEncoder
from recsys.records import Case


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _case(cid: int, plan: list[str], answer: str, summary: str = "") -> Case:
    payload = agent_payload("t", plan, answer, 1.0, summary)
    return Case(np.zeros(4, np.float32), payload, 1.0, 0.0, case_id=cid)


def test_plan_follows_is_parsed_leniently() -> None:
    """`follows` takes ints or 'case N' texts; absent means 'not said' (None)."""
    assert parse_plan('{"steps": [], "final_answer": "x", "follows": [3, "case 7"]}').follows == (
        3,
        7,
    )
    assert parse_plan('{"steps": [{"goal": "g"}]}').follows is None
    assert parse_plan('{"steps": [{"goal": "g"}], "follows": []}').follows == ()


def test_credit_goes_to_the_followed_case() -> None:
    """Named cases, answer reuse, or (when the planner says nothing) a copied procedure make a
    case followed; followed cases get the reward, the others beta times it."""
    cases = [
        _case(1, ["read the ledger ledger-kestrel"], "4821", "read_document ledger-kestrel"),
        _case(2, ["search the Amber registry"], "17"),
        _case(3, ["ask the oracle"], "Paris"),
    ]
    named = Plan((PlanStep("1", "anything"),), follows=(2,))
    assert followed_cases([named], cases) == [False, True, False]
    reuse = Plan((), final_answer="Paris")
    assert followed_cases([reuse], cases) == [False, False, True]
    copied = Plan((PlanStep("1", "read the ledger ledger-kestrel for depot Mill Lane"),))
    task = "What is the code of depot Mill Lane?"
    assert followed_cases([copied], cases, task) == [True, False, False]
    assert followed_cases([copied], cases) == [False, False, False]  # task words dilute it
    np.testing.assert_allclose(case_rewards(1.0, [True, False, False], 0.1), [1.0, 0.1, 0.1])
    np.testing.assert_allclose(case_rewards(0.0, [True, False], 0.1), [0.0, 0.0])


def test_memory_save_load_and_cli_roundtrip(tmp_path: Path) -> None:
    """A saved memory reloads with the same cases; another encoder is refused with a clear
    message; `agent memory export/import/inspect` move cases across encoders."""
    from memento.cli import app

    mem = AgentMemory(HashingTextEncoder(64), MemoryConfig(mode="soft-q"))
    for i, task in enumerate(["alpha task", "beta task", "gamma task"]):
        mem.write(mem.embed(task), agent_payload(task, ["p"], str(i), float(i % 2), "s"))
    mem.save(tmp_path / "m")
    again = AgentMemory(HashingTextEncoder(64), MemoryConfig(mode="soft-q"))
    again.load(tmp_path / "m")
    assert len(again.bank) == 3
    assert again.case(again.bank.ids()[1]).payload["task"] == "beta task"
    with pytest.raises(MemoryMismatchError, match="encoder"):
        AgentMemory(HashingTextEncoder(32), MemoryConfig()).load(tmp_path / "m")
    with pytest.raises(MemoryMismatchError, match=r"memory\.json"):
        again.load(tmp_path / "nothing")

    runner = CliRunner()
    res = runner.invoke(app, ["agent", "memory", "inspect", str(tmp_path / "m"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["cases"] == 3 and info["outcomes"] == {"failure": 2, "success": 1}
    assert info["learner"] == {"mode": "soft-q", "step": 0}  # the learner part, read back
    out = tmp_path / "cases.jsonl"
    res = runner.invoke(app, ["agent", "memory", "export", str(tmp_path / "m"), "--out", str(out)])
    assert res.exit_code == 0 and len(out.read_text().splitlines()) == 3
    res = runner.invoke(
        app,
        [
            "agent",
            "memory",
            "import",
            str(out),
            "--into",
            str(tmp_path / "h"),
            "--encoder",
            "hashing",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["agent", "memory", "inspect", str(tmp_path / "h"), "--json"])
    assert (
        json.loads(res.output)["cases"] == 3 and json.loads(res.output)["encoder"] != "hashing-64"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"payload": {"no_task": 1}}\n')
    res = runner.invoke(app, ["agent", "memory", "import", str(bad), "--into", str(tmp_path / "x")])
    assert res.exit_code == 2 and "line 1" in res.output
    res = runner.invoke(app, ["agent", "memory", "inspect", str(tmp_path / "nope")])
    assert res.exit_code == 2


def test_family_tasks_hide_the_live_ledger() -> None:
    """Every registry has one live ledger and its decoys; test depots never occur in train;
    the same depot name occurs in several registries."""
    tasks, docs = make_family(FamilyConfig(seed=3))
    assert len(docs) == 6 * 4
    by_reg: dict[str, set[str]] = {}
    for t in tasks:
        by_reg.setdefault(t["registry"], set()).add(t["split"])
        assert registry_of(t["question"]) == t["registry"]
        assert t["answer"] not in t["question"]
    assert all(s == {"train", "test"} for s in by_reg.values())
    depots = [t["question"].split(" in the ")[0] for t in tasks]
    assert len(set(depots)) < len(depots)
    rec = {
        "question": tasks[0]["question"],
        "chosen_cases": [
            {"task": tasks[0]["question"].replace(tasks[0]["registry"], "Other Name"), "reward": 1},
            {"task": tasks[0]["question"], "reward": 1.0},
        ],
    }
    assert useful_choice(rec) == {"any": True, "first": False}


def test_heldout_family_soft_q_beats_cosine_beats_no_memory(tmp_path: Path) -> None:
    """One seed of the held-out protocol (hashing encoder): soft-q answers more held-out tasks
    than cosine retrieval, which answers more than no memory; soft-q shows the planner a
    useful case more often, and its policy is far from uniform."""
    cfg = FamilyBenchConfig(tmp_path, seeds=(0,), iterations=3)
    res = run_family_bench(cfg, lambda: HashingTextEncoder(256))
    acc = {m: r["heldout_accuracy"] for m, r in res["modes"].items()}
    useful = {m: r["useful_case_chosen"] for m, r in res["modes"].items()}
    assert acc["soft-q"] > acc["non-parametric"] > acc["no-memory"], acc
    assert useful["soft-q"] > useful["non-parametric"], useful
    ent = res["per_seed"][0]["soft-q"]["heldout"]["mean_policy_entropy"]
    assert ent < 0.6 * np.log(16), ent
    assert (tmp_path / "results.json").exists()
