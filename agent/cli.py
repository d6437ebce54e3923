"""`memento agent ...`: one-off task, answer scoring, saved memories.

The benchmark commands (`agent bench`, `family`, ...) live in `bench.research.cli`.

Heavy imports (torch, faiss, transformers, mcp) stay inside the command functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

__all__ = ["agent_app", "chat_clients", "task_encoder"]

log = logging.getLogger(__name__)

agent_app = typer.Typer(
    help="Research-agent mode: planner/executor over MCP tools with case memory.",
    no_args_is_help=True,
)

_BACKEND = typer.Option(
    "scripted", help="local (packaged model) | scripted (rule-based demo) | openai"
)
_BASE_URL = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (backend openai).")
_API_KEY = typer.Option("EMPTY", "--api-key", envvar="OPENAI_API_KEY", help="API key.")
_PLANNER = typer.Option("qwen2.5-0.5b", "--planner-model", help="Planner model name.")
_EXECUTOR = typer.Option(None, "--executor-model", help="Executor model (default: planner's).")
_MAX_NEW = typer.Option(48, "--max-new-tokens", help="Local backend: tokens per reply.")
_THREADS = typer.Option(1, "--threads", help="torch CPU threads (0 = torch's default).")


@contextlib.contextmanager
def chat_clients(
    backend: str,
    base_url: str | None,
    api_key: str,
    planner_model: str,
    executor_model: str | None,
    max_new_tokens: int,
    threads: int = 1,
    server: Any = None,
) -> Iterator[tuple[Any, Any]]:
    """(planner, executor) chat clients; a scripted backend runs `server` meanwhile (default:
    the rule-based demo server, `agent.scripted_llm.HeuristicLLMServer`)."""
    from recsys.llm.chat import (
        LocalChatClient,
        LocalChatConfig,
        OpenAIChatClient,
        OpenAIChatConfig,
    )

    executor_model = executor_model or planner_model
    if backend == "scripted":
        from agent.scripted_llm import HeuristicLLMServer

        with server or HeuristicLLMServer() as srv:
            llm = OpenAIChatClient(OpenAIChatConfig(srv.base_url, "scripted", max_retries=0))
            yield llm, llm
    elif backend == "local":
        planner = LocalChatClient(LocalChatConfig(planner_model, max_new_tokens, threads=threads))
        executor = (
            planner
            if executor_model == planner_model
            else LocalChatClient(LocalChatConfig(executor_model, max_new_tokens, threads=threads))
        )
        yield planner, executor
    elif backend == "openai":
        if not base_url:
            raise typer.BadParameter("--base-url is required with --backend openai")
        yield (
            OpenAIChatClient(OpenAIChatConfig(base_url, planner_model, api_key)),
            OpenAIChatClient(OpenAIChatConfig(base_url, executor_model, api_key)),
        )
    else:
        raise typer.BadParameter(f"unknown backend {backend!r}: local, scripted, openai")


def task_encoder(kind: str, cache: Path | None) -> Any:
    from recsys.config import TextEncoderConfig
    from recsys.memory.text_encoder import build_text_encoder

    if kind not in ("use", "hashing"):
        raise typer.BadParameter(f"unknown encoder {kind!r}: use, hashing")
    cfg = TextEncoderConfig(
        kind="use" if kind == "use" else "hashing",
        dim=256,  # the hashing width (USE's is fixed: `TextEncoderConfig.width`)
        cache_dir=str(cache) if cache else None,
    )
    return build_text_encoder(cfg)


@agent_app.command("run")
def run(
    task: str = typer.Option(..., "--task", help="The question."),
    corpus: Path | None = typer.Option(None, help="JSONL corpus for the search tool."),
    files_root: Path | None = typer.Option(None, help="Folder read_file may read."),
    attach: list[Path] = typer.Option(
        [], "--attach", help="Attached file (repeatable; inside --files-root, or its folder)."
    ),
    memory_dir: Path | None = typer.Option(
        None, "--memory", help="Saved memory folder to retrieve cases from (RUN/MODE/memory)."
    ),
    encoder: str = typer.Option("use", help="Task encoder of --memory: use | hashing."),
    backend: str = _BACKEND,
    base_url: str | None = _BASE_URL,
    api_key: str = _API_KEY,
    planner_model: str = _PLANNER,
    executor_model: str | None = _EXECUTOR,
    max_new_tokens: int = _MAX_NEW,
    max_turns: int = typer.Option(4, help="Executor replies per step."),
) -> None:
    """Solve one task (no judging, no learning) and print the answer with its trajectory;
    with --memory the planner sees the cases the saved policy chooses."""
    from agent.errors import MemoryMismatchError
    from agent.executor import Executor, ExecutorConfig
    from agent.memory import AgentMemory, MemoryConfig, read_memory_meta
    from agent.planner import Planner
    from agent.runner import AgentRunner, attachments_text
    from agent.tasks import Task
    from agent.tools.client import ToolClient
    from recsys.memory.text_encoder import HashingTextEncoder

    missing = [str(a) for a in attach if not a.is_file()]
    if missing:
        raise typer.BadParameter(f"attachment not found: {', '.join(missing)}")
    if attach and files_root is None:
        files_root = attach[0].resolve().parent
    if memory_dir is None:
        memory = AgentMemory(HashingTextEncoder(64), MemoryConfig(mode="no-memory"))
    else:
        try:
            mode = read_memory_meta(memory_dir)["mode"]
            memory = AgentMemory(task_encoder(encoder, None), MemoryConfig(mode=mode))
            memory.load(memory_dir)
        except MemoryMismatchError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
    shown = attachments_text(
        Task("run", task, "", tuple(a.resolve() for a in attach)), 1500, files_root
    )
    with (
        chat_clients(backend, base_url, api_key, planner_model, executor_model, max_new_tokens) as (
            planner,
            executor,
        ),
        ToolClient.stdio(corpus=corpus, files_root=files_root) as tools,
    ):
        runner = AgentRunner(
            Planner(planner, memory),
            Executor(executor, tools, ExecutorConfig(max_turns=max_turns)),
            memory,
        )
        answer, details = runner.solve(task, shown)
    out = {
        "task": task,
        "answer": answer,
        "chosen_cases": details["retrieval"].chosen_ids,
        "plans": [p.to_json() for p in details["plans"]],
        "planner_calls": details["planner_calls"],
        "steps": [
            {"goal": r.goal, "answer": r.answer, "stop": r.stop, "trajectory": r.trajectory}
            for r in details["results"]
        ],
    }
    sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")


@agent_app.command("score")
def score(
    dataset: str = typer.Option(..., help="gaia | hotpotqa | simpleqa"),
    prediction: str = typer.Option(..., help="The predicted answer."),
    gold: str = typer.Option(..., help="The gold answer."),
    question: str = typer.Option("", help="The question (the SimpleQA judge reads it)."),
    judge_url: str | None = typer.Option(
        None, "--judge-url", help="OpenAI-compatible endpoint of the SimpleQA judge."
    ),
    judge_model: str = typer.Option("gpt-4o-mini", "--judge-model", help="Judge model name."),
    api_key: str = _API_KEY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Score one prediction as the benchmark defines it (SimpleQA through an LLM judge)."""
    out: dict[str, Any]
    if dataset == "gaia":
        from agent.scorers import gaia_score

        g = gaia_score(prediction, gold)
        out = {
            "correct": g.correct,
            "kind": g.kind,
            "prediction_normalized": g.prediction_normalized,
            "gold_normalized": g.gold_normalized,
        }
    elif dataset == "hotpotqa":
        from agent.judge import exact_match, f1_score, normalize_answer

        em = exact_match(prediction, gold)
        out = {
            "correct": em == 1.0,
            "em": em,
            "f1": f1_score(prediction, gold),
            "prediction_normalized": normalize_answer(prediction),
            "gold_normalized": normalize_answer(gold),
        }
    elif dataset == "simpleqa":
        if not judge_url:
            typer.echo("simpleqa is graded by an LLM judge: pass --judge-url URL", err=True)
            raise typer.Exit(2)
        from agent.scorers import OpenAIJudge
        from recsys.llm.errors import LLMBackendError

        try:
            s = OpenAIJudge.from_url(judge_url, judge_model, api_key).grade_simpleqa(
                question, prediction, gold
            )
        except LLMBackendError as exc:
            typer.echo(f"judge call failed: {exc}", err=True)
            raise typer.Exit(1) from exc
        out = {"correct": s.correct, "label": s.label, "judge_reply": s.raw}
    else:
        typer.echo(f"unknown dataset {dataset!r}: gaia, hotpotqa, simpleqa", err=True)
        raise typer.Exit(2)
    out["dataset"] = dataset
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        typer.echo(" ".join(f"{k}={v}" for k, v in out.items()))


