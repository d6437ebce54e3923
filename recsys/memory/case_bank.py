"""The case bank (memory M): a faiss index with ids (`recsys.memory.faiss_index`) + durable
sqlite metadata, near-duplicate merging and capacity eviction.
The bank never inspects `Case.payload`; merging compares only `Case.payload_key`.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.config import CaseBankConfig, config_from_dict, config_to_dict
from recsys.errors import CaseBankError, CaseNotFoundError
from recsys.memory.faiss_index import FaissIndex
from recsys.ranking import top_n_stable
from recsys.records import CASE_FEATURES, Candidates, Case

__all__ = ["CaseBank", "CaseBankError", "CaseNotFoundError", "case_features"]

log = logging.getLogger(__name__)

_SCHEMA = """CREATE TABLE IF NOT EXISTS cases (
  case_id INTEGER PRIMARY KEY, key BLOB NOT NULL, payload TEXT NOT NULL, reward REAL,
  ts REAL, source TEXT, payload_key TEXT, utility REAL, visits INTEGER, merged INTEGER)"""


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def case_features(sims: np.ndarray, cases: Sequence[Case], now: float) -> np.ndarray:
    """(K, F) features in `CASE_FEATURES` order: sim, reward, log1p(age days), log1p(visits)."""
    feats = np.zeros((len(cases), len(CASE_FEATURES)), np.float32)
    for i, c in enumerate(cases):
        age_days = max(0.0, now - c.ts) / 86400.0
        feats[i] = (sims[i], c.reward, math.log1p(age_days), math.log1p(c.visits))
    return feats


class CaseBank:
    """Cases with ids, retrievable by key similarity.

    Metadata is kept in memory and written through to sqlite (`path/meta.sqlite` when `path`
    is given, else an in-memory database); `save(dir)` writes the index and the metadata.

    Not thread-safe on its own: the owner serialises every call (reads too: a search walks
    `_cases` while a write may evict from it). The pipeline's owner is `Recommender.lock`
    (`recsys.rec.recommender`), which the serving runtime also holds around its id maps
    (`serving.runtime` writes the whole discipline down). Returned `Case` objects are shared:
    merging and `update_stats` change them in place, under that same lock.
    """

    def __init__(self, cfg: CaseBankConfig, dim: int, path: str | Path | None = None) -> None:
        self.cfg = cfg
        self.dim = dim
        self.index = FaissIndex(cfg, dim)
        self._cases: dict[int, Case] = {}
        self._next_id = 0
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
        db = str(self.path / "meta.sqlite") if self.path is not None else ":memory:"
        self._db = sqlite3.connect(db, check_same_thread=False)
        self._db.execute(_SCHEMA)
        self.stats = {"merged": 0, "evicted": 0}

    def __len__(self) -> int:
        return len(self._cases)

    def __contains__(self, case_id: int) -> bool:
        return case_id in self._cases

    @property
    def next_id(self) -> int:
        """The id the next stored case gets (ids are assigned in write order, never reused)."""
        return self._next_id

    def ids(self) -> list[int]:
        """All live case ids."""
        return list(self._cases)

    def _prep(self, key: np.ndarray) -> np.ndarray:
        if key.shape[-1] != self.dim:
            raise CaseBankError(f"key dimension {key.shape[-1]} != bank dimension {self.dim}")
        return _normalize(key) if self.cfg.normalize else np.ascontiguousarray(key, np.float32)

    def _persist(self, cases: Sequence[Case]) -> None:
        rows = [
            (
                c.case_id,
                c.key.astype(np.float32).tobytes(),
                json.dumps(c.payload, ensure_ascii=False),
                c.reward,
                c.ts,
                c.source,
                c.payload_key,
                c.utility,
                c.visits,
                c.merged,
            )
            for c in cases
        ]
        self._db.executemany("INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        self._db.commit()

    def write(self, case: Case) -> int:
        """Store one case (or merge it into a near-duplicate); returns its id."""
        return self.write_batch([case])[0]

    def write_batch(self, cases: Sequence[Case]) -> list[int]:
        """Store cases; each is merged into an existing case when cosine > merge_threshold
        and payload_key matches (non-empty). Duplicates within one batch are not merged with
        each other. Returns the id each case ended up under."""
        if not cases:
            return []
        keys = self._prep(np.stack([c.key for c in cases]))
        out: list[int] = [-1] * len(cases)
        merged: dict[int, Case] = {}
        if self.cfg.merge_threshold <= 1.0 and len(self) > 0:
            sims, ids = self.index.search(keys, 4)
            for i, c in enumerate(cases):
                for s, j in zip(sims[i], ids[i], strict=True):
                    if j < 0 or s <= self.cfg.merge_threshold or not c.payload_key:
                        continue
                    old = merged.get(int(j), self._cases.get(int(j)))
                    if old is not None and old.payload_key == c.payload_key:
                        n = old.merged + c.merged
                        old.reward = (old.reward * old.merged + c.reward * c.merged) / n
                        old.merged = n
                        old.ts = max(old.ts, c.ts)
                        merged[old.case_id] = old
                        out[i] = old.case_id
                        break
        new: list[Case] = []
        for i, c in enumerate(cases):
            if out[i] >= 0:
                continue
            stored = Case(
                key=keys[i].copy(),
                payload=c.payload,
                reward=c.reward,
                ts=c.ts,
                source=c.source,
                payload_key=c.payload_key,
                case_id=self._next_id,
                utility=c.utility,
                visits=c.visits,
                merged=c.merged,
            )
            self._next_id += 1
            new.append(stored)
            out[i] = stored.case_id
        if new:
            self.index.add(
                np.array([c.case_id for c in new], np.int64), np.stack([c.key for c in new])
            )
            for c in new:
                self._cases[c.case_id] = c
        self.stats["merged"] += len(cases) - len(new)
        self._persist(new + list(merged.values()))
        self._evict()
        return out

    def _evict(self) -> None:
        cap = self.cfg.capacity
        if cap <= 0 or len(self) <= cap:
            return
        now = max(c.ts for c in self._cases.values())
        ids = np.array(list(self._cases), np.int64)
        score = np.array(
            [
                c.utility - self.cfg.age_weight_per_day * max(0.0, now - c.ts) / 86400.0
                for c in self._cases.values()
            ]
        )
        order = np.lexsort((ids, score))  # lowest score first, ties: oldest id first
        victims = [int(i) for i in ids[order[: len(self) - cap]]]
        self.delete(victims)
        self.stats["evicted"] += len(victims)

    def get(self, case_id: int) -> Case:
        """The case with this id (raises CaseNotFoundError)."""
        try:
            return self._cases[int(case_id)]
        except KeyError:
            raise CaseNotFoundError(case_id) from None

    def delete(self, case_ids: Sequence[int]) -> None:
        """Remove cases (unknown ids are ignored)."""
        live = [int(i) for i in case_ids if int(i) in self._cases]
        self.index.remove(live)
        for i in live:
            del self._cases[i]
        self._db.executemany("DELETE FROM cases WHERE case_id = ?", [(i,) for i in live])
        self._db.commit()

    def update_stats(
        self,
        case_id: int,
        utility: float | None = None,
        visits: int = 1,
        reward: float | None = None,
    ) -> None:
        """Record that a case was used: visits += visits, optionally set utility / reward."""
        c = self.get(case_id)
        c.visits += visits
        if utility is not None:
            c.utility = float(utility)
        if reward is not None:
            c.reward = float(reward)
        self._persist([c])

    def candidates_of(self, query: np.ndarray, case_ids: Sequence[int], now: float) -> Candidates:
        """The live cases `case_ids`, in that order, as candidates of the (d,) query: their
        similarity computed as `search` computes it, their features as of `now`."""
        ids = np.asarray(case_ids, np.int64)
        return self._candidates(ids, self._sims64(query, ids).astype(np.float32), now)

    def _candidates(self, ids: np.ndarray, sims: np.ndarray, now: float) -> Candidates:
        cases = [self._cases[int(i)] for i in ids]
        keys = np.stack([c.key for c in cases]) if cases else np.zeros((0, self.dim), np.float32)
        return Candidates(
            case_ids=ids,
            keys=keys.astype(np.float32),
            sims=sims,
            features=case_features(sims, cases, now),
            mask=np.ones(len(ids), bool),
        )

    def _sims64(self, query: np.ndarray, case_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(n,) float64 inner products of the normalised (d,) query with the cases' keys."""
        if len(case_ids) == 0:
            return np.zeros(0, np.float64)
        keys = np.stack([self._cases[int(i)].key for i in case_ids]).astype(np.float64)
        q = self._prep(query[None, :])[0].astype(np.float64)
        return (keys * q).sum(axis=1)

    def search(
        self,
        query: np.ndarray,
        k: int,
        now: float | None = None,
        before: float | None = None,
        since: float | None = None,
    ) -> Candidates:
        """Top-k candidates for one (d,) query (fewer when the bank is small; no padding).

        before: only cases with ts strictly earlier (an as-of search: a replayed decision sees
        the cases whose outcome it could have known); since: only cases with ts at or after it
        (a drift alarm's forgetting); with either the index is searched deeper until k such
        cases are found or it is exhausted."""
        if before is None and since is None:
            return self.search_batch(query[None, :], k, now)[0]
        lo = -math.inf if since is None else since
        hi = math.inf if before is None else before
        now = time.time() if now is None else now
        total = self.index.ntotal
        depth = min(max(4 * k, 64), total)
        while True:
            _, ids = self.index.search(self._prep(query[None, :]), depth)
            keep = [int(i) for i in ids[0] if i >= 0 and lo <= self._cases[int(i)].ts < hi]
            if len(keep) >= k or depth >= total:
                break
            depth = min(depth * 4, total)
        cids, sv = self._exact_top(query, np.array(keep, np.int64), k)
        return self._candidates(cids, sv, now)

    def _exact_top(
        self, query: np.ndarray, ids: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids (<= k,), sims float32) of the k best of the index's hits `ids` for (d,) `query`.

        faiss's similarities differ in their last bits between OpenMP thread counts (its SIMD
        blocks split the database differently), which reorders near-tied cases; here they are
        recomputed in float64 with numpy's single-threaded reduction over the stored keys
        and ranked by `recsys.ranking.top_n_stable` (ties by case id), so the same query
        retrieves the same cases, in the same order, with the same bits at any thread count."""
        if len(ids) == 0:
            return ids, np.zeros(0, np.float32)
        sims = self._sims64(query, ids)
        top = top_n_stable(sims, k, ids)
        return ids[top], sims[top].astype(np.float32)

    def search_batch(
        self, queries: np.ndarray, k: int, now: float | None = None
    ) -> list[Candidates]:
        """Top-k candidates for each row of (B, d) queries."""
        now = time.time() if now is None else now
        sims, ids = self.index.search(self._prep(queries), k)
        out = []
        for s_row, i_row in zip(sims, ids, strict=True):
            keep = i_row >= 0
            cids, sv = i_row[keep], s_row[keep].astype(np.float32)
            cases = [self._cases[int(i)] for i in cids]
            keys = (
                np.stack([c.key for c in cases]) if cases else np.zeros((0, self.dim), np.float32)
            )
            out.append(
                Candidates(
                    case_ids=cids.astype(np.int64),
                    keys=keys.astype(np.float32),
                    sims=sv,
                    features=case_features(sv, cases, now),
                    mask=np.ones(len(cids), bool),
                )
            )
        return out

    def save(self, path: str | Path) -> None:
        """Write `index.faiss`, `meta.sqlite` and `bank.json` (config, dim, next id) to `path`."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        self.index.save(out / "index.faiss")
        if self.path is None or self.path.resolve() != out.resolve():
            dest = sqlite3.connect(out / "meta.sqlite")
            self._db.backup(dest)
            dest.close()
        info = {"config": config_to_dict(self.cfg), "dim": self.dim, "next_id": self._next_id}
        (out / "bank.json").write_text(json.dumps(info))

    @classmethod
    def load(cls, path: str | Path) -> CaseBank:
        """Reopen a bank saved with `save` (further writes go through to `path`)."""
        src = Path(path)
        try:
            info = json.loads((src / "bank.json").read_text())
        except FileNotFoundError as e:
            raise CaseBankError(f"no case bank at {src}") from e
        cfg = config_from_dict(CaseBankConfig, info["config"])
        bank = cls(cfg, int(info["dim"]), path=src)
        bank.index = FaissIndex.load(cfg, bank.dim, src / "index.faiss")
        bank._next_id = int(info["next_id"])
        for row in bank._db.execute("SELECT * FROM cases"):
            cid, key, payload, reward, ts, source, pkey, util, visits, merged = row
            bank._cases[int(cid)] = Case(
                key=np.frombuffer(key, np.float32).copy(),
                payload=json.loads(payload),
                reward=reward,
                ts=ts,
                source=source,
                payload_key=pkey,
                case_id=int(cid),
                utility=util,
                visits=visits,
                merged=merged,
            )
        if len(bank._cases) != bank.index.ntotal:
            raise CaseBankError(f"{len(bank._cases)} metadata rows != {bank.index.ntotal} vectors")
        return bank

    def close(self) -> None:
        """Close the metadata database."""
        self._db.close()
