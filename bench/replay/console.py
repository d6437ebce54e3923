"""The replay comparison at the terminal: `run_with_progress` runs `compare` under progress bars
with library output and the INFO log in the run's log file; `print_result` prints its tables.
Shared by `memento train` and `memento bench replay` (`bench.replay.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LOG_NAME", "print_result", "run_with_progress"]

LOG_NAME = "memento.log"
"""Log file of a run, in its output folder: library output and the INFO log go there."""


def run_with_progress(cfg: Any, distributed: Any = None) -> Any:
    """`compare(cfg)` (a `CompareConfig`) under progress bars; logs, warnings and library output
    go to the log file. distributed: a `training.distributed.DistributedConfig` to train with
    the Ray engine."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from training.console import log_to_file

    tasks: dict[str, Any] = {}
    with (
        log_to_file(cfg.train.output_dir / LOG_NAME),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            redirect_stderr=False,  # stderr belongs to the log file meanwhile
        ) as bar,
    ):
        from bench.replay.compare import (
            compare as train,  # inside: what its imports log goes to the file
        )

        def cb(label: str, advance: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.advance(tasks[label], advance)

        if distributed is not None:
            from training.distributed import ray_session

            with ray_session(distributed) as runner:
                return train(cfg, progress=cb, memory_runner=runner)
        return train(cfg, progress=cb)


def print_result(result: Any, log: Path | None = None, console: Any = None) -> None:
    """The results table(s), at most 100 columns wide, then where everything was written."""
    from rich.console import Console

    from bench.report import aggregate, rich_tables

    console = console or Console()
    cols = ["hr@5", "hr@10", "hr@20", "ndcg@10", "mrr", "reward_per_decision", "coverage@10"]
    title = f"replay: {result.dataset}"
    summary = aggregate(result.per_seed)
    for table in rich_tables(summary, cols, title=title, width=min(console.width, 100)):
        console.print(table)
    if getattr(result, "paired", None):
        console.print("soft-q minus each method, NDCG@10 on the same test rows (95% paired CI):")
        for m, p in result.paired.items():
            lo, hi = p["ci"]
            console.print(f"  {m:<18} {p['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    for name, path in result.paths.items():
        console.print(f"{name}: {path}", soft_wrap=True)
    console.print(f"mlflow run: {result.run_id}  model version: {result.model_version}")
    if log is not None:
        console.print(f"log: {log}", soft_wrap=True)
    console.print(f"elapsed: {result.elapsed_s:.1f} s")
