"""RecBole peers (BPR, SASRec, GRU4Rec) on OUR split, from their own pinned environment.

RecBole 1.2.1 needs ``numpy<2`` and an older pandas, which clash with the project's .venv, so
the benchmark builds a separate venv on demand (``<repo>/.cache/memento/recbole-venv``, with
the one side-venv helper ``bench.side_venv``): torch first (the pinned CPU build, so pip never
pulls a CUDA wheel), then RecBole and its pins. The job itself (``recbole_job.py``) runs as a
subprocess of that venv's python (``bench.side_venv.run_job``).

Protocol (identical split, honest comparison):

- our train/valid/test frames become RecBole atomic files in ``benchmark_filename`` mode, so
  RecBole uses exactly our split (no re-splitting, no filtering, duplicates kept);
- training stops early on valid NDCG@10 (evaluated every epoch; ``patience`` epochs without a
  new best, at most ``epochs``) and the best epoch's model is kept (unless
  ``select_best=False``); the valid curve, the epochs run and the best epoch are returned;
- RecBole's own test metrics (NDCG@10, Hit@10, MRR@10, full ranking) are kept as before:
  general models (BPR) group test rows by user and mask the user's earlier items; sequential
  models (SASRec, GRU4Rec) make one decision per test row with the user's earlier items
  (train, valid, then earlier test rows, in time order) as the input sequence, and rows with
  no earlier item are dropped (the headline numbers count them as misses, ``recbole`` keeps
  RecBole's own numbers on the rows it evaluated);
- besides, the best model ranks EVERY test row (``lists``, in the test frame's row order) with
  no masking: its top ``LIST_MARGIN + n_seen`` items (``n_seen`` = the user's distinct earlier
  items), by user for general models, by the earlier items for sequential ones (``None`` for
  a row without any), so the caller scores every method with one metric code.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from bench.errors import PeerRunError
from bench.peers.rows import (
    SPLITS,
    QueryRow,
    check_lists,
    prepare_frame,
    read_query_rows,
    sequence_rows,
    write_query_rows,
)
from bench.side_venv import SideVenv, ensure_venv, run_job

__all__ = [
    "JOB_SCRIPT",
    "QUERY_ROWS",
    "RESULT_VERSION",
    "PeerEnvConfig",
    "ensure_recbole_env",
    "run_recbole_peers",
    "write_atomic_files",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_SCRIPT = Path(__file__).with_name("recbole_job.py")
_GENERAL = "memento"
_SEQUENTIAL = "memento_seq"
QUERY_ROWS = "query_rows.json"
"""File (under the data folder) listing the test rows the job ranks, in test-frame order."""
RESULT_VERSION = 2
"""Part of the cache key: bumped when a stored result's content changes (2: lists, curves)."""


@dataclass(frozen=True)
class PeerEnvConfig:
    """The pinned RecBole environment."""

    path: Path = REPO_ROOT / ".cache" / "memento" / "recbole-venv"
    """Where the venv lives (created on first use, reused afterwards)."""
    torch_spec: str = "torch==2.13.0"
    """Installed first and alone, so RecBole's requirement is already met by the CPU build."""
    packages: tuple[str, ...] = ("recbole==1.2.1", "numpy<2", "pandas<3", "setuptools<81")
    """RecBole and the pins it needs; its own requirements bring scipy, colorlog, ray, ..."""
    python: str = sys.executable
    """Interpreter that creates the venv."""

    def venv(self) -> SideVenv:
        """The side venv these specs describe (`bench.side_venv`)."""
        marker = json.dumps({"torch": self.torch_spec, "packages": list(self.packages)})
        return SideVenv(
            label="peer",
            path=self.path,
            installs=(
                ((self.torch_spec,), "install torch (CPU) into peer venv"),
                (self.packages, "install recbole into peer venv"),
            ),
            probe="import torch, recbole; assert torch.version.cuda is None, torch.__version__",
            marker=marker,
            python=self.python,
        )


def ensure_recbole_env(cfg: PeerEnvConfig | None = None) -> Path:
    """Create (once) the pinned RecBole venv; returns its python. Takes minutes the first time;
    concurrent callers wait on a file lock. Raises `PeerRunError` naming the failing step."""
    return ensure_venv((cfg or PeerEnvConfig()).venv(), PeerRunError)


