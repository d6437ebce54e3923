"""`memento bench bandit | core | llm | prepare | parity | replay-scale | soak`: parse options, run;
and the options shared by several bench commands (`JSON_ONLY`, `TRACKING_URI`).

The measuring code lives in the sibling modules (no typer there); heavy imports stay inside
the commands so that `memento --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = [
    "JSON_ONLY",
    "TRACKING_URI",
    "bandit_command",
    "core_command",
    "llm_command",
    "parity_command",
    "prepare_command",
    "replay_scale_command",
    "soak_command",
]

# --- options shared by the bench commands (typer copies an option at each use) -----------
JSON_ONLY = typer.Option(False, "--json", help="Print only the JSON payload on stdout.")
"""`--json`: the result as one JSON object on stdout, nothing else (tables and logs elsewhere)."""
TRACKING_URI = typer.Option(None, "--tracking-uri", help="MLflow URI.")
"""`--tracking-uri`: the MLflow store a command tracks its run in (None: MLflow's default)."""


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
    from bench.bandit import BanditConfig, run_bandit

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
    from bench.core import run_core

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
    from bench.llm import bench_llm

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
    rows: str = typer.Option("1000000,10000000", "--rows", help="Comma-separated log row counts."),
    engines: str = typer.Option(
        "local", "--engines", help="Comma-separated prepare engines to time: local, ray."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Ray engine: tasks at once (default: all CPUs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Scratch folder for outputs (default: a temporary folder)."
    ),
) -> None:
    """Rows/s and peak RSS of `data prepare` per engine vs a bare polars scan of the same files."""
    from rich.console import Console

    from bench.prepare import ENGINES, bench_prepare

    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    if not chosen or set(chosen) - set(ENGINES) or len(set(chosen)) != len(chosen):
        raise typer.BadParameter(f"{engines!r}: a comma-separated subset of {', '.join(ENGINES)}")
    err = None if as_json else Console(stderr=True)
    results = bench_prepare(_ints(rows), chosen, workers, work_dir, err)
    if err is not None:
        for run in results:
            err.print(_prepare_table(run, chosen))
    typer.echo(json.dumps({"benchmark": "prepare", "runs": results}))


def _prepare_table(run: dict[str, object], engines: list[str]) -> object:
    """One size's measurements side by side: a column per scan/engine, a row per figure."""
    from rich.table import Table

    cols = ["scan_baseline", *engines]
    title = f"prepare: {run['rows']:,} log rows, {run['log_mb']} MB"
    if "ray_over_local_rows_per_s" in run:
        title += f"; ray/local rows/s {run['ray_over_local_rows_per_s']}x"
        title += f", same report: {run['same_report']}"
    table = Table(title=title)
    table.add_column("figure")
    for c in cols:
        table.add_column(c, justify="right")
    figures = {
        "rows/s": "rows_per_s",
        "seconds": "seconds",
        "pass 1 s": "pass1_s",
        "pass 2 s": "pass2_s",
        "Ray start s": "ray_start_s",
        "driver peak RSS MB": "driver_peak_rss_mb",
        "Ray worker peak RSS MB": "worker_peak_rss_mb",
        "all processes peak RSS MB (sum)": "all_processes_peak_rss_sum_mb",
    }
    for label, key in figures.items():
        cells = []
        for c in cols:
            m = run[c]
            v = m.get(key, "-") if isinstance(m, dict) else "-"
            cells.append(f"{v:,}" if isinstance(v, int) else str(v))
        table.add_row(label, *cells)
    table.add_row("time / scan", "1.0", *(str(run[f"{e}_over_scan_time"]) for e in engines))
    table.add_row("rows/s / scan", "1.0", *(str(run[f"{e}_over_scan_rows_per_s"]) for e in engines))
    return table


def parity_command(
    dataset: str = typer.Option(
        "synthetic", "--dataset", help="synthetic | tmall-sample | movielens-100k | tianchi:PATH."
    ),
    decisions: int = typer.Option(0, "--decisions", help="Held-out decisions to compare (0: all)."),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Serve this model bundle instead of training one."
    ),
    text_encoder: str | None = typer.Option(
        None, "--text-encoder", help="use | hashing (64-d; default: the model's, use)."
    ),
    max_train_decisions: int = typer.Option(400, help="Training decisions per pass."),
    iterations: int = typer.Option(1, help="Training passes."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
    policy: str = typer.Option(
        "items", "--policy", help="items (the items scorer's soft-q) | seq (sequence policy)."
    ),
    seq_epochs: int | None = typer.Option(
        None, "--seq-epochs", help="With --policy seq: training epochs (default: its setting's)."
    ),
) -> None:
    """Offline evaluator vs the real HTTP service on the same held-out decisions."""
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from bench.parity import ParityConfig, run_parity
    from bench.replay.config import SeqMethodConfig
    from training.config import TrainConfig

    if policy not in ("items", "seq"):
        raise typer.BadParameter(f"unknown policy {policy!r}: items | seq")
    seq = None
    if policy == "seq":
        seq = SeqMethodConfig()
        seq = seq if seq_epochs is None else replace(seq, epochs=seq_epochs)

    train = TrainConfig(
        data=dataset,
        max_train_decisions=max_train_decisions,
        iterations=iterations,
        llm_fraction=0.0,
    )
    if text_encoder is not None:  # hashing: 64-d, fast
        text = replace(train.core.text, kind=text_encoder, dim=64)  # type: ignore[arg-type]
        train = replace(train, core=replace(train.core, text=text))
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, advance: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.advance(tasks[label], advance)

        result = run_parity(ParityConfig(train, decisions, bundle, seq=seq), progress)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['identical_lists']} of {result['decisions']} lists identical "
        f"({result['dataset']}, {result['cold_decisions']} cold) in {result['total_s']} s"
    )
    for m in result["mismatches"]:  # `bench.parity.score_gap`
        typer.echo(
            f"  event {m['event']} position {m['position']}: offline {m['items'][0]} before "
            f"{m['items'][1]} (gap {m['gap_offline']}), served gap {m['gap_served']}"
        )


