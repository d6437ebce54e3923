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
    workers: int | None = typer.Option(
        None,
        min=1,
        help="uvicorn worker processes and one learner process (>1 needs --store-url; "
        "default MEMENTO_WORKERS, else 1).",
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
    workers = workers or settings.workers
    if replicas > 1 and workers > 1:
        typer.echo("--replicas (Ray Serve) and --workers (uvicorn): choose one", err=True)
        raise typer.Exit(code=2)
    processes = f"{replicas} replicas" if replicas > 1 else f"{workers} workers"
    if max(replicas, workers) > 1 and not settings.store_url:
        typer.echo(
            f"refusing to start {processes} on the embedded SQLite store (one process "
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
    if max(replicas, workers) > 1:
        try:
            settings.check_startup()
        except InsecureSettingsError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=2) from exc
        if workers > 1:
            from serving.workers import serve_workers

            serve_workers(settings, workers, host or settings.host, port or settings.port)
            return
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


main = typer.Typer(add_completion=False)
main.command()(serve)

if __name__ == "__main__":
    main()
