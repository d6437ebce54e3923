"""`memento bench peers`: the RecBole peers alone, on the split `memento bench replay` uses.

Trains (or reads from the shared cache) each peer with early stopping and prints, per peer,
the epochs run, the best epoch, the valid NDCG@10 curve and RecBole's own test NDCG@10. The
cache is the one `memento bench replay` reads, so running this first makes the replay's peers
free. Heavy imports stay inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

__all__ = ["peers_command", "peers_summary"]

LOG_NAME = "memento.log"
"""Log file of a run, in its output folder: library output and the INFO log go there."""


def peers_summary(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per peer: RecBole's test NDCG@10 (mean, std) and per seed the epochs run, the 1-based
    best epoch, seconds per epoch, the valid NDCG@10 curve and the seed's test NDCG@10."""
    out: dict[str, dict[str, Any]] = {}
    for name, res in runs.items():
        out[name] = {
            "ndcg@10": res["ndcg@10"],
            "ndcg@10_std": res["ndcg@10_std"],
            "n_test": res["n_test"],
            "n_test_evaluated": res["n_test_evaluated"],
            "per_seed": {
                seed: {
                    "epochs": ep["run"],
                    "best_epoch": ep["best"],
                    "epoch_s": round(ep["epoch_s"], 2),
                    "valid_curve": [round(v, 5) for v in res["curves"][seed]],
                    "ndcg@10": res["per_seed"][seed]["ndcg@10"],
                    "rows_ranked": sum(x is not None for x in res["lists"][seed]),
                }
                for seed, ep in res["epochs"].items()
            },
        }
    return out


def peers_command(
    dataset: str = typer.Option("tmall-sample", help="tmall-sample | movielens-100k."),
    seeds: str = typer.Option("0,1", help="Comma-separated seeds."),
    models: str = typer.Option("bpr,sasrec,gru4rec", help="Comma-separated: bpr, sasrec, gru4rec."),
    max_epochs: int | None = typer.Option(
        None, "--max-epochs", help="Most epochs per peer (default PEER_MAX_EPOCHS, 60)."
    ),
    patience: int | None = typer.Option(
        None, "--patience", help="Epochs without a new best valid NDCG@10 before stopping (3)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    output_dir: Path = typer.Option(Path("runs/bench-peers"), "--output-dir"),
) -> None:
    """RecBole peers (BPR, SASRec, GRU4Rec) with early stopping on the replay split."""
    from bench.peers.harness import PEER_MAX_EPOCHS, PEER_PATIENCE, peer_method, peer_workdir
    from training.console import log_to_file

    try:
        names = [peer_method(m) for m in models.split(",") if m.strip()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    epochs = max_epochs if max_epochs is not None else PEER_MAX_EPOCHS
    wait = patience if patience is not None else PEER_PATIENCE
    log_path = output_dir / dataset / LOG_NAME
    typer.echo(
        f"peers {','.join(names)} on {dataset}, seeds {seed_list}, at most {epochs} epochs, "
        f"patience {wait}\nlog: {log_path}\nRecBole job log: {peer_workdir(dataset) / 'job.log'}",
        err=True,
    )
    with log_to_file(log_path):
        from bench.peers.harness import peer_runs
        from training.config import TrainConfig
        from training.prepare import load_data, split_data

        cfg = TrainConfig(data=dataset)
        interactions, _items, _name = load_data(cfg)
        split = split_data(cfg, interactions)
        runs = peer_runs(split, dataset, names, seed_list, epochs, wait)
    summary = peers_summary(runs)
    if as_json:
        typer.echo(json.dumps({"dataset": dataset, "seeds": seed_list, "results": summary}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"RecBole peers: {dataset}")
    for col in ("peer", "seed", "epochs", "best", "s/epoch", "best valid", "test ndcg@10"):
        table.add_column(col)
    for name, res in summary.items():
        for seed, r in res["per_seed"].items():
            curve = r["valid_curve"]
            best = f"{curve[r['best_epoch'] - 1]:.4f}" if r["best_epoch"] else "-"
            table.add_row(
                name,
                seed,
                str(r["epochs"]),
                str(r["best_epoch"]),
                f"{r['epoch_s']:.1f}",
                best,
                f"{r['ndcg@10']:.4f}",
            )
    Console().print(table)
