"""The RecBole peers as the replay harness uses them: one call per split, results by method.

`peer_runs` trains (or reads from the cache) every requested peer on the split's
train/valid/test frames with early stopping on valid NDCG@10, in one work folder per dataset
(`peer_workdir`), so `memento bench peers` and `memento bench replay` share their results.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PEER_MAX_EPOCHS",
    "PEER_MODELS",
    "PEER_PATIENCE",
    "peer_method",
    "peer_runs",
    "peer_workdir",
]

PEER_MAX_EPOCHS = 60
"""Most epochs a peer trains (early stopping usually ends it sooner)."""
PEER_PATIENCE = 3
"""Epochs without a new best valid NDCG@10 before a peer stops (RecBole's ``stopping_step``)."""
PEER_MODELS = {"recbole-bpr": "BPR", "recbole-sasrec": "SASRec", "recbole-gru4rec": "GRU4Rec"}
"""Harness method name -> RecBole model name."""


def peer_method(name: str) -> str:
    """The harness method name of a peer given as ``bpr``, ``BPR`` or ``recbole-bpr``."""
    key = name.strip().lower()
    key = key if key.startswith("recbole-") else f"recbole-{key}"
    if key not in PEER_MODELS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEER_MODELS)}")
    return key


def peer_workdir(data: str) -> Path:
    """``<cache>/memento/recbole-replay/<tag>``: one folder per dataset (concurrent benchmarks
    must not share RecBole's data files); the tag is the dataset name made path-safe plus a
    short hash of it."""
    from data.paths import cache_dir

    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", data)[:40]
    tag += "-" + hashlib.sha1(data.encode()).hexdigest()[:8]
    return cache_dir() / "memento" / "recbole-replay" / tag


def peer_runs(
    split: Any,
    data: str,
    models: Sequence[str],
    seeds: Sequence[int],
    max_epochs: int = PEER_MAX_EPOCHS,
    patience: int = PEER_PATIENCE,
) -> dict[str, dict[str, Any]]:
    """Every peer of ``models`` on ``split`` (``.train``, ``.valid``, ``.test`` frames) over
    ``seeds``; ``{"recbole-bpr" | "recbole-sasrec" | "recbole-gru4rec": result}``.

    Each result is `bench.peers.recbole_runner.run_recbole_peers`'s for that model: RecBole's
    own test metrics (``ndcg@10``, ``hr@10``, ``mrr``, their ``_std``, ``per_seed``,
    ``recbole``, ``n_test``, ``n_test_evaluated``), ``lists`` ``{seed: [list | None per test
    row]}``, ``curves`` ``{seed: [valid ndcg@10 per epoch]}`` and ``epochs`` ``{seed: {"run",
    "best", "epoch_s"}}``. ``data`` names the dataset (it picks the work folder).
    """
    from bench.peers.recbole_runner import run_recbole_peers

    workdir = peer_workdir(data)
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(peer_method(m) for m in models):
        model = PEER_MODELS[name]
        res = run_recbole_peers(
            split.train,
            split.valid,
            split.test,
            models=(model,),
            seeds=tuple(int(s) for s in seeds),
            epochs=max_epochs,
            patience=patience,
            workdir=workdir,
        )
        out[name] = res[model]
    return out
