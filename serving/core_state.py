"""The soft-Q core's swappable runtime (model + encoders + catalog + case-id maps) and codecs.

`build_runtime` picks the model source (registry alias, local snapshot, fresh), loads the
catalog, then restores the case bank from its snapshot plus the store's case log: every live
logged case missing from the bank is added, every tombstoned case is removed. `reload()` builds
a new `Runtime` this way and swaps it in; requests keep the runtime they started with.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.memory.case_encoder import RecCaseEncoder
from recsys.memory.text_encoder import TextEncoder, build_text_encoder
from recsys.rec.state_encoder import StateEncoder
from recsys.records import Candidates, Case, UserState
from serving.catalog import ItemCatalog, read_items_parquet
from serving.model_loader import (
    CORE_FILE,
    LoadedModel,
    fresh_model,
    load_model_dir,
    registry_model,
)
from serving.settings import ServingSettings
from serving.store import CaseRecord, Store

logger = logging.getLogger(__name__)

TOMBSTONES = "soft_q.tombstones"
"""Store blob: JSON list of deleted/erased case ids (they may live in a bank snapshot)."""
SNAPSHOT_DIR = "snapshot"
REGISTRY_DIR = "registry"


def case_items(payload: dict[str, Any]) -> list[str]:
    """Items a case is about: `items`, else the recommender payload's `item_id`."""
    items = payload.get("items")
    if isinstance(items, list) and items:
        return [str(i) for i in items]
    item = payload.get("item_id")
    return [str(item)] if item is not None else []


