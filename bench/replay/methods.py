"""The peers of a comparison, scored under the rules every method shares.

- `popularity`: `bench.replay.baselines` fitted on the training rows; `item-knn`, `ease`,
  `rp3beta`: tuned on validation (`bench.replay.tuning`), refitted on the training rows.
- `causal-popularity`: (time-decayed) counts of the events before the decision, the list the
  memory modes give cold users (their share of a leave-last-out test is large: compare
  against this too).
- `recbole-bpr`, `recbole-sasrec`, `recbole-gru4rec`: `bench.peers.recbole_runner` on the
  identical split (full ranking over all items; no reward, no curve).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from bench.replay.config import CompareConfig
from training.config import TrainConfig
from training.evaluate import eval_decisions, list_metrics
from training.modes import MethodResult
from training.replay_env import Decision, ReplayParts, SplitParts
from training.replay_world import ReplayWorld

__all__ = ["baseline_decisions", "run_baseline", "run_peers", "training_rows"]


def _causal_top(
    world: ReplayWorld, parts: ReplayParts, cfg: TrainConfig, j: int, ex: set[int]
) -> list[int]:
    """The served parts' popularity list at decision j (events strictly before it), `ex`
    (item ids) removed: every method's cold-user list and every short list's fill."""
    rows = {world.item_index[i] for i in ex if i in world.item_index}
    top = parts.popularity.top(cfg.core.recommend.top_n, float(world.ts[j]), rows)
    return [int(world.item_ids[r]) for r in top]


def baseline_decisions(
    world: ReplayWorld,
    parts: ReplayParts,
    cfg: TrainConfig,
    rank: Callable[[int, list[int], set[int]], list[int] | None],
) -> list[Decision]:
    """Score `rank(event, history items, exclude)` lists on the evaluated decisions under the
    rules every method shares: history = the user's earlier rows in split order
    (`ReplayWorld.history`, docs/protocol.md); its items excluded when the model's `exclude_seen`; a
    cold user (no earlier event) or a row the ranker cannot score (None) gets the causal
    popularity list; a short list is filled from it (lists as long as the model's `top_n`)."""
    decisions = []
    rc = cfg.core.recommend
    for j in eval_decisions(world, cfg.max_eval_decisions, 0):
        j = int(j)
        hist = [int(world.item[e]) for e in world.history[j]]
        ex = set(hist) if rc.exclude_seen else set()
        ranked = rank(j, hist, ex) if world.has_history[j] else None
        items = [i for i in (ranked or []) if i not in ex][: rc.top_n]
        if len(items) < rc.top_n:
            have = set(items)
            items += [i for i in _causal_top(world, parts, cfg, j, ex | have)][
                : rc.top_n - len(items)
            ]
        r, _ = world.list_reward(j, items[: cfg.reward_top], cfg.core.reward)
        decisions.append(Decision(j, items, int(world.item[j]), r, False, not world.has_history[j]))
    return decisions


def run_baseline(
    world: ReplayWorld, parts: SplitParts, cfg: TrainConfig, name: str, split: Any
) -> MethodResult:
    """popularity fitted on the training rows; item-knn / ease / rp3beta tuned on validation
    (`bench.replay.tuning`, the chosen setting and its grid in `info`), then refitted on the
    training rows (train + valid under leave-last-out); causal-popularity counts every event
    before each decision (every method's cold-user list)."""
    from bench.replay.baselines import Popularity
    from bench.replay.tuning import TUNED_PEERS, TuningConfig, build_peer, tune_peer
    from bench.replay.tuning import validation_frames as frames

    train_rows = training_rows(cfg, split)
    info: dict[str, Any] = {}
    if name == "causal-popularity":
        decisions = baseline_decisions(world, parts.served, cfg, lambda j, h, ex: None)
    else:
        model: Any
        if name == "popularity":
            model = Popularity(world.item_ids)
        elif name in TUNED_PEERS:
            tcfg = TuningConfig()
            tuned = tune_peer(
                name, *frames(split), tcfg, world.item_ids, cfg.core.recommend.exclude_seen
            )
            info = {
                "setting": tuned.setting,
                "valid_ndcg@10": tuned.valid_ndcg,
                "valid_rows": tuned.n_valid,
                "budget": tcfg.budget,
                "grid": tuned.curve,
            }
            model = build_peer(name, tuned.setting, world.item_ids)
        else:
            raise ValueError(f"unknown baseline {name!r}")
        model.fit(train_rows)
        decisions = baseline_decisions(
            world,
            parts.served,
            cfg,
            lambda j, hist, ex: model.rank(
                int(world.user[j]), hist, cfg.core.recommend.top_n + len(ex), ex
            ),
        )
    metrics = list_metrics(world, decisions)
    res = MethodResult(name, 0, metrics, decisions=decisions)
    res.info = info
    return res


def training_rows(cfg: TrainConfig, split: Any) -> pl.DataFrame:
    """The rows a fitted baseline or peer learns from: train (+ valid under leave-last-out)."""
    return pl.concat([split.train, split.valid]) if cfg.split == "leave-last-out" else split.train


def _lookup(
    by_event: dict[int, list[int] | None],
) -> Callable[[int, list[int], set[int]], list[int] | None]:
    return lambda j, _hist, _ex: by_event.get(j)


def run_peers(
    world: ReplayWorld, parts: SplitParts, cfg: CompareConfig, split: Any, names: list[str]
) -> dict[str, list[MethodResult]]:
    """RecBole peers (`bench.peers.harness.peer_runs`, cached per model, seed and split) on
    the identical split; their raw rankings of every test row are scored here under the shared
    rules (`baseline_decisions`), one `MethodResult` per seed, with epochs and validation
    curves in `info`."""
    from bench.peers.harness import peer_runs

    runs = peer_runs(
        split,
        cfg.train.data,
        [n.removeprefix("recbole-") for n in names],
        cfg.peer_seeds,
        cfg.peer_max_epochs,
        cfg.peer_patience,
    )
    rows_of = world.held_out_events(split.test)
    out: dict[str, list[MethodResult]] = {}
    for name in names:
        run = runs[name]
        for seed, lists in run["lists"].items():
            by_event: dict[int, list[int] | None] = {
                int(e): lst for e, lst in zip(rows_of, lists, strict=True)
            }
            decisions = baseline_decisions(world, parts.served, cfg.train, _lookup(by_event))
            res = MethodResult(name, int(seed), list_metrics(world, decisions), decisions=decisions)
            res.info = {
                "epochs": run.get("epochs", {}).get(seed),
                "valid_curve": run.get("curves", {}).get(seed),
            }
            out.setdefault(name, []).append(res)
    return out
