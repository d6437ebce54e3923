"""`memento bench bandit | core | llm | prepare`: parse options, run the benchmark, print.

The measuring code lives in the sibling modules (no typer there); heavy imports stay inside
the commands so that `memento --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["bandit_command", "core_command", "llm_command", "prepare_command"]


def _ints(csv: str) -> list[int]:
    return [int(s.replace("_", "")) for s in csv.split(",") if s.strip()]


def bandit_command(
    steps: int = typer.Option(600, help="Interaction steps per mode and seed."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    clusters: int = typer.Option(40, help="State clusters."),
    cases_per_cluster: int = typer.Option(100, help="Cases per cluster."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Contextual bandit with planted optimal cases: optimal_rate per learner mode."""
    from training.bench.bandit import BanditConfig, run_bandit

    cfg = BanditConfig(steps=steps, clusters=clusters, cases_per_cluster=cases_per_cluster)
    result = run_bandit(cfg, _ints(seeds))
    if json_out:
        typer.echo(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bandit: {result['num_cases']} cases, {steps} steps, seeds {seeds}")
    table.add_column("mode")
    table.add_column("optimal_rate (mean)")
    table.add_column("per seed")
    for mode, rate in result["optimal_rate"].items():
        per = ", ".join(f"{r:.3f}" for r in result["optimal_rate_per_seed"][mode])
        table.add_row(mode, f"{rate:.3f}", per)
    keys = ("soft_q_credit_ablation", "optimum_in_topk_rate", "optimum_is_nearest_rate", "seconds")
    Console().print(table)
    Console().print({k: result[k] for k in keys})


def core_command(
    sizes: str = typer.Option("100000,1000000", help="Case-bank sizes for the faiss figures."),
    dim: int = typer.Option(64, help="Key dimension for the faiss figures."),
    queries: int = typer.Option(200, help="Single-query searches timed per index."),
    threads: int = typer.Option(
        1, help="torch and faiss threads (1 avoids oversubscription on shared cores)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """TD updates/s next to the bare forward+backward floor; faiss latency and bytes per case."""
    from training.bench.core import run_core

    result = run_core(_ints(sizes), dim, queries, threads)
    if json_out:
        typer.echo(json.dumps(result))
    else:
        from rich.console import Console

        Console().print(result)


def llm_command(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    model: str = typer.Option("qwen2.5-0.5b", "--model", help="Packaged name, folder or hub id."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (bf16 on both)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed repeats per figure."),
    batch_requests: int = typer.Option(8, "--batch", min=1, help="Requests per rank_batch."),
) -> None:
    """Time prefix-cached candidate ranking against the compute floor and naive scoring."""
    from training.bench.llm import bench_llm

    result = bench_llm(model=model, device=device, repeats=repeats, batch_requests=batch_requests)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"frozen LLM ranking ({model}, {device})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    Console().print(table)


def prepare_command(
    rows: str = typer.Option("1000000,10000000", "--rows", help="Comma-separated event counts."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Scratch folder (default: a temporary folder, removed after)."
    ),
) -> None:
    """Rows/second and peak RSS of `data prepare` vs a bare polars scan of the same files."""
    from rich.console import Console

    from training.bench.prepare import bench_prepare

    err = None if as_json else Console(stderr=True)
    results = bench_prepare(_ints(rows), work_dir, err)
    typer.echo(json.dumps({"benchmark": "prepare", "runs": results}))