def write_atomic_files(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    test: pl.DataFrame,
    data_path: Path,
    max_seq_len: int = 50,
) -> dict[str, int]:
    """Write both RecBole datasets (general and sequential) under ``data_path``, and the test
    rows the job ranks (``QUERY_ROWS``).

    Returns counts: ``{"train", "valid", "test"}`` rows and ``seq_<split>`` rows kept in the
    sequential files (rows without an earlier item are dropped there).
    """
    frames = [
        prepare_frame(df, s, k)
        for k, (df, s) in enumerate(zip((train, valid, test), SPLITS, strict=True))
    ]
    gen_dir = data_path / _GENERAL
    seq_dir = data_path / _SEQUENTIAL
    gen_dir.mkdir(parents=True, exist_ok=True)
    seq_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for k, split in enumerate(SPLITS):
        part = frames[k].sort(["timestamp", "_row"])
        counts[split] = part.height
        lines = ["user_id:token\titem_id:token\ttimestamp:float"]
        lines += [
            f"{u}\t{i}\t{t:.3f}"
            for u, i, t in zip(part["user_id"], part["item_id"], part["timestamp"], strict=True)
        ]
        (gen_dir / f"{_GENERAL}.{split}.inter").write_text("\n".join(lines) + "\n")
    seq_lines: dict[int, list[str]] = {k: [] for k in range(len(SPLITS))}
    queries: list[QueryRow | None] = [None] * test.height
    for r in sequence_rows((train, valid, test), max_seq_len):
        if r.history:
            seq = " ".join(str(x) for x in r.history)
            seq_lines[r.split].append(f"{r.user}\t{seq}\t{r.item}\t{r.ts:.3f}")
        if r.split == 2:
            queries[r.row] = QueryRow(r.user, r.history, r.n_seen)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float"
    for k, split in enumerate(SPLITS):
        counts[f"seq_{split}"] = len(seq_lines[k])
        text = "\n".join([header, *seq_lines[k]]) + "\n"
        (seq_dir / f"{_SEQUENTIAL}.{split}.inter").write_text(text)
    write_query_rows([q for q in queries if q is not None], data_path / QUERY_ROWS)
    return counts


_PER_ROW = ("lists", "curve", "epoch_seconds")
"""Keys of a stored seed result that are not RecBole metrics (left out of ``recbole``)."""


def _aggregate(per_seed: dict[str, dict[str, Any]], scale: float) -> dict[str, Any]:
    def stats(key: str) -> tuple[float, float]:
        vals = [float(r[key]) * scale for r in per_seed.values()]
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    out: dict[str, Any] = {}
    for ours, theirs in (("ndcg@10", "ndcg@10"), ("hr@10", "hit@10"), ("mrr", "mrr@10")):
        mean, std = stats(theirs)
        out[ours], out[f"{ours}_std"] = mean, std
    out["per_seed"] = {
        seed: {
            "ndcg@10": r["ndcg@10"] * scale,
            "hr@10": r["hit@10"] * scale,
            "mrr": r["mrr@10"] * scale,
        }
        for seed, r in per_seed.items()
    }
    out["recbole"] = {
        seed: {k: v for k, v in r.items() if k not in _PER_ROW} for seed, r in per_seed.items()
    }
    out["lists"] = {seed: r["lists"] for seed, r in per_seed.items()}
    out["curves"] = {seed: [float(v) for v in r["curve"]] for seed, r in per_seed.items()}
    out["epochs"] = {
        seed: {
            "run": int(r["epochs_run"]),
            "best": int(r["best_epoch"]),
            "epoch_s": statistics.fmean(r["epoch_seconds"]) if r["epoch_seconds"] else 0.0,
        }
        for seed, r in per_seed.items()
    }
    return out