@dataclass
class Runtime:
    """Everything one model generation serves with; `lock` guards bank and maps."""

    model: LoadedModel
    """Learner + bank + config."""
    encoder: TextEncoder
    """Item-title / context text encoder."""
    catalog: ItemCatalog
    """Items, vectors, popularity."""
    state_encoder: StateEncoder
    """Events -> UserState."""
    case_encoder: RecCaseEncoder
    """(state, item) -> case key."""
    version: str
    """Model version (without the reload generation)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Guards bank reads/writes and the id maps."""
    sid_of: dict[int, str] = field(default_factory=dict)
    """Bank id -> string case id."""
    int_of: dict[str, int] = field(default_factory=dict)
    """String case id -> bank id."""
    by_user: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Owner -> case ids."""
    changed: int = 0
    """Cases added/removed since the last bank snapshot."""
    force_snapshot: bool = False
    """Write the bank at the next checkpoint whatever `changed` says (after an erasure)."""

    @property
    def dim(self) -> int:
        """State / key dimension."""
        return self.model.bank.dim

    def q_view(self, cands: Candidates, payloads: Sequence[dict[str, Any]]) -> Candidates:
        """Retrieved cases as the Q network must see them. A bank with `q_input == "content"`
        (trained that way by offline replay) shows Q each valid case through the normalised
        mean vector of its items instead of its retrieval key; other banks are unchanged."""
        if self.model.bank.cfg.q_input != "content":
            return cands
        keys = cands.keys.copy()
        rows = [r for r in np.flatnonzero(cands.mask) if case_items(payloads[r])]
        items = [case_items(payloads[r]) for r in rows]
        vecs = self.catalog.vectors([i for its in items for i in its])  # one encode, one lock
        start = 0
        for r, its in zip(rows, items, strict=True):
            v = vecs[start : start + len(its)].mean(axis=0)
            keys[r] = v / max(float(np.linalg.norm(v)), 1e-12)
            start += len(its)
        return dataclasses.replace(cands, keys=keys.astype(np.float32))

    def add_cases(self, cases: list[Case], sids: list[str], owners: list[str]) -> None:
        """Write cases to the bank and index their ids (caller holds `lock`)."""
        if not cases:
            return
        ids = self.model.bank.write_batch(cases)
        for cid, sid, owner in zip(ids, sids, owners, strict=True):
            self.sid_of[cid], self.int_of[sid] = sid, cid
            if owner:
                self.by_user[owner].add(sid)
        self.changed += len(cases)

    def remove(self, sids: list[str]) -> int:
        """Remove cases by string id (caller holds `lock`); how many were live."""
        rows = [self.int_of.pop(s) for s in sids if s in self.int_of]
        for r in rows:
            sid = self.sid_of.pop(r)
            owner = str(self.model.bank.get(r).payload.get("user_id", ""))
            self.by_user.get(owner, set()).discard(sid)
        self.model.bank.delete(rows)
        self.changed += len(rows)
        return len(rows)


def load_tombstones(store: Store) -> set[str]:
    """Deleted case ids."""
    blob = store.load_blob(TOMBSTONES)
    return set(json.loads(blob)) if blob else set()


def _choose_model(settings: ServingSettings) -> LoadedModel:
    ckpt = settings.resolved_checkpoint_dir()
    snap = ckpt / SNAPSHOT_DIR
    snap_meta = json.loads((snap / CORE_FILE).read_text()) if (snap / CORE_FILE).exists() else {}
    if settings.model_uri:
        folder, version = registry_model(settings, ckpt / REGISTRY_DIR)
        if snap_meta.get("base") == version:
            logger.info("registry %s unchanged: resuming from local snapshot %s", version, snap)
            return load_model_dir(snap, settings, version)
        logger.info("loading registered model %s", version)
        model = load_model_dir(folder, settings, version)
        model.base = model.version = version
        return model
    if snap_meta:
        logger.info("loading local snapshot %s", snap)
        return load_model_dir(snap, settings, "snapshot")
    logger.info("no registered model or snapshot: fresh learner and empty case bank")
    return fresh_model(settings)


def log_case(rt: Runtime, rec: CaseRecord) -> Case:
    """A bank `Case` for a case-log record (re-keyed when its key does not fit the model)."""
    payload = {**rec.payload, "sid": rec.case_id, "user_id": rec.user_id}
    payload.setdefault("items", case_items(rec.payload))
    key = np.frombuffer(rec.key, np.float32)
    if key.shape != (rt.dim,) or not np.any(key):
        title = " ".join(rt.catalog.titles(case_items(payload))) or rec.case_id
        key = rt.case_encoder.keys(np.zeros((1, rt.dim), np.float32), [{"title": title}])[0]
    return Case(key=key.copy(), payload=payload, reward=rec.reward, ts=rec.ts, source="log")


def build_runtime(settings: ServingSettings, store: Store) -> Runtime:
    """Model from registry/snapshot/fresh, catalog, then bank = snapshot + case log."""
    model = _choose_model(settings)
    encoder = build_text_encoder(model.config.text)
    items_path: Path | None = settings.items_path or model.items_path
    titles = read_items_parquet(items_path) if items_path else {}
    catalog = ItemCatalog(encoder, titles)
    events = [ev.item_id for _, ev in store.iter_events()]
    catalog.ensure(events)
    catalog.count(events)
    state_encoder = StateEncoder(model.config.state, catalog.vectors, catalog.titles, encoder.dim)
    rt = Runtime(
        model,
        encoder,
        catalog,
        state_encoder,
        RecCaseEncoder(encoder, model.config.case_bank.key_state_weight),
        model.version,
    )
    tomb = load_tombstones(store)
    with rt.lock:
        for cid in model.bank.ids():
            payload = model.bank.get(cid).payload
            sid = str(payload.get("sid") or f"r{cid}")
            rt.sid_of[cid], rt.int_of[sid] = sid, cid
            if payload.get("user_id"):
                rt.by_user[str(payload["user_id"])].add(sid)
        gone = [s for s in rt.int_of if s in tomb]
        rt.remove(gone)
        missing = [
            r for r in store.live_cases() if r.case_id not in rt.int_of and r.case_id not in tomb
        ]
        for k in range(0, len(missing), 20_000):
            chunk = missing[k : k + 20_000]
            catalog.ensure(i for r in chunk for i in case_items(r.payload))
            rt.add_cases(
                [log_case(rt, r) for r in chunk],
                [r.case_id for r in chunk],
                [r.user_id for r in chunk],
            )
        rt.changed = len(missing) + len(gone)
    logger.info(
        "model %s: %d cases (%d from the case log, %d tombstoned), %d items",
        rt.version,
        len(model.bank),
        len(missing),
        len(gone),
        len(catalog),
    )
    return rt


@dataclass(frozen=True)
class DecisionBlob:
    """What a decision remembers for its transition (stored as the `candidates` blob)."""

    sids: list[str]
    """Candidate case ids (K)."""
    sims: list[float]
    """Their cosine similarity to the state (K)."""
    feats: list[list[float]]
    """Their features at decision time (K, F)."""
    chosen: list[int]
    """Rows of the chosen cases."""
    logp: list[float]
    """Behaviour log-probabilities of the chosen cases."""
    case_items: list[list[str]]
    """Items of each chosen case (credit assignment)."""
    text: str
    """Readable state summary."""

    def encode(self) -> bytes:
        """Compact JSON."""
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> DecisionBlob:
        """Inverse of `encode` (an unreadable blob gives an empty decision)."""
        try:
            return cls(**json.loads(blob))
        except (ValueError, TypeError):
            return cls([], [], [], [], [], [], "")


def user_state(user_id: str, vec: bytes, text: str, ts: float) -> UserState:
    """A UserState from a stored state blob."""
    return UserState(user_id=user_id, vec=np.frombuffer(vec, np.float32).copy(), text=text, ts=ts)
