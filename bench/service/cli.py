"""`memento bench serving | replicas`: load benchmarks of the service (heavy imports inside)."""

from __future__ import annotations

import typer

__all__ = ["bench_replicas", "bench_serving"]


def bench_serving(
    cases: int = typer.Option(100_000, help="Synthetic cases seeded into the bank."),
    users: int = typer.Option(2_000, help="Synthetic users with histories."),
    requests: int = typer.Option(2_000, help="Requests per phase (bounded)."),
    concurrency: int = typer.Option(8, help="In-flight HTTP requests."),
    max_seconds: float = typer.Option(60.0, help="Wall-clock bound per phase."),
    index: str = typer.Option("hnsw", help="faiss index of the bank: hnsw or flat."),
    llm: str = typer.Option("smollm2-135m", help="LLM of the ranking variant (none: skip)."),
    llm_requests: int = typer.Option(100, help="Requests per phase with LLM ranking."),
    scorer: str | None = typer.Option(
        None, help="Fresh model's scorer: items or blend (default: the online preset's)."
    ),
    baseline_tree: str | None = typer.Option(
        None, help="Checkout of another commit whose server runs the same HTTP phases beside."
    ),
    workers: int = typer.Option(
        1, min=1, help=">1: also `memento serve --workers N` on a PostgreSQL copy of the store."
    ),
    store_url: str | None = typer.Option(
        None, help="PostgreSQL server of --workers (default MEMENTO_TEST_PG_URL, else throwaway)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="JSON only on stdout (what the command prints in any case)."
    ),
) -> None:
    """Load-test `memento serve` on loopback next to the bare core call; prints JSON."""
    import json

    from bench.service.load import LoadConfig
    from bench.service.load import main as run

    cfg = LoadConfig(
        cases=cases,
        users=users,
        requests=requests,
        concurrency=concurrency,
        max_seconds=max_seconds,
        index=index,
        llm=llm,
        llm_requests=llm_requests,
        fresh_scorer=scorer,
        baseline_tree=baseline_tree,
        workers=workers,
        store_url=store_url,
    )
    typer.echo(json.dumps(run(cfg), indent=2))


def bench_replicas(
    cases: int = typer.Option(5_000, help="Synthetic cases seeded into the bank."),
    users: int = typer.Option(2_000, help="Synthetic users with histories."),
    requests: int = typer.Option(400, help="Requests per phase (bounded)."),
    concurrency: int = typer.Option(8, help="In-flight HTTP requests of the throughput phase."),
    max_seconds: float = typer.Option(60.0, help="Wall-clock bound per phase."),
    index: str = typer.Option("hnsw", help="faiss index of the bank: hnsw or flat."),
    store_url: str | None = typer.Option(
        None, help="PostgreSQL server (default MEMENTO_TEST_PG_URL, else a throwaway one)."
    ),
    machine_cores: int = typer.Option(0, help="Cores per machine of the projection (0: ours)."),
    feedback_per_request: float = typer.Option(1.0, help="Feedback per recommendation assumed."),
    as_json: bool = typer.Option(False, "--json", help="JSON only on stdout (table on stderr)."),
) -> None:
    """Plain `memento serve` vs Ray Serve with 1 and 2 replicas (no LLM), and a projection."""
    import json

    from bench.service.load import LoadConfig
    from bench.service.projection import format_table
    from bench.service.replicas import ReplicaBenchConfig
    from bench.service.replicas import main as run

    load = LoadConfig(
        cases=cases,
        users=users,
        requests=requests,
        concurrency=concurrency,
        max_seconds=max_seconds,
        index=index,
        llm="none",
    )
    result = run(
        ReplicaBenchConfig(
            load=load,
            store_url=store_url,
            machine_cores=machine_cores,
            feedback_per_request=feedback_per_request,
        )
    )
    typer.echo(format_table(result), err=as_json)
    typer.echo(json.dumps(result, indent=2))
