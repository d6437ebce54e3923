"""Benchmark loaders: GAIA, SimpleQA, DeepResearcher and closed-corpus HotpotQA -> `Task` records.

Files are the user's own copies (some datasets are gated), never committed. Formats:
- GAIA: a folder with `metadata.jsonl` (`task_id`, `Question`, `Final answer`, `file_name`,
  `Level`, ...) and the attachments beside it (`file_name` is relative to that folder).
- SimpleQA: CSV with columns `problem`, `answer` (plus `metadata`).
- DeepResearcher: parquet or JSONL with a question column (`question`/`prompt`/`problem`) and
  an answer column (`answer`/`gold`/`ground_truth`/`golden_answers`).
- HotpotQA (distractor): JSON list; `supporting_facts`/`context` may be Python-literal strings
  (parse with `ast.literal_eval`) or already dicts `{'title': [...], 'sentences': [[...]]}`.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import BenchDataError
from agent.tools.search import Document, write_corpus_jsonl

__all__ = [
    "HOTPOT_SAMPLE_RELPATH",
    "Task",
    "hotpot_corpus",
    "load_deepresearcher",
    "load_gaia",
    "load_hotpotqa",
    "load_simpleqa",
    "load_tasks",
    "write_hotpot_corpus",
]

HOTPOT_SAMPLE_RELPATH = "hotpotqa-dev-distractor-sample/hotpot_dev_distractor_first60.json"
"""Path of the shared 60-question HotpotQA sample, relative to the shared data folder."""


@dataclass(frozen=True)
class Task:
    """One benchmark question."""

    task_id: str
    question: str
    answer: str
    """Gold answer (first of `metadata['answers']` when several are accepted)."""
    attachments: tuple[Path, ...] = ()
    """Absolute paths of attached files (GAIA)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Dataset-specific extras (level, type, supporting facts, all accepted answers...)."""


def _stable_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def load_gaia(path: Path) -> list[Task]:
    """GAIA tasks from a folder holding `metadata.jsonl` (or from that file itself)."""
    meta = path / "metadata.jsonl" if path.is_dir() else path
    if not meta.is_file():
        raise BenchDataError(f"GAIA metadata.jsonl not found under {path}")
    root = meta.parent
    tasks: list[Task] = []
    for line_no, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, task_id = row["Question"], str(row["task_id"])
        except (json.JSONDecodeError, KeyError) as exc:
            raise BenchDataError(f"{meta}:{line_no}: bad GAIA row ({exc!r})") from exc
        attachments: tuple[Path, ...] = ()
        if row.get("file_name"):
            attachments = ((root / row["file_name"]).resolve(),)
        extra = {k: v for k, v in row.items() if k not in ("Question", "Final answer")}
        tasks.append(Task(task_id, question, str(row.get("Final answer", "")), attachments, extra))
    return tasks


def load_simpleqa(path: Path) -> list[Task]:
    """SimpleQA tasks from a CSV with `problem` and `answer` columns."""
    if not path.is_file():
        raise BenchDataError(f"SimpleQA CSV not found: {path}")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"problem", "answer"} <= set(reader.fieldnames):
            raise BenchDataError(f"{path}: need columns problem, answer; got {reader.fieldnames}")
        rows = list(reader)
    return [
        Task(
            _stable_id("simpleqa", r["problem"]) if not r.get("id") else str(r["id"]),
            r["problem"],
            r["answer"],
            (),
            {k: v for k, v in r.items() if k not in ("problem", "answer")} | {"row": i},
        )
        for i, r in enumerate(rows)
    ]


_Q_COLS = ("question", "prompt", "problem", "query")
_A_COLS = ("answer", "gold", "ground_truth", "golden_answers", "answers")


def _rows_from_table(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import polars as pl

        return pl.read_parquet(path).to_dicts()
    if path.suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
            return list(data) if isinstance(data, list) else [data]
        return [json.loads(x) for x in text.splitlines() if x.strip()]
    raise BenchDataError(f"unsupported DeepResearcher file type: {path.suffix}")


def _answers(value: Any) -> list[str]:
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                parsed = ast.literal_eval(s)
            except (ValueError, SyntaxError):
                return [value]
            return [str(a) for a in parsed] if isinstance(parsed, list | tuple) else [value]
        return [value]
    if isinstance(value, Iterable):
        return [str(a) for a in value]
    return [str(value)]


def load_deepresearcher(path: Path) -> list[Task]:
    """DeepResearcher-style QA from parquet/JSONL (question + one or several gold answers)."""
    if not path.is_file():
        raise BenchDataError(f"DeepResearcher file not found: {path}")
    tasks: list[Task] = []
    for i, row in enumerate(_rows_from_table(path)):
        q_col = next((c for c in _Q_COLS if c in row), None)
        a_col = next((c for c in _A_COLS if c in row), None)
        if q_col is None or a_col is None:
            raise BenchDataError(f"{path} row {i}: need one of {_Q_COLS} and one of {_A_COLS}")
        answers = _answers(row[a_col])
        question = str(row[q_col])
        task_id = str(row.get("id") or row.get("task_id") or _stable_id("dr", question))
        extra = {k: v for k, v in row.items() if k not in (q_col, a_col)} | {"answers": answers}
        tasks.append(Task(task_id, question, answers[0] if answers else "", (), extra))
    return tasks


def _literal(value: Any) -> Any:
    return ast.literal_eval(value) if isinstance(value, str) else value


def load_hotpotqa(path: Path, limit: int | None = None) -> list[Task]:
    """HotpotQA distractor questions; metadata keeps type, level, supporting facts, context."""
    if not path.is_file():
        raise BenchDataError(f"HotpotQA JSON not found: {path}")
    records = json.loads(path.read_text(encoding="utf-8"))
    tasks: list[Task] = []
    for i, rec in enumerate(records[:limit] if limit is not None else records):
        try:
            context = _literal(rec["context"])
            facts = _literal(rec["supporting_facts"])
            titles, sentences = list(context["title"]), list(context["sentences"])
        except (KeyError, ValueError, SyntaxError, TypeError) as exc:
            raise BenchDataError(f"{path} record {i}: bad context ({exc!r})") from exc
        assert len(titles) == len(sentences), f"{len(titles)=} {len(sentences)=}"
        task_id = str(rec.get("id") or rec.get("_id") or f"hotpot-{i:04d}")
        meta = {
            "type": rec.get("type"),
            "level": rec.get("level"),
            "supporting_facts": list(zip(facts["title"], facts["sent_id"], strict=True)),
            "context": list(zip(titles, sentences, strict=True)),
        }
        tasks.append(Task(task_id, rec["question"], str(rec["answer"]), (), meta))
    return tasks


def hotpot_corpus(tasks: Sequence[Task]) -> list[Document]:
    """All paragraphs of all questions pooled into one corpus (one document per unique title;
    doc_id = title, as HotpotQA titles are Wikipedia page names)."""
    docs: dict[str, Document] = {}
    for t in tasks:
        for title, sentences in t.metadata["context"]:
            text = "".join(sentences).strip()
            # The same page may appear with different sentences: keep the longer paragraph.
            if title in docs and len(text) <= len(docs[title].text):
                continue
            docs[title] = Document(title, title, text)
    return list(docs.values())


def write_hotpot_corpus(src: Path, dst: Path) -> int:
    """Pool the paragraphs of the HotpotQA file `src` into the JSONL corpus `dst`; returns the
    document count (serve it with `python -m agent.tools.server --corpus dst`)."""
    return write_corpus_jsonl(hotpot_corpus(load_hotpotqa(src)), dst)


def load_ledger_family(path: Path) -> list[Task]:
    """The scripted ledger family (`bench.research.ledger_family`): a folder with `tasks.jsonl`, or
    that file; metadata keeps `split` and `registry`."""
    file = path / "tasks.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise BenchDataError(
            f"ledger family not found at {path}: write one with `memento agent family --out DIR`"
        )
    tasks = []
    for i, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            meta = {"split": row["split"], "registry": row["registry"]}
            tasks.append(Task(str(row["task_id"]), row["question"], str(row["answer"]), (), meta))
        except (json.JSONDecodeError, KeyError) as exc:
            raise BenchDataError(f"{file} line {i + 1}: bad task ({exc!r})") from exc
    return tasks


def load_tasks(dataset: str, path: Path, limit: int | None = None) -> list[Task]:
    """Dispatch by dataset name: gaia, simpleqa, deepresearcher, hotpotqa(-closed),
    ledger-family."""
    name = dataset.lower()
    if name == "gaia":
        tasks = load_gaia(path)
    elif name == "simpleqa":
        tasks = load_simpleqa(path)
    elif name == "deepresearcher":
        tasks = load_deepresearcher(path)
    elif name in ("hotpotqa", "hotpotqa-closed"):
        tasks = load_hotpotqa(path)
    elif name == "ledger-family":
        tasks = load_ledger_family(path)
    else:
        raise BenchDataError(
            f"unknown dataset {dataset!r}: gaia, simpleqa, deepresearcher, hotpotqa-closed, "
            "ledger-family"
        )
    return tasks[:limit] if limit is not None else tasks
