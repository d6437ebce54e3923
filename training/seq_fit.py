"""Training of the sequence soft-Q model (`recsys.rec.seq`) with the SQN loss (`recsys.rl.sqn`).

Every transition of every training sequence is replayed once per epoch, in shuffled batches of
left-padded windows (`recsys.rec.seq.batch.windows`); one forward pass of the encoder gives the
states of all positions of a window (causal), the target copy gives the next states, and the
supervised, TD and conservative terms are summed (`sqn_loss`). After each epoch an optional
`evaluate(model)` callback (validation) is recorded: the curve is returned whole, no early stop.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from recsys.config import RewardConfig
from recsys.rec.reward import action_reward
from recsys.rec.seq.batch import ACTION_INDEX, SeqBatch, UserSequence, windows
from recsys.rec.seq.config import SeqModelConfig
from recsys.rec.seq.model import SeqQModel
from recsys.records import Action
from recsys.rl.learner import polyak_update
from recsys.rl.sqn import SQNConfig, next_item_ce, sqn_loss

__all__ = ["SeqFitConfig", "SeqFitResult", "fit_seq", "sequences_from_frame", "train_step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeqFitConfig:
    """Settings of one training run."""

    model: SeqModelConfig
    """Encoder and heads (its `n_items` is the catalogue size)."""
    sqn: SQNConfig = field(default_factory=SQNConfig)
    """Loss weights and soft-Q constants."""
    epochs: int = 20
    """Passes over all training transitions."""
    batch_size: int = 64
    """Windows per optimiser step."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    clip: float = 1.0
    """Gradient-norm clip."""
    seed: int = 0
    """Seeds torch (init, dropout) and the batch order."""
    threads: int = 1
    """torch CPU threads."""


@dataclass
class SeqFitResult:
    """What a run returns."""

    model: SeqQModel
    """The trained online model (eval mode)."""
    curve: list[dict[str, float]]
    """Per epoch: mean training losses and whatever `evaluate` returned."""
    train_seconds: float
    """Wall-clock seconds spent in optimiser steps (evaluation excluded)."""
    train_cpu_seconds: float
    """CPU seconds of this process in those steps (what a shared machine does not inflate)."""


def sequences_from_frame(
    frame: pl.DataFrame, item_index: Mapping[int, int], reward: RewardConfig
) -> dict[int, UserSequence]:
    """Per user: the rows of `frame` in split order (ts, then frame order), as a UserSequence.

    `frame` has user_id, item_id, action, ts; `item_index` maps item ids to 1..N; the reward
    of a row is `action_reward(action, reward)`."""
    df = frame.select("user_id", "item_id", "action", "ts").sort(
        ["user_id", "ts"], maintain_order=True
    )
    rew = {a: action_reward(Action(a), reward) for a in ACTION_INDEX}
    users = df["user_id"].to_numpy()
    items = np.array([item_index[int(i)] for i in df["item_id"].to_list()], np.int64)
    acts = [str(a) for a in df["action"].to_list()]
    act_idx = np.array([ACTION_INDEX[a] for a in acts], np.int64)
    rewards = np.array([rew[a] for a in acts], np.float32)
    ts = df["ts"].dt.epoch("us").to_numpy().astype(np.float64) / 1e6
    out: dict[int, UserSequence] = {}
    bounds = np.flatnonzero(np.diff(users)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(users)], strict=True):
        out[int(users[lo])] = UserSequence(items[lo:hi], act_idx[lo:hi], ts[lo:hi], rewards[lo:hi])
    return out


def train_step(
    model: SeqQModel,
    target: SeqQModel,
    batch: SeqBatch,
    cfg: SQNConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch: CE alone when q_weight and cql_weight are 0, else the SQN loss with
    next-state values from `target` (states shifted by one position in the same window)."""
    has = batch.has_target  # (B, L)
    h = model(batch)[has]  # (P, d)
    if cfg.q_weight == 0 and cfg.cql_weight == 0:
        return next_item_ce(model.heads(h).logits, batch.targets[has])
    heads = model.heads(h)
    nxt = torch.zeros_like(has)
    nxt[:, 1:] = has[:, :-1]  # s_{t+1} sits one position right of s_t, same row order
    prior = None
    with torch.no_grad():
        ht = target(batch)[nxt]
        if cfg.prior:  # the soft value of s_{t+1} under the target's supervised head
            th = target.heads(ht)
            nq1, nq2, prior = th.q1, th.q2, torch.log_softmax(th.logits, dim=-1)
        else:
            nq1, nq2 = target.q_values(ht)
    return sqn_loss(
        heads.logits,
        heads.q1,
        heads.q2,
        nq1,
        nq2,
        batch.targets[has],
        batch.rewards[has],
        cfg,
        prior,
    )


def _batches(lengths: np.ndarray, size: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """Window rows in batches of similar length (sorted by length after a shuffle, so equal
    lengths mix), the batches in random order."""
    order = _shuffled_sort(lengths, rng)
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    return [torch.from_numpy(chunks[j]) for j in rng.permutation(len(chunks))]


def _shuffled_sort(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices sorted by length, random among equal lengths."""
    perm = rng.permutation(len(lengths))
    return perm[np.argsort(lengths[perm], kind="stable")]


def _trim(batch: SeqBatch) -> SeqBatch:
    """Drop the leading columns that are padding in every row (left padding keeps the end)."""
    first = int(batch.valid.any(0).nonzero()[0])
    return SeqBatch(*(getattr(batch, f)[:, first:] for f in batch.__dataclass_fields__))


def fit_seq(
    cfg: SeqFitConfig,
    sequences: list[UserSequence],
    evaluate: Callable[[SeqQModel], dict[str, float]] | None = None,
) -> SeqFitResult:
    """Train a fresh model on every transition of `sequences` for `cfg.epochs` epochs."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data = windows(sequences, cfg.model.max_len, cfg.model.n_gaps)
    model = SeqQModel(cfg.model)
    target = copy.deepcopy(model).eval()
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve: list[dict[str, float]] = []
    seconds = cpu = 0.0
    lengths = data.valid.sum(1).numpy()
    for epoch in range(cfg.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        sums: dict[str, float] = {}
        steps = 0
        for rows in _batches(lengths, cfg.batch_size, rng):
            loss, metrics = train_step(model, target, _trim(data.index(rows)), cfg.sqn)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            polyak_update(target, model, cfg.sqn.tau)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        row = {"epoch": float(epoch + 1), "train_seconds": seconds, "train_cpu_seconds": cpu}
        row |= {k: v / max(steps, 1) for k, v in sums.items()}
        model.eval()
        if evaluate is not None:
            row |= evaluate(model)
        log.info("epoch %d %s", epoch + 1, row)
        curve.append(row)
    model.eval()
    return SeqFitResult(model, curve, seconds, cpu)
