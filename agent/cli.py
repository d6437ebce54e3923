"""`memento agent ...`: benchmark runner, one-off task, answer scoring, tool-call latency.

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

__all__ = ["agent_app"]

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
def _llms(
    backend: str,
    base_url: str | None,
    api_key: str,
    planner_model: str,
    executor_model: str | None,
    max_new_tokens: int,
    threads: int = 1,
) -> Iterator[tuple[Any, Any]]:
    """(planner, executor) chat clients; a scripted backend runs its server meanwhile."""
    from recsys.llm.chat import (
        LocalChatClient,
        LocalChatConfig,
        OpenAIChatClient,
        OpenAIChatConfig,
    )

    executor_model = executor_model or planner_model
    if backend == "scripted":
        from agent.bench_scripted import HeuristicLLMServer

        with HeuristicLLMServer() as srv:
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


def _encoder(kind: str, cache: Path | None) -> Any:
    from recsys.config import TextEncoderConfig
    from recsys.memory.text_encoder import build_text_encoder

    if kind not in ("use", "hashing"):
        raise typer.BadParameter(f"unknown encoder {kind!r}: use, hashing")
    cfg = TextEncoderConfig(
        kind="use" if kind == "use" else "hashing",
        dim=512 if kind == "use" else 256,
        cache_dir=str(cache) if cache else None,
    )
    return build_text_encoder(cfg)


@agent_app.command("bench")
def bench(
    dataset: str = typer.Option(..., help="hotpotqa-closed | gaia | simpleqa | deepresearcher"),
    path: Path = typer.Option(..., help="Your copy of the dataset (file, or GAIA folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON on stdout."),
    backend: str = _BACKEND,
    base_url: str | None = _BASE_URL,
    api_key: str = _API_KEY,
    planner_model: str = _PLANNER,
    executor_model: str | None = _EXECUTOR,
    limit: int | None = typer.Option(None, help="First N tasks only."),
    iterations: int = typer.Option(3, help="Passes over the task set."),
    modes: str = typer.Option("soft-q,non-parametric,no-memory", help="Comma-separated."),
    out: Path | None = typer.Option(
        None,
        help="Output folder (default runs/agent/DATASET-BACKEND-PLANNER-EXECUTOR; a resume with "
        "other settings is refused).",
    ),
    encoder: str = typer.Option("use", help="Task encoder: use | hashing."),
    max_turns: int = typer.Option(4, help="Executor replies per step."),
    max_cycles: int = typer.Option(2, help="Planning cycles per task."),
    max_new_tokens: int = _MAX_NEW,
    threads: int = _THREADS,
    plan_retries: int = typer.Option(2, help="Re-asks after a malformed plan."),
) -> None:
    """Run iterations over a task set per memory mode (resumable); EM/F1 per iteration."""
    import dataclasses

    from agent.bench import BenchConfig, bench_tools_args, dataset_tools, run_bench
    from agent.executor import ExecutorConfig
    from agent.planner import PlannerConfig
    from agent.runner import RunnerConfig
    from agent.tools.client import ToolClient

    if threads > 0:  # tiny Q networks (and a CPU LLM) thrash with more threads than cores
        import torch

        torch.set_num_threads(threads)
    models = f"{planner_model}-{executor_model or planner_model}"
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in models)
    out_dir = out or Path("runs") / "agent" / f"{dataset}-{backend}-{slug}"
    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip())
    bad = set(mode_list) - {"soft-q", "non-parametric", "no-memory"}
    if bad:
        raise typer.BadParameter(f"unknown modes {sorted(bad)}")
    cfg = BenchConfig(
        dataset=dataset,
        path=path,
        out_dir=out_dir,
        modes=mode_list,  # type: ignore[arg-type]
        iterations=iterations,
        limit=limit,
        runner=RunnerConfig(max_cycles=max_cycles),
        executor=ExecutorConfig(max_turns=max_turns, allowed_tools=dataset_tools(dataset)),
        planner=PlannerConfig(max_retries=plan_retries),
    )
    if backend == "local":  # small context and budget for a CPU model
        cfg = dataclasses.replace(
            cfg, executor=dataclasses.replace(cfg.executor, tool_result_chars=700)
        )
    enc = _encoder(encoder, out_dir / "emb-cache")

    def on_task(mode: str, it: int, rec: dict[str, Any]) -> None:
        log.info(
            "%s iter %d %s em=%.0f f1=%.2f answer=%r gold=%r",
            mode,
            it,
            rec["task_id"],
            rec["em"],
            rec["f1"],
            rec["answer"],
            rec["gold"],
        )

    with (
        _llms(
            backend, base_url, api_key, planner_model, executor_model, max_new_tokens, threads
        ) as (planner, executor),
        ToolClient.stdio(**bench_tools_args(cfg)) as tools,
    ):
        result = run_bench(cfg, planner, executor, tools, enc, on_task)
    result["backend"] = backend
    if backend == "scripted":
        result["note"] = "rule-based scripted server: a plumbing demo, not a language model"
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        for mode, rows in result["modes"].items():
            for r in rows:
                typer.echo(
                    f"{mode:15s} iter {r['iteration']}: "
                    f"EM {r.get('em', 0):.3f} F1 {r.get('f1', 0):.3f}"
                )


@agent_app.command("run")
def run(
    task: str = typer.Option(..., "--task", help="The question."),
    corpus: Path | None = typer.Option(None, help="JSONL corpus for the search tool."),
    files_root: Path | None = typer.Option(None, help="Folder read_file may read."),
    backend: str = _BACKEND,
    base_url: str | None = _BASE_URL,
    api_key: str = _API_KEY,
    planner_model: str = _PLANNER,
    executor_model: str | None = _EXECUTOR,
    max_new_tokens: int = _MAX_NEW,
    max_turns: int = typer.Option(4, help="Executor replies per step."),
) -> None:
    """Solve one task (no memory, no judging) and print the answer with its trajectory."""
    from agent.executor import Executor, ExecutorConfig
    from agent.memory import AgentMemory, MemoryConfig
    from agent.planner import Planner
    from agent.runner import AgentRunner
    from agent.tools.client import ToolClient
    from recsys.memory.text_encoder import HashingTextEncoder

    memory = AgentMemory(HashingTextEncoder(64), MemoryConfig(mode="no-memory"))
    with (
        _llms(backend, base_url, api_key, planner_model, executor_model, max_new_tokens) as (
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
        answer, details = runner.solve(task)
    out = {
        "task": task,
        "answer": answer,
        "plans": [p.to_json() for p in details["plans"]],
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


@agent_app.command("tool-latency")
def tool_latency(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    n_calls: int = typer.Option(50, help="Calls per tool and transport."),
    n_docs: int = typer.Option(1000, help="Synthetic corpus size."),
) -> None:
    """Median/p90 latency of MCP tool calls over stdio vs in-process."""
    from agent.tool_latency import measure_tool_latency

    res = measure_tool_latency(n_calls=n_calls, n_docs=n_docs)
    if as_json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    else:
        for t in ("search", "math"):
            typer.echo(
                f"{t}: stdio {res['stdio'][t]['median_ms']:.2f} ms, in-process "
                f"{res['in_process'][t]['median_ms']:.2f} ms "
                f"(x{res[f'{t}_stdio_over_inprocess_median']:.1f})"
            )
