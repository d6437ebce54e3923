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
    dataset: str = "",
    seed: int = 0,
) -> Iterator[tuple[Any, Any]]:
    """(planner, executor) chat clients; a scripted backend runs its server meanwhile (the
    ledger family's own rule-based agent for `ledger-family`)."""
    from recsys.llm.chat import (
        LocalChatClient,
        LocalChatConfig,
        OpenAIChatClient,
        OpenAIChatConfig,
    )

    executor_model = executor_model or planner_model
    if backend == "scripted":
        from agent.bench_scripted import HeuristicLLMServer
        from agent.ledger_server import LedgerLLMServer

        server = LedgerLLMServer(seed) if dataset == "ledger-family" else HeuristicLLMServer()
        with server as srv:
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
    samples: int = typer.Option(
        1, help="Attempts per task and pass: pass@1..pass@N (only the first attempt learns)."
    ),
    heldout: float | None = typer.Option(
        None,
        help="Held-out protocol: test share of a seeded split (tasks with a `split` keep it); "
        "memory is built on train tasks, then every test task is attempted with learning off.",
    ),
    seed: int = typer.Option(0, help="Seed of the held-out split and of the scripted agent."),
    concurrency: int = typer.Option(
        1, help="Tasks attempted at once against the endpoint (learning stays in task order)."
    ),
    memory_from: Path | None = typer.Option(
        None, "--memory-from", help="Start from a saved memory folder (e.g. RUN/soft-q/memory)."
    ),
    judge_url: str | None = typer.Option(
        None, "--judge-url", help="OpenAI-compatible endpoint of the LLM judge (SimpleQA)."
    ),
    judge_model: str = typer.Option("gpt-4o-mini", "--judge-model", help="Judge model name."),
    web_search: str | None = typer.Option(
        None,
        "--web-search",
        help="Search API URL (SearxNG-compatible); web tools are off by default.",
    ),
    web_fetch: bool = typer.Option(False, "--web-fetch", help="Let the executor fetch pages."),
    transcribe_url: str | None = typer.Option(
        None,
        "--transcribe-url",
        help="OpenAI-compatible endpoint that transcribes audio attachments (off by default).",
    ),
) -> None:
    """Run iterations over a task set per memory mode (resumable); accuracy per iteration,
    held-out accuracy with paired CIs, pass@k."""
    import dataclasses

    from agent.bench import BenchConfig, bench_tools_args, run_bench
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
        executor=ExecutorConfig(max_turns=max_turns, allowed_tools=_tools(dataset, web_search)),
        planner=PlannerConfig(max_retries=plan_retries),
        samples=samples,
        heldout=heldout,
        split_seed=seed,
        concurrency=concurrency,
        memory_from=memory_from,
    )
    if dataset == "simpleqa" and not judge_url:
        typer.echo("simpleqa is graded by an LLM judge: pass --judge-url URL", err=True)
        raise typer.Exit(2)
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

    judge = None
    if judge_url:
        from agent.scorers import OpenAIJudge

        judge = OpenAIJudge.from_url(judge_url, judge_model, api_key)
    web_args = (["--web-search", web_search] if web_search else []) + (
        ["--web-fetch"] if web_fetch else []
    )
    web_args += ["--transcribe-url", transcribe_url] if transcribe_url else []
    with (
        _llms(
            backend,
            base_url,
            api_key,
            planner_model,
            executor_model,
            max_new_tokens,
            threads,
            dataset,
            seed,
        ) as (planner, executor),
        ToolClient.stdio(**bench_tools_args(cfg), extra_args=web_args) as tools,
    ):
        result = run_bench(cfg, planner, executor, tools, enc, on_task, judge)
    result["backend"] = backend
    if backend == "scripted":
        result["note"] = "rule-based scripted server: a plumbing demo, not a language model"
    (out_dir / "result.json").write_text(json.dumps(result, indent=2))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        typer.echo(format_result(result))


def _tools(dataset: str, web_search: str | None) -> tuple[str, ...] | None:
    from agent.bench import dataset_tools

    tools = dataset_tools(dataset)
    if tools is not None and web_search:
        tools = (*tools, "web_search", "web_fetch")
    return tools


