"""`memento agent bench | family | family-bench | tool-latency`: research-agent benchmarks.

The root CLI registers these on `memento agent` (`memento.cli`); heavy imports stay inside.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from agent.cli import (
    _API_KEY,
    _BACKEND,
    _BASE_URL,
    _EXECUTOR,
    _MAX_NEW,
    _PLANNER,
    _THREADS,
    chat_clients,
    task_encoder,
)

__all__ = [
    "bench_command",
    "family_bench_command",
    "family_command",
    "tool_latency_command",
]

log = logging.getLogger(__name__)


def bench_command(
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

    from agent.executor import ExecutorConfig
    from agent.planner import PlannerConfig
    from agent.runner import RunnerConfig
    from agent.tools.client import ToolClient
    from bench.research.bench import BenchConfig, bench_tools_args, run_bench

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
    enc = task_encoder(encoder, out_dir / "emb-cache")

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
        chat_clients(
            backend,
            base_url,
            api_key,
            planner_model,
            executor_model,
            max_new_tokens,
            threads,
            _server(backend, dataset, seed),
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


def _server(backend: str, dataset: str, seed: int) -> Any:
    """The scripted backend's server: the ledger family's own rule-based agent for
    `ledger-family` (None: `chat_clients`' default demo server)."""
    if backend != "scripted" or dataset != "ledger-family":
        return None
    from bench.research.ledger_server import LedgerLLMServer

    return LedgerLLMServer(seed)


def _tools(dataset: str, web_search: str | None) -> tuple[str, ...] | None:
    from bench.research.bench import dataset_tools

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


def family_command(
    out: Path = typer.Option(..., help="Folder for tasks.jsonl and corpus.jsonl."),
    seed: int = typer.Option(0, help="Seed of names, codes and the split."),
    registries: int = typer.Option(6, help="Registries (families)."),
    decoys: int = typer.Option(3, help="Superseded ledgers per registry."),
) -> None:
    """Write the scripted ledger task family (only a relevant past plan leads to the answer)."""
    from bench.research.ledger_family import FamilyConfig, write_family

    tasks, corpus = write_family(out, FamilyConfig(registries=registries, decoys=decoys, seed=seed))
    typer.echo(f"wrote {tasks} and {corpus}")


def family_bench_command(
    out: Path = typer.Option(Path("runs/agent/ledger-family"), help="Output folder."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds (one family each)."),
    iterations: int = typer.Option(3, help="Passes over the train tasks."),
    encoder: str = typer.Option("use", help="Task encoder: use | hashing."),
    plot: Path | None = typer.Option(None, help="Also write the figure here (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result JSON."),
) -> None:
    """Held-out memory benchmark on the scripted ledger family over several seeds."""
    import torch

    from bench.research.family_bench import FamilyBenchConfig, plot_family, run_family_bench

    torch.set_num_threads(1)
    cfg = FamilyBenchConfig(
        out, tuple(int(x) for x in seeds.split(",") if x.strip()), iterations=iterations
    )
    res = run_family_bench(cfg, lambda: task_encoder(encoder, out / "emb-cache"), typer.echo)
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


def tool_latency_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    n_calls: int = typer.Option(50, help="Calls per tool and transport."),
    n_docs: int = typer.Option(1000, help="Synthetic corpus size."),
) -> None:
    """Median/p90 latency of MCP tool calls over stdio vs in-process."""
    from bench.research.tool_latency import measure_tool_latency

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
