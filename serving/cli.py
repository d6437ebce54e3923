"""`memento serve [--host H --port P]`: run the service under uvicorn."""

from __future__ import annotations

import typer


def serve(
    host: str | None = typer.Option(None, help="Bind address (default MEMENTO_HOST)."),
    port: int | None = typer.Option(None, help="Port (default MEMENTO_PORT)."),
) -> None:
    """Start the online recommender service; settings come from MEMENTO_* variables."""
    import uvicorn

    from serving.app import create_app
    from serving.errors import InsecureSettingsError
    from serving.settings import ServingSettings

    settings = ServingSettings()
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
