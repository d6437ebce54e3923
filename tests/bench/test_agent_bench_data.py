"""Tests of the benchmark loaders (GAIA, SimpleQA, DeepResearcher, closed-corpus HotpotQA)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from agent.errors import BenchDataError
from agent.tasks import (
    HOTPOT_SAMPLE_RELPATH,
    hotpot_corpus,
    load_deepresearcher,
    load_gaia,
    load_hotpotqa,
    load_simpleqa,
    load_tasks,
    write_hotpot_corpus,
)
from agent.tools.search import DocumentIndex, load_corpus


def test_hotpot_sample_loads_and_pools_all_paragraphs(shared_data: Path) -> None:
    """The 60 shared questions load; every context paragraph ends up in the pooled corpus."""
    tasks = load_hotpotqa(shared_data / HOTPOT_SAMPLE_RELPATH)
    assert len(tasks) == 60
    first = tasks[0]
    assert first.question == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert first.answer == "yes"
    assert first.metadata["supporting_facts"] == [("Scott Derrickson", 0), ("Ed Wood", 0)]
    titles = {title for t in tasks for title, _ in t.metadata["context"]}
    corpus = hotpot_corpus(tasks)
    assert {d.doc_id for d in corpus} == titles
    gold_titles = {title for t in tasks for title, _ in t.metadata["supporting_facts"]}
    assert gold_titles <= {d.doc_id for d in corpus}
    assert all(len(t.metadata["context"]) >= 2 for t in tasks)


def test_hotpot_supporting_paragraphs_are_searchable(shared_data: Path) -> None:
    """BM25 over the pooled corpus finds a gold paragraph in the top 10 for most questions."""
    tasks = load_hotpotqa(shared_data / HOTPOT_SAMPLE_RELPATH)
    idx = DocumentIndex(hotpot_corpus(tasks))
    found = 0
    for t in tasks:
        gold = {title for title, _ in t.metadata["supporting_facts"]}
        found += bool(gold & {h.doc_id for h in idx.search(t.question, k=10)})
    assert found >= 45, found


def test_hotpot_python_literal_strings_are_parsed(tmp_path: Path) -> None:
    """context/supporting_facts stored as Python-literal strings parse like dicts."""
    rec = {
        "question": "Q?",
        "answer": "A",
        "type": "bridge",
        "level": "easy",
        "supporting_facts": str({"title": ["T1"], "sent_id": [1]}),
        "context": str({"title": ["T1", "T2"], "sentences": [["s0. ", "s1."], ["u0."]]}),
    }
    path = tmp_path / "h.json"
    path.write_text(json.dumps([rec]))
    (task,) = load_hotpotqa(path)
    assert task.metadata["supporting_facts"] == [("T1", 1)]
    docs = {d.doc_id: d.text for d in hotpot_corpus([task])}
    assert docs == {"T1": "s0. s1.", "T2": "u0."}


def test_gaia_metadata_and_attachments(tmp_path: Path) -> None:
    """GAIA rows become tasks with absolute attachment paths and kept metadata."""
    (tmp_path / "f.xlsx").write_bytes(b"")
    rows = [
        {"task_id": "t1", "Question": "Q1", "Final answer": "42", "Level": 1, "file_name": ""},
        {"task_id": "t2", "Question": "Q2", "Final answer": "x", "Level": 2, "file_name": "f.xlsx"},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    t1, t2 = load_gaia(tmp_path)
    assert (t1.task_id, t1.question, t1.answer, t1.attachments) == ("t1", "Q1", "42", ())
    assert t2.attachments == ((tmp_path / "f.xlsx").resolve(),)
    assert t2.metadata["Level"] == 2
    with pytest.raises(BenchDataError, match=r"metadata\.jsonl not found"):
        load_gaia(tmp_path / "nowhere")


def test_simpleqa_csv(tmp_path: Path) -> None:
    """SimpleQA CSV rows become tasks; missing columns raise BenchDataError."""
    p = tmp_path / "simple_qa_test_set.csv"
    p.write_text('metadata,problem,answer\n"{}","Who wrote Dune?","Frank Herbert"\n')
    (t,) = load_simpleqa(p)
    assert (t.question, t.answer) == ("Who wrote Dune?", "Frank Herbert")
    assert t.task_id.startswith("simpleqa-")
    bad = tmp_path / "bad.csv"
    bad.write_text("q,a\n1,2\n")
    with pytest.raises(BenchDataError, match="need columns"):
        load_simpleqa(bad)


def test_deepresearcher_parquet_and_jsonl(tmp_path: Path) -> None:
    """Parquet and JSONL rows load with single or multiple gold answers."""
    pq = tmp_path / "d.parquet"
    pl.DataFrame(
        {"id": ["a", "b"], "question": ["Q1", "Q2"], "golden_answers": [["x", "y"], ["z"]]}
    ).write_parquet(pq)
    ta, tb = load_deepresearcher(pq)
    assert (ta.task_id, ta.answer, ta.metadata["answers"]) == ("a", "x", ["x", "y"])
    assert tb.answer == "z"
    jl = tmp_path / "d.jsonl"
    jl.write_text(json.dumps({"prompt": "Q3", "answer": "['p', 'q']"}) + "\n")
    (tc,) = load_deepresearcher(jl)
    assert (tc.question, tc.metadata["answers"]) == ("Q3", ["p", "q"])
    assert [t.task_id for t in load_tasks("deepresearcher", pq, limit=1)] == ["a"]
    with pytest.raises(BenchDataError, match="unknown dataset"):
        load_tasks("nope", pq)


def test_write_hotpot_corpus_round_trips(shared_data: Path, tmp_path: Path) -> None:
    """The JSONL corpus written for the tool server reloads to the pooled paragraphs."""
    src = shared_data / HOTPOT_SAMPLE_RELPATH
    n = write_hotpot_corpus(src, tmp_path / "hotpot.jsonl")
    assert load_corpus(tmp_path / "hotpot.jsonl") == hotpot_corpus(load_hotpotqa(src))
    assert n == len(hotpot_corpus(load_hotpotqa(src)))