def format_result(result: dict[str, Any]) -> str:
    """The bench result as a few readable lines per mode."""

    def line(label: str, r: dict[str, Any]) -> str:
        if not r.get("n"):
            return f"{label}: no task"
        lo, hi = r["reward_ci"]
        extra = "".join(
            f" {k} {r[k]:.3f}" for k in sorted(r) if k.startswith("pass@") and k != "pass@1"
        )
        labels = r.get("judge_labels")
        extra += f" labels {labels}" if labels else ""
        return (
            f"{label}: n {r['n']} EM {r['em']:.3f} F1 {r['f1']:.3f} reward {r['reward']:.3f} "
            f"[{lo:.3f}, {hi:.3f}]{extra}"
        )

    out = []
    for mode, res in result["modes"].items():
        for r in res["iterations"]:
            out.append(line(f"{mode:15s} iter {r['iteration']}", r))
        if "heldout" in res:
            out.append(line(f"{mode:15s} held-out", res["heldout"]))
    for pair, d in result.get("heldout_paired", {}).items():
        out.append(f"held-out {pair}: {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    return "\n".join(out)


@agent_app.command("family")
def family(
    out: Path = typer.Option(..., help="Folder for tasks.jsonl and corpus.jsonl."),
    seed: int = typer.Option(0, help="Seed of names, codes and the split."),
    registries: int = typer.Option(6, help="Registries (families)."),
    decoys: int = typer.Option(3, help="Superseded ledgers per registry."),
) -> None:
    """Write the scripted ledger task family (only a relevant past plan leads to the answer)."""
    from agent.ledger_family import FamilyConfig, write_family

    tasks, corpus = write_family(out, FamilyConfig(registries=registries, decoys=decoys, seed=seed))
    typer.echo(f"wrote {tasks} and {corpus}")


@agent_app.command("family-bench")
def family_bench(
    out: Path = typer.Option(Path("runs/agent/ledger-family"), help="Output folder."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds (one family each)."),
    iterations: int = typer.Option(3, help="Passes over the train tasks."),
    encoder: str = typer.Option("use", help="Task encoder: use | hashing."),
    plot: Path | None = typer.Option(None, help="Also write the figure here (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON."),
) -> None:
    """Held-out memory benchmark on the scripted ledger family over several seeds."""
    import torch

    from agent.family_bench import FamilyBenchConfig, plot_family, run_family_bench

    torch.set_num_threads(1)
    cfg = FamilyBenchConfig(
        out, tuple(int(x) for x in seeds.split(",") if x.strip()), iterations=iterations
    )
    res = run_family_bench(cfg, lambda: _encoder(encoder, out / "emb-cache"), typer.echo)
    if plot is not None:
        plot_family(res, plot)
    if as_json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
        return
    for mode, r in res["modes"].items():
        lo, hi = r["heldout_accuracy_ci"]
        ulo, uhi = r["useful_case_chosen_ci"]
        typer.echo(
            f"{mode:15s} held-out {r['heldout_accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  useful case "
            f"chosen {r['useful_case_chosen']:.3f} [{ulo:.3f}, {uhi:.3f}]  (n={r['n_rows']})"
        )
    for what, key in (("held-out", "paired_heldout"), ("useful", "paired_useful_case_chosen")):
        for name, d in res[key].items():
            typer.echo(f"{what} {name}: {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")


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
    from agent.bench_data import Task
    from agent.errors import MemoryMismatchError
    from agent.executor import Executor, ExecutorConfig
    from agent.memory import AgentMemory, MemoryConfig, read_memory_meta
    from agent.planner import Planner
    from agent.runner import AgentRunner, attachments_text
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
            memory = AgentMemory(_encoder(encoder, None), MemoryConfig(mode=mode))
            memory.load(memory_dir)
        except MemoryMismatchError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
    shown = attachments_text(
        Task("run", task, "", tuple(a.resolve() for a in attach)), 1500, files_root
    )
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
        n = import_cases(src, into, _encoder(encoder, None), mode)  # type: ignore[arg-type]
    except MemoryMismatchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"imported {n} cases into {into}")
