"""`memento serve [--host H --port P]`: run the service under uvicorn."""

from __future__ import annotations

import logging
import os

import typer


def serve(
    host: str | None = typer.Option(None, help="Bind address (default MEMENTO_HOST)."),
    port: int | None = typer.Option(None, help="Port (default MEMENTO_PORT)."),
    replicas: int = typer.Option(
        1, min=1, help="Replicas on Ray Serve sharing one learner (>1 needs --store-url)."
    ),
    store_url: str | None = typer.Option(
        None, help="PostgreSQL URL of the shared store (default MEMENTO_STORE_URL; else SQLite)."
    ),
) -> None:
    """Start the online recommender service; settings come from MEMENTO_* variables."""
    import uvicorn

    from serving.app import create_app
    from serving.errors import InsecureSettingsError
    from serving.settings import ServingSettings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("mlflow", "alembic", "faiss", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = ServingSettings(store_url=store_url) if store_url else ServingSettings()
    if replicas > 1 and not settings.store_url:
        typer.echo(
            f"refusing to start {replicas} replicas on the embedded SQLite store (one process "
            "only): pass --store-url postgresql://... or set MEMENTO_STORE_URL "
            "(scripts/postgres.sh start DIR prints one)",
            err=True,
        )
        raise typer.Exit(code=2)
    if settings.blas_threads > 0:
        # Before torch/faiss load: OpenMP threads started by request threads read this default
        # (a per-thread omp_set_num_threads does not reach them); 2 spinning OpenMP threads per
        # request thread cost 10x latency on a small shared machine.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(settings.blas_threads))
    if replicas > 1:
        try:
            settings.check_startup()
        except InsecureSettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=2) from exc
        from serving.ray_app import serve_until_signalled

        serve_until_signalled(settings, replicas, host or settings.host, port or settings.port)
        return
    try:
        app = create_app(settings)
    except InsecureSettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
    )


def bench_serving(
    cases: int = typer.Option(100_000, help="Synthetic cases seeded into the bank."),
    users: int = typer.Option(2_000, help="Synthetic users with histories."),
    requests: int = typer.Option(2_000, help="Requests per phase (bounded)."),
    concurrency: int = typer.Option(8, help="In-flight HTTP requests."),
    max_seconds: float = typer.Option(60.0, help="Wall-clock bound per phase."),
    index: str = typer.Option("hnsw", help="faiss index of the bank: hnsw or flat."),
    llm: str = typer.Option("smollm2-135m", help="LLM of the ranking variant (none: skip)."),
    llm_requests: int = typer.Option(100, help="Requests per phase with LLM ranking."),
) -> None:
    """Load-test `memento serve` on loopback next to the bare core call; prints JSON."""
    import json

    from serving.loadtest import LoadConfig
    from serving.loadtest import main as run

    cfg = LoadConfig(
        cases=cases,
        users=users,
        requests=requests,
        concurrency=concurrency,
        max_seconds=max_seconds,
        index=index,
        llm=llm,
        llm_requests=llm_requests,
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

    from serving.bench_replicas import ReplicaBenchConfig, format_table
    from serving.bench_replicas import main as run
    from serving.loadtest import LoadConfig

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


main = typer.Typer(add_completion=False)
main.command()(serve)

if __name__ == "__main__":
    main()