memory_app = typer.Typer(help="Inspect, export and import saved agent memories.")
agent_app.add_typer(memory_app, name="memory")


@memory_app.command("inspect")
def memory_inspect(
    folder: Path = typer.Argument(..., help="A saved memory folder (RUN/MODE/memory)."),
    top: int = typer.Option(10, help="Cases listed, by credited utility."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Case counts by outcome and the most useful cases."""
    from agent.errors import MemoryMismatchError
    from agent.memory_io import inspect_memory

    try:
        info = inspect_memory(folder, top)
    except MemoryMismatchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        return
    typer.echo(
        f"{info['cases']} cases ({info['mode']}, encoder {info['encoder']}): {info['outcomes']}, "
        f"{info['chosen_at_least_once']} chosen at least once"
    )
    for c in info["top"]:
        typer.echo(
            f"  [{c['case_id']}] {c['outcome']:7s} utility {c['utility']:.2f} visits "
            f"{c['visits']}: {c['task']}"
        )


@memory_app.command("export")
def memory_export(
    folder: Path = typer.Argument(..., help="A saved memory folder."),
    out: Path = typer.Option(..., "--out", help="JSONL file to write."),
) -> None:
    """Write every case as one JSON line (encoder-independent)."""
    from agent.errors import MemoryMismatchError
    from agent.memory_io import export_cases

    try:
        n = export_cases(folder, out)
    except MemoryMismatchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"exported {n} cases to {out}")


@memory_app.command("import")
def memory_import(
    src: Path = typer.Argument(..., help="A JSONL export."),
    into: Path = typer.Option(..., "--into", help="Memory folder (created when absent)."),
    encoder: str = typer.Option("use", help="Task encoder: use | hashing."),
    mode: str = typer.Option("soft-q", help="Memory mode of a new folder."),
) -> None:
    """Re-embed exported cases with this encoder and add them to a memory folder."""
    from agent.errors import MemoryMismatchError
    from agent.memory_io import import_cases

    if mode not in ("soft-q", "non-parametric", "no-memory"):
        raise typer.BadParameter(f"unknown mode {mode!r}")
    try:
        n = import_cases(src, into, task_encoder(encoder, None), mode)  # type: ignore[arg-type]
    except MemoryMismatchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"imported {n} cases into {into}")
