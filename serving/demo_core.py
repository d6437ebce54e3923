"""`DemoCore`: the lightweight, deterministic core used until the soft-Q core is wired in.

It is honest and complete enough to exercise every path of the service, but it is NOT the
Memento soft-Q core (round 2 plugs that in through the same `RecommenderCore` Protocol):

- state s: feature-hashed bag of the user's recent items (recency x action weighted) and
  context pairs, L2-normalised (64 dims); a cold-start user has the zero vector;
- retrieval: brute-force cosine over the live case keys, top-K;
- value: Q(s, c) = cos(s, key_c) + q_c with a per-case tabular value q_c;
- policy: mu(c | s) = softmax(Q / alpha) over the K candidates; the top `m` are chosen and
  their probabilities are the returned weights;
- items: chosen cases' items weighted by mu, plus item co-occurrence with the user's recent
  items and global popularity over the stored events (cold-start fallback);
- learning: feedback -> reward r -> one-step tabular update of the case that sourced the item,
  q_c += lr * (r - q_c) (no bootstrap: TD loss reported is (r - q_c)^2); a new case keyed on
  the decision state is written once per (decision, item), starting at q = 0.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.service import (
    CaseChoice,
    CaseView,
    CoreEvent,
    CoreRecommendation,
    DecisionSnapshot,
    LearnerUpdate,
    NewCase,
    RankedItem,
)
from serving.settings import ServingSettings
from serving.store import CaseRecord, Store

ACTION_WEIGHT = {"click": 0.25, "collect": 0.5, "cart": 0.75, "alipay": 1.0}
"""Reward (and state weight) of each Tmall action."""
_CHECKPOINT = "demo_core.q"


@dataclass(frozen=True)
class DemoCoreConfig:
    """Hyper-parameters of the demo core."""

    dim: int = 64
    """Hashed state dimension."""
    top_k: int = 32
    """Candidate cases retrieved per request."""
    chosen: int = 4
    """Cases chosen (shown) per decision."""
    alpha: float = 0.25
    """Softmax temperature of the policy."""
    lr: float = 0.3
    """Step size of the tabular value update."""
    history: int = 20
    """Recent events encoded into the state."""
    dwell_bonus: float = 0.2
    """Extra reward for a dwell of 60 s or more (linear below)."""
    apply_delay_s: float = 0.0
    """Artificial latency per update (tests of backpressure)."""


def _hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def encode_state(
    events: Sequence[CoreEvent], context: Mapping[str, str], dim: int, history: int
) -> np.ndarray:
    """Feature-hashed, L2-normalised state vector, shape (dim,); zeros for a cold start."""
    vec = np.zeros(dim, dtype=np.float32)
    recent = list(events)[-history:]
    for age, ev in enumerate(reversed(recent)):
        h = _hash("item:" + ev.item_id)
        vec[h % dim] += (
            (1.0 if (h >> 32) & 1 else -1.0) * ACTION_WEIGHT.get(ev.action, 0.25) * (0.9**age)
        )
    for k, v in sorted(context.items()):
        h = _hash(f"ctx:{k}={v}")
        vec[h % dim] += 0.5 if (h >> 32) & 1 else -0.5
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class DemoCore:
    """Thread-safe tabular-value case policy over popularity/co-occurrence (see module doc)."""

    def __init__(self, store: Store, config: DemoCoreConfig | None = None) -> None:
        self.config = config or DemoCoreConfig()
        self._store = store
        self._lock = threading.RLock()
        self._generation = 0
        self._load()

    # --- loading ---------------------------------------------------------------------------
    def _load(self) -> None:
        cfg = self.config
        with self._lock:
            cases = self._store.live_cases()
            blob = self._store.load_blob(_CHECKPOINT)
            q = json.loads(blob) if blob else {}
            cap = max(1024, 2 * len(cases))
            self._keys = np.zeros((cap, cfg.dim), dtype=np.float32)
            self._alive = np.zeros(cap, dtype=bool)
            self._q = np.zeros(cap, dtype=np.float32)
            self._ids: list[str] = []
            self._row: dict[str, int] = {}
            self._meta: list[CaseRecord] = []
            for c in cases:
                self._append(c, float(q.get(c.case_id, 0.0)))
            self._pop: Counter[str] = Counter()
            self._cooc: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._hist: defaultdict[str, list[str]] = defaultdict(list)
            self._top_cache: dict[str, list[tuple[str, int]]] = {}
            for user, ev in self._store.iter_events():
                self._count(user, ev)
            self._generation += 1

    def _append(self, c: CaseRecord, q: float) -> None:
        n = len(self._ids)
        if n == len(self._keys):
            grow = len(self._keys)
            self._keys = np.concatenate([self._keys, np.zeros_like(self._keys[:grow])])
            self._alive = np.concatenate([self._alive, np.zeros(grow, dtype=bool)])
            self._q = np.concatenate([self._q, np.zeros(grow, dtype=np.float32)])
        key = np.frombuffer(c.key, dtype=np.float32)
        assert key.shape == (self.config.dim,), f"{key.shape=} {self.config.dim=}"
        self._keys[n], self._alive[n], self._q[n] = key, True, q
        self._ids.append(c.case_id)
        self._row[c.case_id] = n
        self._meta.append(c)

    def _count(self, user: str, ev: CoreEvent) -> None:
        self._pop[ev.item_id] += 1
        self._top_cache.pop("", None)
        hist = self._hist[user]
        for other in hist[-10:]:
            if other != ev.item_id:
                self._cooc[other][ev.item_id] += 1
                self._cooc[ev.item_id][other] += 1
                self._top_cache.pop("co:" + other, None)
                self._top_cache.pop("co:" + ev.item_id, None)
        hist.append(ev.item_id)
        del hist[:-10]

    # --- Protocol --------------------------------------------------------------------------
    @property
    def model_version(self) -> str:
        """`demo-tabular.r<reload generation>`."""
        return f"demo-tabular.r{self._generation}"

    def bank_size(self) -> int:
        """Live cases in the bank."""
        with self._lock:
            return int(self._alive[: len(self._ids)].sum())

    def observe_events(self, user_id: str, events: Sequence[CoreEvent]) -> None:
        """Update popularity and co-occurrence counts."""
        with self._lock:
            for ev in events:
                self._count(user_id, ev)

    def _top(self, key: str, counts: Counter[str], k: int) -> list[tuple[str, int]]:
        """Cached `counts.most_common(k)` (invalidated by `_count`); at least 50 kept."""
        cached = self._top_cache.get(key)
        if cached is None or (len(cached) < k and len(cached) < len(counts)):
            cached = counts.most_common(max(k, 50))
            self._top_cache[key] = cached
        return cached[:k]

    def policy(self, state: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Top-K candidate rows by cosine, their Q values and mu = softmax(Q / alpha)."""
        cfg = self.config
        n = len(self._ids)
        n_alive = int(self._alive[:n].sum())
        if n_alive == 0:
            return [], np.zeros(0, np.float32), np.zeros(0, np.float32)
        sims = self._keys[:n] @ state  # (n,), no copy of the key matrix
        sims[~self._alive[:n]] = -np.inf
        k = min(cfg.top_k, n_alive)
        rows = np.argpartition(-sims, k - 1)[:k] if k < n else np.flatnonzero(self._alive[:n])
        q = sims[rows] + self._q[rows]
        order = np.lexsort((np.array([self._ids[r] for r in rows]), -q))
        rows, q = rows[order], q[order]
        z = (q - q.max()) / cfg.alpha
        mu = np.exp(z) / np.exp(z).sum()
        return [int(r) for r in rows], q.astype(np.float32), mu.astype(np.float32)

    def recommend(
        self,
        user_id: str,
        n: int,
        context: Mapping[str, str],
        recent_events: Sequence[CoreEvent],
        exclude_items: Sequence[str],
        explain: bool,
    ) -> CoreRecommendation:
        """Choose cases by mu and rank items from them, co-occurrence and popularity."""
        cfg = self.config
        state = encode_state(recent_events, context, cfg.dim, cfg.history)
        excluded = set(exclude_items)
        with self._lock:
            rows, q, mu = self.policy(state)
            chosen = list(range(min(cfg.chosen, len(rows))))
            scores: defaultdict[str, float] = defaultdict(float)
            source: dict[str, tuple[float, str]] = {}
            for j in chosen:
                case = self._meta[rows[j]]
                for item in case.payload.get("items", []):
                    scores[item] += float(mu[j])
                    if float(mu[j]) > source.get(item, (-1.0, ""))[0]:
                        source[item] = (float(mu[j]), case.case_id)
            cooc: Counter[str] = Counter()
            for ev in recent_events[-cfg.history :]:
                if ev.item_id in self._cooc:
                    cooc.update(dict(self._top("co:" + ev.item_id, self._cooc[ev.item_id], 50)))
            top_cooc = max(cooc.values(), default=1)
            for item, c in cooc.most_common(5 * n):
                scores[item] += 0.5 * c / top_cooc
            popular = self._top("", self._pop, n + len(excluded))
            top_pop = popular[0][1] if popular else 1
            for item, c in popular:
                scores[item] += 0.1 * c / top_pop
            cand_ids = [self._ids[r] for r in rows]
        ranked = sorted(
            ((s, i) for i, s in scores.items() if i not in excluded), key=lambda t: (-t[0], t[1])
        )[:n]
        items = tuple(RankedItem(i, f"item {i}", round(s, 6)) for s, i in ranked)
        cases = tuple(CaseChoice(cand_ids[j], float(mu[j])) for j in chosen)
        snapshot = {
            "cands": cand_ids,
            "q": [float(x) for x in q],
            "item_case": {i: source[i][1] for _, i in ranked if i in source},
        }
        why = None
        if explain:
            why = "; ".join(f"case {c.case_id} mu={c.weight:.3f}" for c in cases) or "no cases"
            why += f"; {len(cooc)} co-occurring items; popularity over {len(self._pop)} items"
        return CoreRecommendation(items, cases, state.tobytes(), json.dumps(snapshot).encode(), why)

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Reward the case that sourced the item and write a case for (decision, item)."""
        cfg = self.config
        if cfg.apply_delay_s:
            time.sleep(cfg.apply_delay_s)
        reward = ACTION_WEIGHT[action] + cfg.dwell_bonus * min((dwell_seconds or 0.0) / 60, 1.0)
        snap = json.loads(decision.candidates)
        td_loss = None
        with self._lock:
            src = snap["item_case"].get(item_id)
            row = self._row.get(src) if src else None
            if row is not None and self._alive[row]:
                td = reward - float(self._q[row])
                self._q[row] += cfg.lr * td
                td_loss = td * td
            case_id = (
                "fb-" + hashlib.sha1(f"{decision.decision_id}/{item_id}".encode()).hexdigest()[:20]
            )
            record = CaseRecord(
                case_id,
                decision.user_id,
                {"items": [item_id], "source": "feedback", "decision_id": decision.decision_id},
                decision.state,
                reward,
                time.time(),
                False,
            )
            if case_id not in self._row and self._store.put_case(record):
                self._append(record, 0.0)
        return LearnerUpdate(reward=reward, td_loss=td_loss, new_case_id=case_id)

    def write_case(self, case: NewCase) -> str:
        """Encode the case's state as its key and add it to bank and log."""
        cfg = self.config
        key = encode_state(case.recent_events, case.context, cfg.dim, cfg.history)
        digest = hashlib.sha1(f"{case.user_id}/{time.time_ns()}/{case.items}".encode())
        record = CaseRecord(
            "m-" + digest.hexdigest()[:20],
            case.user_id,
            {"items": list(case.items), "source": "manual"},
            key.tobytes(),
            case.reward,
            time.time(),
            False,
        )
        with self._lock:
            self._store.put_case(record)
            self._append(record, 0.0)
        return record.case_id

    def _view(self, c: CaseRecord) -> CaseView:
        row = self._row.get(c.case_id)
        value = float(self._q[row]) if row is not None else 0.0
        return CaseView(
            c.case_id,
            c.user_id,
            tuple(c.payload.get("items", [])),
            c.reward,
            value,
            c.ts,
            str(c.payload.get("source", "unknown")),
        )

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case with its current tabular value."""
        with self._lock:
            row = self._row.get(case_id)
            if row is None or not self._alive[row]:
                return None
            return self._view(self._meta[row])

    def delete_case(self, case_id: str) -> bool:
        """Drop from the bank and soft-delete in the log."""
        with self._lock:
            row = self._row.get(case_id)
            if row is None or not self._alive[row]:
                return False
            self._alive[row] = False
            self._store.delete_case(case_id)
            return True

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases of a user."""
        with self._lock:
            return [self._view(c) for c in self._store.list_cases(user_id)]

    def erase_user(self, user_id: str) -> int:
        """Drop the user's cases from the bank and rebuild statistics from the (erased) store."""
        with self._lock:
            n = 0
            for row, c in enumerate(self._meta):
                if c.user_id == user_id and self._alive[row]:
                    self._alive[row] = False
                    n += 1
            self._pop, self._cooc, self._hist = Counter(), defaultdict(Counter), defaultdict(list)
            for user, ev in self._store.iter_events():
                self._count(user, ev)
            return n

    def checkpoint(self) -> None:
        """Persist the tabular values of live cases."""
        with self._lock:
            q = {
                self._ids[r]: float(self._q[r])
                for r in np.flatnonzero(self._alive[: len(self._ids)])
            }
        self._store.save_blob(_CHECKPOINT, json.dumps(q).encode())

    def reload(self) -> str:
        """Rebuild bank and statistics from the store and the last checkpoint."""
        self._load()
        return self.model_version

    def close(self) -> None:
        """Nothing to release."""


def build_demo_core(settings: ServingSettings, store: Store) -> DemoCore:
    """Factory for `MEMENTO_CORE=serving.demo_core:build_demo_core` (the default)."""
    return DemoCore(store, DemoCoreConfig(apply_delay_s=settings.demo_apply_delay_s))


__all__ = ["ACTION_WEIGHT", "DemoCore", "DemoCoreConfig", "build_demo_core", "encode_state"]
