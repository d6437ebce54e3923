"""`memento logs export --format obp`: the service's logged lists as Open Bandit Pipeline data.

Reads the service's store (decisions + their feedback): the SQLite file of one process
(`serving.store.read_logs`) or the PostgreSQL store replicas share (`--store-url`,
`serving.pg_store.read_pg_logs`, one read-only snapshot), and the served model bundle
(catalogue, item vectors, reward config) and writes OBP's `bandit_feedback` layout as one
`.npz`, ONE RECORD PER (decision, shown position) that has a logged propensity, decisions in
time order, positions ascending (R records, D decisions, A catalogue items, d state width):

    n_rounds ()            R (OBP's "rounds" are these records)
    n_actions ()           A: the catalogue size; an action is a catalogue row
    len_list ()            1 + the largest exported position
    action (R,) int64      catalogue row of the shown item (`item_ids[action]` is its id)
    position (R,) int64    0-based position in the list
    reward (R,) float64    reward of the feedback on that item of that decision (0: none)
    pscore (R,) float64    logged P(item at that position | state), in (0, 1]
    context (R, d) f32     the decision's stored state vector
    action_context (A, d)  the catalogue's item vectors (the model's own, float32), so OBP's
                           regression model needs no (A, A) one-hot matrix
    item_ids (A,) str      catalogue ids by row
    decision_id (R,) str   user_id (R,) str   ts (R,) float64   model_version (R,) str
    decision_index (R,)    row of the record's decision in `decisions`
    decisions (D,) str     the exported decisions (those with >= 1 record), in order: the
                           rows of the action_dist arrays `bench.ope.runner` takes
    pool_decision (P,)     row in `decisions` of each logged pool entry
    pool_action (P,) int64 catalogue row of the entry: the decision's candidate pool, the
                           items the policy drew the list from (items scorer only: its
                           candidates are items; decisions of other scorers have none), so
                           an evaluation policy can be kept to what the logger could show

Reward of a position: the largest `recsys.rec.reward.action_reward` (served model's
`RewardConfig`, dwell included) over the feedback rows on that (decision, item): with the
default weights the deepest action of the funnel. Position records without a pscore are left
out and COUNTED by reason in the returned `ExportSummary` (`left_out`): the `PSCORE_*` gap the
decision logged (cold_start, popularity_fill, llm_rerank, case_scorer), `not_logged` (stored
before propensities were logged, or by another core), `unknown_item` (not in the bundle's
catalogue), `state_width` (state of another model width), `bad_pscore` (outside (0, 1]).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMATS", "ExportSummary", "export_logs"]

FORMATS = ("obp",)
"""Export formats: `obp` (Open Bandit Pipeline's bandit_feedback as .npz)."""
NOT_LOGGED = "not_logged"
UNKNOWN_ITEM = "unknown_item"
STATE_WIDTH = "state_width"
BAD_PSCORE = "bad_pscore"


@dataclass(frozen=True)
class ExportSummary:
    """What one export read and wrote."""

    out: str
    """The written file."""
    decisions_read: int
    """Decisions in the store."""
    decisions: int
    """Decisions with at least one exported record (D)."""
    records: int
    """Exported (decision, position) records (R)."""
    n_actions: int
    """Catalogue size (A)."""
    len_list: int
    """1 + the largest exported position."""
    rewarded: int
    """Exported records with a non-zero reward."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Position records left out, by reason (module docstring)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _bundle_parts(bundle: Path) -> tuple[Any, Any]:
    """(ItemTable, RewardConfig) of a model bundle folder, without loading learner or bank."""
    from recsys.config import CoreConfig, config_from_dict
    from recsys.rec.items import ItemTable

    info = bundle / "bundle.json"
    if not info.is_file():
        raise ValueError(
            f"no model bundle at {bundle} (the export needs the served model's catalogue and "
            "reward config): pass --bundle DIR, e.g. the service's <checkpoints>/snapshot "
            "(written when the service checkpoints or stops)"
        )
    try:
        cfg = config_from_dict(CoreConfig, json.loads(info.read_text())["config"])
        items = ItemTable.load(bundle)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"unreadable model bundle at {bundle}: {exc}") from exc
    return items, cfg.reward


def _read(db: Path | None, store_url: str | None) -> tuple[Any, str]:
    """(StoredLogs, a name for messages) of the one store named."""
    from serving.store import read_logs

    if (db is None) == (store_url is None):
        raise ValueError("name one store: --db FILE (SQLite) or --store-url postgresql://...")
    if store_url is not None:
        if not store_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--store-url must be postgresql://..., got {store_url!r}")
        from serving.pg_store import read_pg_logs

        return read_pg_logs(store_url), "the PostgreSQL store"
    assert db is not None
    try:
        return read_logs(Path(db)), str(db)
    except FileNotFoundError as exc:
        raise ValueError(f"{exc} (pass the service's MEMENTO_DB_PATH)") from exc


def export_logs(
    db: Path | None,
    out: Path,
    fmt: str = "obp",
    bundle: Path | None = None,
    store_url: str | None = None,
) -> ExportSummary:
    """Write the store's logged lists to `out` in format `fmt` (module docstring).

    db: the service's SQLite store (MEMENTO_DB_PATH); store_url instead: the PostgreSQL store
    of `memento serve --replicas N` (MEMENTO_STORE_URL). bundle: the served model's folder;
    None: the service's default snapshot, `<db folder>/checkpoints/snapshot` (required with
    store_url). Bad input (unknown format, no store or two, missing / empty / foreign
    database, no bundle, nothing to export) raises `ValueError` with a message saying what to
    do, and nothing is written. (Not a named error: those of `serving/errors.py` all map to
    HTTP answers, and this is a CLI path.)"""
    from recsys.rec.reward import action_reward
    from recsys.records import Action
    from serving.decision_blob import DecisionBlob

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: supported formats are {', '.join(FORMATS)}")
    if store_url is not None and bundle is None:
        raise ValueError(
            "--store-url needs --bundle DIR: the served model (replicas keep no snapshot)"
        )
    out = Path(out)
    logs, name = _read(db, store_url)
    if not logs.decisions:
        raise ValueError(f"{name} holds no decision: nothing to export")
    items, reward_cfg = _bundle_parts(
        Path(bundle) if bundle else Path(db or ".").parent / "checkpoints" / "snapshot"
    )
    actions = {a.value: a for a in Action}
    reward: dict[tuple[str, str], float] = {}
    for f in logs.feedback:
        if f.action in actions:
            r = action_reward(actions[f.action], reward_cfg, f.dwell)
            key = (f.decision_id, f.item_id)
            reward[key] = max(reward.get(key, r), r)
    rows: dict[str, list[Any]] = {k: [] for k in ("action", "position", "reward", "pscore")}
    rows.update({k: [] for k in ("decision_index", "decision_id", "user_id", "ts", "version")})
    contexts: list[np.ndarray] = []
    decisions: list[str] = []
    pool_rows: dict[str, list[int]] = {"decision": [], "action": []}
    left_out: Counter[str] = Counter()
    for d in logs.decisions:
        blob = DecisionBlob.decode(d.candidates)
        state = np.frombuffer(d.state, np.float32)
        pscores, gaps = blob.pscores or [], blob.pscore_gaps or []
        kept = 0
        for k, item in enumerate(d.items):
            p = pscores[k] if k < len(pscores) else None
            if p is None:
                why = (gaps[k] if k < len(gaps) else "") or NOT_LOGGED
            elif item not in items.row_of:
                why = UNKNOWN_ITEM
            elif state.shape != (items.dim,):
                why = STATE_WIDTH
            else:
                why = "" if 0.0 < p <= 1.0 else BAD_PSCORE
            if why:
                left_out[why] += 1
                continue
            rows["action"].append(items.row_of[item])
            rows["position"].append(k)
            rows["reward"].append(reward.get((d.decision_id, item), 0.0))
            rows["pscore"].append(float(p or 0.0))
            rows["decision_index"].append(len(decisions))
            rows["decision_id"].append(d.decision_id)
            rows["user_id"].append(d.user_id)
            rows["ts"].append(d.ts)
            rows["version"].append(d.model_version)
            contexts.append(state)
            kept += 1
        if kept:
            if blob.kind == "items":
                pool = [items.row_of[s] for s in blob.sids if s in items.row_of]
                pool_rows["decision"] += [len(decisions)] * len(pool)
                pool_rows["action"] += pool
            decisions.append(d.decision_id)
    if not contexts:
        why = ", ".join(f"{k}={v}" for k, v in sorted(left_out.items()))
        raise ValueError(
            f"no logged position has a propensity ({len(logs.decisions)} decisions; left out: "
            f"{why}): serve with the items scorer (MEMENTO_FRESH__RECOMMEND__SCORER=items) to log "
            "them"
        )
    position = np.asarray(rows["position"], np.int64)
    arrays: dict[str, Any] = {
        "n_rounds": np.int64(len(contexts)),
        "n_actions": np.int64(len(items)),
        "len_list": np.int64(position.max() + 1),
        "action": np.asarray(rows["action"], np.int64),
        "position": position,
        "reward": np.asarray(rows["reward"], np.float64),
        "pscore": np.asarray(rows["pscore"], np.float64),
        "context": np.stack(contexts).astype(np.float32),
        "action_context": np.asarray(items.vecs, np.float32),
        "item_ids": np.asarray(items.ids, dtype=str),
        "decision_id": np.asarray(rows["decision_id"], dtype=str),
        "user_id": np.asarray(rows["user_id"], dtype=str),
        "ts": np.asarray(rows["ts"], np.float64),
        "model_version": np.asarray(rows["version"], dtype=str),
        "decision_index": np.asarray(rows["decision_index"], np.int64),
        "decisions": np.asarray(decisions, dtype=str),
        "pool_decision": np.asarray(pool_rows["decision"], np.int64),
        "pool_action": np.asarray(pool_rows["action"], np.int64),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as fh:  # a file object: np.savez adds no ".npz" suffix
        np.savez(fh, **arrays)
    tmp.replace(out)
    return ExportSummary(
        out=str(out),
        decisions_read=len(logs.decisions),
        decisions=len(decisions),
        records=len(contexts),
        n_actions=len(items),
        len_list=int(arrays["len_list"]),
        rewarded=int(np.count_nonzero(arrays["reward"])),
        left_out=dict(sorted(left_out.items())),
    )
