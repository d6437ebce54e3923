"""`memento fit`: the product's offline trainer (fit one policy, register it as `champion`).

`memento train` (the main job) is this fit followed by a comparison table; it lives with the
experiments (`bench.replay.cli`). Heavy imports stay inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["fit_command"]

_DATA_HELP = (
    "Dataset: synthetic (generated Tianchi-format data, the default), tianchi:PATH (a Tianchi "
    "Rec-Tmall folder), movielens-100k or tmall-sample (the shared Tianchi sample)."
)


def fit_command(
    data: str = typer.Option("synthetic", "--data", help=_DATA_HELP),
    iterations: int = typer.Option(3, help="Training passes over the training period."),
    seed: int = typer.Option(0, help="Seed of the learner and of the decision subsample."),
    max_decisions: int = typer.Option(
        400, "--max-decisions", help="Cap on training decisions per pass (0 = all)."
    ),
    text_encoder: str | None = typer.Option(
        None, "--text-encoder", help="use | hashing (default: the model's, use)."
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow URI."),
    output_dir: Path = typer.Option(Path("runs/fit"), "--output-dir", help="Output folder."),
    no_register: bool = typer.Option(False, "--no-register", help="Skip model registration."),
    engine: str = typer.Option("local", "--engine", help="local | ray (replay actors)."),
    workers: int = typer.Option(2, "--workers", min=1, help="With --engine ray: replay actors."),
) -> None:
    """Fit the soft-q policy by offline replay, evaluate it, register it in MLflow."""
    from dataclasses import replace

    from rich.console import Console

    from training.config import TrainConfig
    from training.console import log_to_file
    from training.distributed.config import ENGINES, DistributedConfig

    if engine not in ENGINES:
        raise typer.BadParameter(f"unknown engine {engine!r}: {' | '.join(ENGINES)}")
    cfg = TrainConfig(
        data=data,
        iterations=iterations,
        max_train_decisions=max_decisions,
        tracking_uri=tracking_uri,
        output_dir=output_dir,
        register=not no_register,
    ).with_seed(seed)
    if text_encoder is not None:
        text = replace(cfg.core.text, kind=text_encoder)  # type: ignore[arg-type]
        cfg = replace(cfg, core=replace(cfg.core, text=text))
    console = Console()
    with console.status("fitting soft-q"), log_to_file(output_dir / "memento.log"):
        from training.fit import fit

        if engine == "ray":
            from training.distributed import ray_session

            with ray_session(DistributedConfig(workers=workers)) as runner:
                res = fit(cfg, memory_runner=runner)
        else:
            res = fit(cfg)
    r = res.results[0]
    curve = ", ".join(f"{v:.4f}" for v in r.curve)
    console.print(f"{res.prepared.name}: validation NDCG@10 by pass {curve}")
    console.print(f"test NDCG@10 {r.metrics['ndcg@10']:.4f} on {len(r.decisions)} rows")
    console.print(f"model: {res.paths['model']}  mlflow run: {res.run_id}", soft_wrap=True)
    console.print(f"registered version: {res.model_version}  ({res.elapsed_s:.1f} s)")
