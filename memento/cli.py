"""Root of the `memento` command.

Each package owns its sub-commands in its own module; this file only composes them.
Command modules keep heavy imports (torch, faiss, transformers, mlflow) inside the command
functions so that `memento --help` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

app = typer.Typer(
    name="memento",
    help="Memento-style recommender: soft-Q case retrieval feeding a frozen LLM.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(
    help="Benchmarks that print figures next to a baseline measured in the same run.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    """Memento-style recommender: soft-Q case retrieval feeding a frozen LLM."""
    from training.console import LOG_FORMAT, QuietLibraries

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:  # libraries reach the console from WARNING up
        handler.addFilter(QuietLibraries())


# --- product verbs ------------------------------------------------------------------------
from agent.cli import agent_app  # noqa: E402  (section-local import)
from data.cli import app as data_app  # noqa: E402
from serving.cli import serve as _serve  # noqa: E402
from training.cli import fit_command as _fit  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(agent_app, name="agent")
app.command("serve")(_serve)
app.command("fit")(_fit)

# --- experiments (the `bench` package; the product packages never import it) -------------
from bench import cli as _bench  # noqa: E402
from bench.online.cli import online_command as _bench_online  # noqa: E402
from bench.peers.cli import peers_command as _bench_peers  # noqa: E402
from bench.replay import cli as _replay  # noqa: E402
from bench.research import cli as _research  # noqa: E402
from bench.service import cli as _service  # noqa: E402

app.command("train")(_replay.train_command)  # the main job: fit, then the comparison table
for _name, _command in (
    ("prepare", _bench.prepare_command),
    ("bandit", _bench.bandit_command),
    ("core", _bench.core_command),
    ("llm", _bench.llm_command),
    ("parity", _bench.parity_command),
    ("replay", _replay.bench_replay),
    ("peers", _bench_peers),
    ("online", _bench_online),
    ("serving", _service.bench_serving),
    ("replicas", _service.bench_replicas),
    ("soak", _bench.soak_command),
):
    bench_app.command(_name)(_command)
bench_app.command(
    "replay-scale", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(_bench.replay_scale_command)
agent_app.command("bench")(_research.bench_command)
agent_app.command("family")(_research.family_command)
agent_app.command("family-bench")(_research.family_bench_command)
agent_app.command("tool-latency")(_research.tool_latency_command)


# --- logs: the service's logged lists for off-policy evaluation --------------------------
logs_app = typer.Typer(
    help="The service's logs (decisions, propensities, feedback), exported for evaluation.",
    no_args_is_help=True,
)
app.add_typer(logs_app, name="logs")


@logs_app.command("export")
def logs_export_command(
    fmt: str = typer.Option(
        "obp", "--format", help="obp: Open Bandit Pipeline's bandit_feedback as one .npz."
    ),
    db: Path | None = typer.Option(
        None, "--db", help="The service's SQLite store (MEMENTO_DB_PATH)."
    ),
    store_url: str | None = typer.Option(
        None,
        "--store-url",
        help="Instead of --db: the PostgreSQL store of `memento serve --replicas N` "
        "(MEMENTO_STORE_URL; needs --bundle).",
    ),
    out: Path = typer.Option(..., "--out", help="File to write, e.g. feedback.npz."),
    bundle: Path | None = typer.Option(
        None,
        "--bundle",
        help="Served model bundle (catalogue, item vectors, reward config); default: "
        "<db folder>/checkpoints/snapshot.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON summary."),
) -> None:
    """One record per (decision, shown position) with a logged propensity; the positions
    left out are counted by reason (see serving/logs_export.py for the layout)."""
    from serving.logs_export import export_logs

    try:
        summary = export_logs(db, out, fmt, bundle, store_url)
    except ValueError as exc:  # bad input, with what to do (`export_logs`)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
        return
    left = ", ".join(f"{k}={v}" for k, v in summary.left_out.items()) or "none"
    typer.echo(
        f"wrote {summary.records} records ({summary.decisions} of {summary.decisions_read} "
        f"decisions, {summary.rewarded} rewarded, {summary.n_actions} actions, len_list "
        f"{summary.len_list}) to {summary.out}; position records left out: {left}"
    )