def replay_scale_command(ctx: typer.Context) -> None:
    """Replay decisions/s, local vs Ray with 1 and 2 workers, side by side (options:
    --passes, --max-decisions, --workers 1,2, --text-encoder, --json)."""
    from bench.replay_scale import main

    main(list(ctx.args))


def soak_command(
    minutes: float = typer.Option(1.0, "--minutes", help="Duration of the traffic."),
    concurrency: int = typer.Option(8, "--concurrency", help="Client threads."),
    url: str | None = typer.Option(
        None, "--url", help="Target a running service (default: start one on a fresh store)."
    ),
    db: Path | None = typer.Option(
        None, "--db", help="With --url: the service's SQLite store (exactly-once check)."
    ),
    pid: int | None = typer.Option(
        None, "--pid", help="With --url: the service's process (default: found by its port)."
    ),
    out: Path = typer.Option(Path("runs/soak"), "--out", help="Folder for soak.json, soak.png."),
    seed: int = typer.Option(0, "--seed", help="Seed of the clients' choices."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
) -> None:
    """Recommend, feedback (repeated keys), events, case reads and erasure from concurrent
    clients; statuses, latency over time, memory slope, learner lag, exactly-once check."""
    from bench.soak import SoakConfig, run_soak

    cfg = SoakConfig(
        minutes=minutes,
        concurrency=concurrency,
        url=url,
        db_path=db,
        pid=pid,
        seed=seed,
        out_dir=out,
    )
    result = run_soak(cfg)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    for route, st in result.routes.items():
        typer.echo(
            f"{route:16s} {st.calls:6d} calls  statuses {st.statuses}  p50 {st.p50_ms} ms  "
            f"p99 {st.p99_ms} ms"
        )
    typer.echo(
        f"5xx other than 503: {result.five_xx_not_503}; feedback 503 share "
        f"{result.share_503_feedback}; learner {result.learner}; RSS {result.rss_mb_start} -> "
        f"{result.rss_mb_end} MiB, second-half slope {result.rss_slope_mb_per_min_second_half} "
        f"MiB/min (floor {result.rss_floor_slope_mb_per_min_second_half}); store check "
        f"{result.store}; plot {result.plot}"
    )
