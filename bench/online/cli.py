"""`memento bench online`: every method learning online on the same simulator seeds.

Runs seed by seed, method by method (`bench.online.bench.run_one`, each run cached as soon
as it ends, so an interrupted benchmark resumes with whole seeds done), then the off-policy
check on each soft-q run (`bench.online.ope`), then writes the payload JSON, the figures
and the table (`bench.online.report`) and tracks it all in MLflow. Heavy imports stay
inside the functions so that `memento --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from bench.cli import JSON_ONLY, TRACKING_URI

if TYPE_CHECKING:
    from bench.online.bench import OnlineConfig, Run

__all__ = ["online_command", "parse_seeds", "run_benchmark"]

log = logging.getLogger(__name__)

DEFAULT_SEEDS = (0, 1, 2)

RunProgress = Callable[[str, int, int | None], None]
"""Called with (method, seed, decisions done); None when the run came from the cache (the
same as `bench.online.runs.RunProgress`)."""


def parse_seeds(seed: Sequence[int] | None, seeds: str | None) -> tuple[int, ...]:
    """`--seed` values then `--seeds` ones, without repeats; (0, 1, 2) when neither is given.
    `ValueError` for a list that is not integers."""
    out: list[int] = list(seed or [])
    for part in (seeds or "").split(","):
        if part.strip():
            try:
                out.append(int(part))
            except ValueError:
                raise ValueError(
                    f"--seeds must be comma-separated integers, got {seeds!r}"
                ) from None
    return tuple(dict.fromkeys(out)) or DEFAULT_SEEDS


def _check(cfg: OnlineConfig) -> None:
    """`OnlineConfig.validate` plus the ranges of the settings it does not check."""
    cfg.validate()
    if not 0.0 <= cfg.shift_at < 1.0:
        raise ValueError(f"--shift-at must be in [0, 1), got {cfg.shift_at}")
    if cfg.updates_per_feedback < 0:
        raise ValueError(f"--updates-per-feedback must be >= 0, got {cfg.updates_per_feedback}")
    if cfg.ope_rounds <= 0:
        raise ValueError(f"--ope-rounds must be > 0, got {cfg.ope_rounds}")


def _clean(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists, keys strings."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def command_line(cfg: OnlineConfig) -> str:
    """The `memento bench online` command that reproduces `cfg`."""
    parts = [
        "memento", "bench", "online", "--simulator", cfg.simulator,
        "--interactions", str(cfg.interactions), "--seeds", ",".join(map(str, cfg.seeds)),
        "--methods", ",".join(cfg.methods), "--shift-at", str(cfg.shift_at),
        "--updates-per-feedback", str(cfg.updates_per_feedback), "--transport", cfg.transport,
        "--learn-every", str(cfg.learn_every),
        "--ope" if cfg.ope else "--no-ope", "--ope-rounds", str(cfg.ope_rounds),
        "--ope-model", cfg.ope_model,
    ]  # fmt: skip
    return shlex.join(parts)


def _ope_for_seed(cfg: OnlineConfig, run: Run, seed: int) -> dict[str, Any]:
    """`ope_check` of one soft-q run, cached beside the run (keyed by its database's stamp);
    {"error": message} when the check cannot run (the benchmark goes on)."""
    from bench.errors import OpeRunError
    from bench.online.ope import ope_check
    from bench.sim.registry import make_simulator

    work = cfg.workdir / "ope" / cfg.key("soft-q", seed)
    stamp = None
    if run.db is not None and run.db.is_file():
        st = run.db.stat()
        stamp = f"{st.st_mtime_ns}-{st.st_size}-r{cfg.ope_rounds}-{cfg.ope_model}"
    cache = work / "check.json"
    if stamp and cache.is_file():
        cached: dict[str, Any] = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return dict(cached["check"])
    try:
        ids, _ = make_simulator(cfg.simulator, seed).catalogue()
        model: Literal["ridge", "gbr"] = "gbr" if cfg.ope_model == "gbr" else "ridge"
        check = ope_check(
            run, work, rounds=cfg.ope_rounds, seed=seed, catalogue=ids, base_model=model
        )
    except (ValueError, OpeRunError) as exc:
        log.warning("off-policy check of soft-q seed %d: %s", seed, exc)
        return {"error": str(exc)}
    work.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(_clean({"stamp": stamp, "check": check})))
    return check


def run_benchmark(
    cfg: OnlineConfig, progress: RunProgress | None = None, jobs: int = 1
) -> dict[str, Any]:
    """Every (seed, method) run of `cfg` (an `OnlineConfig`), seeds outermost, `jobs` at a
    time (`bench.online.runs.run_all`), then the off-policy check of each soft-q run: the JSON
    payload (module docstring of `bench.online.bench`, plus "ope", "ope_summary", "runs",
    "commands", "wall_s")."""
    from bench.online.bench import summarise
    from bench.online.ope import ope_summary
    from bench.online.runs import run_all

    _check(cfg)
    t0 = time.perf_counter()
    runs: dict[str, dict[int, Run]] = {m: {} for m in cfg.methods}
    info: dict[str, dict[str, Any]] = {m: {} for m in cfg.methods}
    for (method, seed), done in run_all(cfg, jobs, progress).items():
        runs[method][seed] = done.run
        info[method][str(seed)] = {
            "cached": done.cached,
            "wall_s": round(done.wall_s, 2),
            "missing_pscores": done.run.trace.missing_pscores,
            **done.run.info,
        }
    payload = summarise(cfg, runs)
    commands = [command_line(cfg)]
    if cfg.ope and "soft-q" in runs:
        checks = {str(s): _ope_for_seed(cfg, r, s) for s, r in runs["soft-q"].items()}
        payload["ope"] = checks
        payload["ope_summary"] = ope_summary(checks)
        commands += [c["export_command"] for c in checks.values() if "export_command" in c]
    payload.update(
        methods=list(cfg.methods),
        updates_per_feedback=cfg.updates_per_feedback,
        transport=cfg.transport,
        learn_every=cfg.learn_every,
        ope_rounds=cfg.ope_rounds if cfg.ope else None,
        ope_model=cfg.ope_model if cfg.ope else None,
        runs=info,
        commands=commands,
        wall_s=round(time.perf_counter() - t0, 1),
    )
    return dict(_clean(payload))


def _write(
    payload: dict[str, Any], cfg: OnlineConfig, out: Path, track: bool, uri: str | None
) -> None:
    """Write the report and `results.json` under `out` (their paths go into the payload as
    "files"); with `track`, log it all to MLflow at `uri` (None: the default store)."""
    from bench.online.report import write_report

    files = write_report(payload, out)
    data = out / "results.json"
    payload["files"] = {k: str(v) for k, v in files.items()} | {"json": str(data)}
    data.write_text(json.dumps(payload, indent=1))
    files["json"] = data
    if track:
        from bench.online.tracking import track_online

        payload["mlflow_run_id"] = track_online(payload, cfg, files, uri)
        data.write_text(json.dumps(payload, indent=1))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def online_command(
    simulator: str = typer.Option("planted", "--simulator", help="planted | movielens."),
    interactions: int = typer.Option(20_000, "--interactions", help="Decisions per run."),
    seed: list[int] | None = typer.Option(None, "--seed", help="A seed (repeatable)."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds (default, with no --seed: 0,1,2)."
    ),
    methods: str | None = typer.Option(
        None,
        "--methods",
        help="Comma-separated subset of soft-q, non-parametric, tabular, no-memory, vw, random, "
        "oracle (default: all).",
    ),
    shift_at: float = typer.Option(
        0.5, "--shift-at", help="Fraction of the run after which tastes shift (0: never)."
    ),
    updates_per_feedback: int = typer.Option(
        2, "--updates-per-feedback", help="Gradient steps of the service's learner per feedback."
    ),
    transport: str = typer.Option(
        "in-process",
        "--transport",
        help="in-process: the served methods' service in this process, learning each outcome "
        "before the next decision; http: a uvicorn process per method, its learner thread "
        "keeping up as the machine allows.",
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        help="(method, seed) runs at a time, each in its own process (progress per finished "
        "run when > 1).",
    ),
    learn_every: int = typer.Option(
        1,
        "--learn-every",
        help="In process: the learner applies the queued outcomes before every k-th decision "
        "(1: no lag; k: a lag below k decisions and a k-th of the gradient steps).",
    ),
    ope: bool = typer.Option(
        True, "--ope/--no-ope", help="Off-policy check (OBP) on each soft-q run's logs."
    ),
    ope_rounds: int = typer.Option(
        5_000, "--ope-rounds", help="Last logged soft-q decisions the off-policy check uses."
    ),
    ope_model: str = typer.Option(
        "ridge",
        "--ope-model",
        help="The off-policy check's reward model (DM, DR's baseline): ridge (linear in state "
        "and item, no interaction) or gbr (gradient-boosted trees).",
    ),
    workdir: Path | None = typer.Option(
        None, "--workdir", help="Cache of finished runs and service databases."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder of the JSON, PNGs and table (default docs/online/<simulator>)."
    ),
    as_json: bool = JSON_ONLY,
    track: bool = typer.Option(True, "--track/--no-track", help="Track the run in MLflow."),
    tracking_uri: str | None = TRACKING_URI,
    url: str | None = typer.Option(
        None,
        "--url",
        help="Drive an already-running service (`memento serve`, "
        "MEMENTO_FRESH__RECOMMEND__SCORER=items) with one service method instead of starting "
        "fresh ones; never cached.",
    ),
    api_key: str = typer.Option("memento-dev-key", "--api-key", help="Write key (with --url)."),
    read_key: str = typer.Option(
        "memento-dev-read-key", "--read-key", help="Read key (with --url)."
    ),
) -> None:
    """Soft-q and its peers learning online on a simulator with a taste shift: reward, regret,
    recovery and paired CIs over seeds, plus an off-policy check of OBP on the soft-q logs."""
    import dataclasses

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

    from bench.errors import ServiceUnavailableError, UnknownSimulatorError
    from bench.online.bench import METHODS, OnlineConfig
    from training.console import log_to_file

    try:
        wanted = tuple(m.strip() for m in methods.split(",") if m.strip()) if methods else METHODS
        cfg = OnlineConfig(
            simulator=simulator,
            interactions=interactions,
            seeds=parse_seeds(seed, seeds),
            methods=wanted,
            shift_at=shift_at,
            updates_per_feedback=updates_per_feedback,
            transport=transport,
            learn_every=learn_every,
            ope=ope,
            ope_rounds=ope_rounds,
            ope_model=ope_model,
            service_url=url,
            write_key=api_key,
            read_key=read_key,
        )
        if workdir is not None:
            cfg = dataclasses.replace(cfg, workdir=workdir)
        _check(cfg)
        if jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
    except ValueError as exc:  # UnknownSimulatorError included
        raise _fail(str(exc)) from None
    out = out if out is not None else Path("docs") / "online" / simulator
    console = Console(file=sys.stderr)  # the real stderr: log_to_file takes sys.stderr over
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
    log_path = cfg.workdir / "logs" / f"online-{simulator}.log"
    payload: dict[str, Any] = {}
    error: str | None = None
    with (
        log_to_file(log_path),
        Progress(*columns, TimeElapsedColumn(), console=console, redirect_stderr=False) as bar,
    ):
        tasks: dict[tuple[str, int], TaskID] = {}

        def progress(method: str, s: int, done: int | None) -> None:
            key = (method, s)
            if key not in tasks:
                tasks[key] = bar.add_task(f"{method} seed {s}", total=cfg.interactions)
            if done is None:
                bar.update(
                    tasks[key],
                    completed=cfg.interactions,
                    description=f"{method} seed {s} (cached)",
                )
            elif done == cfg.interactions or done % 50 == 0:
                bar.update(tasks[key], completed=done)

        try:
            payload = run_benchmark(cfg, progress, jobs)
        except (ServiceUnavailableError, UnknownSimulatorError) as exc:
            error = f"{exc} (service logs under {cfg.workdir / 'services'})"
        else:
            _write(payload, cfg, out, track, tracking_uri)
    if error is not None:  # here: stderr is the console again
        raise _fail(error)
    if as_json:
        typer.echo(json.dumps(payload))
        return
    _print_summary(payload, console=Console())


def _print_summary(payload: dict[str, Any], console: Any) -> None:
    """The results table and where the files went."""
    from rich.table import Table

    table = Table(title=f"online: {payload['simulator']} ({payload['interactions']} decisions)")
    for col in ("method", "reward last 20%", "95% CI", "ratio to oracle", "cum. regret"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for m, r in payload["results"].items():
        lo, hi = r["reward_per_decision_last_20pct_ci"]
        ratio = r["ratio_to_oracle"]
        table.add_row(
            m,
            f"{r['reward_per_decision_last_20pct']:.4f}",
            f"[{lo:.4f}, {hi:.4f}]",
            "–" if ratio is None else f"{ratio:.3f}",
            f"{r['cumulative_regret']:.1f}",
        )
    console.print(table)
    for pol, s in payload.get("ope_summary", {}).items():
        console.print(f"off-policy check, {pol}: DR's CI covers the true value on "
                      f"{s['dr_covers']} of {s['seeds']} seeds")  # fmt: skip
    for name, path in payload.get("files", {}).items():
        console.print(f"{name}: {path}", soft_wrap=True)
    if payload.get("mlflow_run_id"):
        console.print(f"mlflow run: {payload['mlflow_run_id']}")
    console.print(f"elapsed: {payload['wall_s']} s")
