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


# --- data layer (issue 2) ----------------------------------------------------------------
from data.cli import app as data_app  # noqa: E402
from training.bench.cli import prepare_command as _bench_prepare  # noqa: E402

app.add_typer(data_app, name="data")
bench_app.command("prepare")(_bench_prepare)
# --- core (issue 3) ----------------------------------------------------------------------
from training.bench.cli import bandit_command as _bench_bandit  # noqa: E402
from training.bench.cli import core_command as _bench_core  # noqa: E402

bench_app.command("bandit")(_bench_bandit)
bench_app.command("core")(_bench_core)
# --- frozen LLM (issue 4) ----------------------------------------------------------------
from training.bench.cli import llm_command as _bench_llm_command  # noqa: E402

bench_app.command("llm")(_bench_llm_command)
# --- training (issue 5) ------------------------------------------------------------------
from training.cli import bench_replay as _bench_replay  # noqa: E402
from training.cli import train_command as _train_command  # noqa: E402

app.command("train")(_train_command)
bench_app.command("replay")(_bench_replay)
# --- RecBole peers alone (their cache is the one bench replay reads) ----------------------
from training.peers.cli import peers_command as _bench_peers  # noqa: E402

bench_app.command("peers")(_bench_peers)
# --- online learning, measured (simulators, the real service, OBP) -------------------------
from training.online.cli import online_command as _bench_online  # noqa: E402

bench_app.command("online")(_bench_online)
# --- serving (issue 6) -------------------------------------------------------------------
from serving.cli import bench_replicas as _bench_replicas  # noqa: E402  (section-local import)
from serving.cli import bench_serving as _bench_serving  # noqa: E402  (section-local import)
from serving.cli import serve as _serve  # noqa: E402  (section-local import by design)

app.command("serve")(_serve)
bench_app.command("serving")(_bench_serving)
bench_app.command("replicas")(_bench_replicas)


# --- soak: the service under sustained concurrent traffic (issue 25) ----------------------
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


bench_app.command("soak")(soak_command)
# --- research agent (issue 7) ------------------------------------------------------------
from agent.cli import agent_app  # noqa: E402  (section-local import)

app.add_typer(agent_app, name="agent")


# --- one recommender: parity of offline evaluation and serving ---------------------------
def parity_command(
    dataset: str = typer.Option(
        "synthetic", "--dataset", help="synthetic | tmall-sample | movielens-100k | tianchi:PATH."
    ),
    decisions: int = typer.Option(0, "--decisions", help="Held-out decisions to compare (0: all)."),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Serve this model bundle instead of training one."
    ),
    text_encoder: str = typer.Option("use", "--text-encoder", help="use | hashing."),
    max_train_decisions: int = typer.Option(400, help="Training decisions per pass."),
    iterations: int = typer.Option(1, help="Training passes."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON result."),
) -> None:
    """Offline evaluator vs the real HTTP service on the same held-out decisions."""
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from memento.parity import ParityConfig, run_parity
    from training.config import TrainConfig

    train = TrainConfig(
        data=dataset,
        text_encoder=text_encoder,  # type: ignore[arg-type]
        text_dim=64 if text_encoder == "hashing" else 512,
        max_train_decisions=max_train_decisions,
        iterations=iterations,
        llm_fraction=0.0,
    )
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, advance: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.advance(tasks[label], advance)

        result = run_parity(ParityConfig(train, decisions, bundle), progress)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['identical_lists']} of {result['decisions']} lists identical "
        f"({result['dataset']}, {result['cold_decisions']} cold) in {result['total_s']} s"
    )


bench_app.command("parity")(parity_command)


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
    db: Path = typer.Option(..., "--db", help="The service's SQLite store (MEMENTO_DB_PATH)."),
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
        summary = export_logs(db, out, fmt, bundle)
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


# --- scale-out (issue 17) ----------------------------------------------------------------
@bench_app.command(
    "replay-scale", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def _bench_replay_scale(ctx: typer.Context) -> None:
    """Replay decisions/s, local vs Ray with 1 and 2 workers, side by side (options:
    --passes, --max-decisions, --workers 1,2, --text-encoder, --json)."""
    from training.bench.replay_scale import main

    main(list(ctx.args))