def _settings(
    epochs: int,
    patience: int,
    select_best: bool,
    max_seq_len: int,
    train_batch_size: int,
    overrides: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """The job settings that enter the cache key (and the spec)."""
    return {
        "epochs": int(epochs),
        "stopping_step": int(patience),
        "select_best": select_best,
        "max_seq_len": max_seq_len,
        "train_batch_size": train_batch_size,
        "overrides": overrides or {},
    }


def _cache_key(data_path: Path, settings: dict[str, Any]) -> str:
    """Hash of the written split files, the test rows, the settings, the job script and
    ``RESULT_VERSION``."""
    h = hashlib.sha256()
    h.update(f"result-v{RESULT_VERSION}".encode())
    for f in [*sorted(data_path.rglob("*.inter")), data_path / QUERY_ROWS]:
        h.update(f.relative_to(data_path).as_posix().encode())
        h.update(f.read_bytes())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(JOB_SCRIPT.read_bytes())
    return h.hexdigest()[:20]


def _load_stored(path: Path) -> dict[str, Any] | None:
    """A stored seed result, or None when absent or from before lists were stored."""
    if not path.is_file():
        return None
    stored: dict[str, Any] = json.loads(path.read_text())
    return stored if "lists" in stored and "curve" in stored else None


def _run_job(
    workdir: Path,
    data_path: Path,
    settings: dict[str, Any],
    model: str,
    seeds: list[int],
    env: PeerEnvConfig | None,
    timeout_s: float | None,
) -> dict[str, dict[str, Any]]:
    """One RecBole subprocess for ``model`` over ``seeds``; ``{seed: result}``."""
    py = ensure_recbole_env(env)
    spec = {
        "data_path": str(data_path),
        "checkpoint_dir": str(workdir / "checkpoints"),
        "query_rows": str(data_path / QUERY_ROWS),
        "models": [model],
        "seeds": seeds,
        **settings,
    }
    # RecBole 1.2.1 reloads its best-epoch checkpoint (which pickles its Config) with
    # torch.load's default, weights_only since torch 2.6: its own files, in its own venv
    env_vars = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    raw: dict[str, dict[str, dict[str, Any]]] = run_job(
        py,
        JOB_SCRIPT,
        spec,
        workdir,
        PeerRunError,
        what="RecBole job",
        timeout_s=timeout_s,
        env=env_vars,
    )
    return raw[model]


def run_recbole_peers(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    test: pl.DataFrame,
    models: Sequence[str] = ("BPR", "SASRec"),
    seeds: Sequence[int] = (0,),
    epochs: int = 20,
    workdir: Path | None = None,
    env: PeerEnvConfig | None = None,
    select_best: bool = True,
    max_seq_len: int = 50,
    overrides: dict[str, dict[str, Any]] | None = None,
    timeout_s: float | None = None,
    train_batch_size: int = 256,
    reuse: bool = True,
    patience: int = 3,
) -> dict[str, dict[str, Any]]:
    """Train and test RecBole ``models`` (BPR, SASRec, GRU4Rec...) on our split.

    Returns ``{model: {"ndcg@10", "hr@10", "mrr", "<metric>_std", "per_seed", "recbole",
    "n_test", "n_test_evaluated", "lists", "curves", "epochs"}}``:

    - metrics are RecBole's, means over ``seeds`` (std across seeds beside them); ``mrr`` is
      RecBole's MRR@10;
    - ``lists[seed]``: one entry per row of ``test`` (same order), the best model's raw top
      ``LIST_MARGIN + n_seen`` item ids (no masking), ``None`` where a sequential model has no
      earlier item to read;
    - ``curves[seed]``: valid NDCG@10 per epoch; ``epochs[seed]``: ``{"run", "best",
      "epoch_s"}`` (epochs trained, 1-based best epoch so ``curve[best - 1]`` is the best
      score, mean seconds per epoch).

    Training runs at most ``epochs`` epochs and stops after ``patience`` epochs without a new
    best valid NDCG@10. Frames need ``user_id``, ``item_id`` and ``ts`` (datetime or seconds).
    RecBole's ``Pop`` model is not a fair peer: its count update ignores repeated items within
    a batch, so use ``bench.replay.baselines.Popularity`` instead.

    Each (model, seed) result is kept under ``workdir/results``, keyed by a hash of the written
    split files, the test rows, the settings, the job script and ``RESULT_VERSION``; with
    ``reuse`` a later call on the same split reads it instead of training again (a SASRec seed
    on MovieLens takes ~20 CPU minutes), and a run killed midway keeps the seeds that finished.
    """
    if test.height == 0:
        raise ValueError("empty test split")
    workdir = Path(workdir) if workdir is not None else REPO_ROOT / ".cache" / "memento" / "recbole"
    workdir.mkdir(parents=True, exist_ok=True)
    # one run per workdir at a time: each run rewrites and hashes the split files there (two
    # threads writing them at once hashed different bytes and both trained the same seed); a
    # run that waited here reuses what the other stored
    with (workdir / "data.lock").open("w") as data_lock:
        fcntl.flock(data_lock, fcntl.LOCK_EX)
        data_path = workdir / "data"
        counts = write_atomic_files(train, valid, test, data_path, max_seq_len=max_seq_len)
        if counts["seq_valid"] == 0 or counts["seq_test"] == 0:
            log.warning("sequential files have no valid/test rows with history: %s", counts)
        rows = read_query_rows(data_path / QUERY_ROWS)
        settings = _settings(
            epochs, patience, select_best, max_seq_len, train_batch_size, overrides
        )
        key = _cache_key(data_path, settings)
        results_dir = workdir / "results"
        results_dir.mkdir(exist_ok=True)
        raw: dict[str, dict[str, Any]] = {m: {} for m in models}
        for model in models:
            for seed in seeds:
                stored = _load_stored(results_dir / f"{key}-{model}-{int(seed)}.json")
                if reuse and stored is not None:
                    raw[model][str(int(seed))] = stored
        for model in models:
            missing = [int(s) for s in seeds if str(int(s)) not in raw[model]]
            if not missing:
                log.info("RecBole %s: every seed reused from %s", model, results_dir)
                continue
            for seed in missing:  # one job per seed: a kill keeps the seeds already finished
                log.info("RecBole %s seed %d: training (log %s)", model, seed, workdir / "job.log")
                done = _run_job(workdir, data_path, settings, model, [seed], env, timeout_s)
                for seed_key, r in done.items():
                    try:
                        check_lists(r.get("lists", ()), rows, bool(r.get("sequential")))
                    except ValueError as exc:
                        raise PeerRunError(f"RecBole {model} seed {seed_key}: {exc}") from exc
                    (results_dir / f"{key}-{model}-{seed_key}.json").write_text(json.dumps(r))
                    raw[model][seed_key] = r
        for model in models:
            raw[model] = {str(int(s)): raw[model][str(int(s))] for s in seeds}
        results: dict[str, dict[str, Any]] = {}
        for model, per_seed in raw.items():
            sequential = any(r.get("sequential") for r in per_seed.values())
            n_eval = counts["seq_test"] if sequential else counts["test"]
            scale = n_eval / counts["test"] if sequential else 1.0
            results[model] = {
                **_aggregate(per_seed, scale),
                "n_test": counts["test"],
                "n_test_evaluated": n_eval,
            }
        return results
