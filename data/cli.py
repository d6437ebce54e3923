"""`memento data ...`: prepare, synth and fetch commands."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Datasets: prepare raw files, generate synthetic data, fetch MovieLens.",
                  no_args_is_help=True)  # fmt: skip
fetch_app = typer.Typer(help="Download public datasets at run time (never committed).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(fetch_app, name="fetch")
err = Console(stderr=True)


class Engine(StrEnum):
    """Where the two log passes of `prepare` (parse + validate, de-duplicate + sort) run."""

    local = "local"
    ray = "ray"


@app.command("prepare")
def prepare(
    input_dir: Path = typer.Option(
        ...,
        "--input",
        help="Folder with the raw Tianchi files "
        "(official \\u0001 parts, possibly zipped, or the sample CSV/xlsx).",
    ),
    out_dir: Path = typer.Option(
        ..., "--out", help="Folder for interactions/items/reviews/rejects parquet and report.json."
    ),
    source: str = typer.Option("tianchi", "--source", help="Adapter; only `tianchi` for now."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    max_reject_fraction: float = typer.Option(
        0.01, "--max-reject-fraction", help="Exit 2 if rejected rows / rows read exceed this."
    ),
    keep_duplicates: bool = typer.Option(
        False, "--keep-duplicates", help="Keep exact duplicate log rows (still counted)."
    ),
    engine: Engine = typer.Option(
        Engine.local,
        "--engine",
        help="local: one process, two threads; ray: log ranges and day groups as parallel Ray "
        "tasks (same output).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Ray engine: tasks at once (default: all CPUs)."
    ),
) -> None:
    """Validate raw files into the canonical schema; every unusable row is counted by reason."""
    from data.tianchi import PrepareConfig, prepare_tianchi

    if source != "tianchi":
        raise typer.BadParameter(f"unknown source {source!r}; supported: tianchi")
    cfg = PrepareConfig(
        keep_duplicates=keep_duplicates,
        max_reject_fraction=max_reject_fraction,
        engine="ray" if engine is Engine.ray else "local",
        workers=workers,
    )
    with err.status(f"preparing {input_dir} -> {out_dir}"):
        report = prepare_tianchi(input_dir, out_dir, cfg)
    if as_json:
        typer.echo(report.to_json())
    else:
        err.print(
            f"read {report.rows_read:,} log rows, kept {report.rows_kept:,}, "
            f"dropped {report.duplicates_dropped:,} duplicates; {report.users:,} users, "
            f"{report.items:,} items, {report.time_min} .. {report.time_max}"
        )
    reasons = ", ".join(f"{k}={v}" for k, v in report.rejected.items() if v)
    if report.reject_fraction > max_reject_fraction:
        err.print(
            f"[red]error:[/] rejected fraction {report.reject_fraction:.4%} exceeds "
            f"--max-reject-fraction {max_reject_fraction:.4%}: {reasons} "
            f"(rows in {out_dir / 'rejects.parquet'})"
        )
        raise typer.Exit(2)
    if report.total_rejected:
        err.print(
            f"[yellow]warning:[/] {report.total_rejected:,} rows rejected "
            f"({report.reject_fraction:.4%}): {reasons}"
        )


@app.command("synth")
def synth(
    users: int = typer.Option(2_000, "--users", help="Number of users."),
    items: int = typer.Option(1_000, "--items", help="Number of items."),
    events: int = typer.Option(100_000, "--events", help="Distinct events (duplicates on top)."),
    seed: int = typer.Option(0, "--seed", help="Seed; same seed -> byte-identical files."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the Tianchi-format files."),
) -> None:
    """Generate Tianchi-format data with planted structure and ground_truth.json."""
    from data.synthetic import SynthConfig, generate_synthetic

    cfg = SynthConfig(users=users, items=items, events=events, seed=seed)
    with err.status(f"generating {events:,} events into {out_dir}"):
        generate_synthetic(cfg, out_dir)
    err.print(f"wrote {out_dir} (ground truth in {out_dir / 'ground_truth.json'})")


@fetch_app.command("movielens-100k")
def fetch_movielens(
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Output folder (default: <cache>/movielens-100k; cache from "
        "$MEMENTO_CACHE_DIR or <repo>/.cache).",
    ),
) -> None:
    """Download the recbole==1.2.1 wheel and convert its ML-100K files to canonical parquet."""
    from data.movielens import fetch_movielens_100k

    with err.status("fetching MovieLens-100K"):
        path = fetch_movielens_100k(out_dir)
    typer.echo(json.dumps({"path": str(path)}))
