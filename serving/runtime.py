"""The served model: a `ModelBundle` + its `Recommender`, case-id maps and where it came from.

`build_runtime` picks the bundle (`serving.model_source.choose_bundle`: registry alias ->
local snapshot -> fresh from a catalogue file), restores the case bank from the snapshot plus the
store's case log (`serving.case_log`: live logged cases missing from the bank are added,
tombstoned ones removed) and adds the stored events to the popularity log. `reload()` builds a
new `Runtime` this way and swaps it in; requests keep the runtime they started with.

An item is recommendable only through the catalogue: the bundle's items plus the rows of
`MEMENTO_ITEMS_PATH`. Events, feedback and cases naming other ids never add to it.

Lock discipline (request threads, the learner thread and the decision writer share this state;
`ServingCore` and `CaseMemory` follow it, `tests/serving/test_concurrency.py` hammers it):
- `Runtime.lock` (= `Recommender.lock`, an RLock) guards the case bank and everything that
  indexes it: `sid_of`, `int_of`, `by_user`, `changed`, `force_snapshot`. Every bank read or
  write holds it (retrieval, feedback cases, memory reads and edits, erasure, checkpoint).
- Leaf locks, never held while another lock is taken: `Popularity._lock` (the event log),
  `LiveCooccurrence._lock` / `_refit_lock` (the event window; one refit at a time, outside the
  window lock), `Learner._lock` (the Q networks: forward passes vs the optimiser step),
  `Store._lock`, the decision writer's, `CaseMemory._tomb_lock`.
- `rec.cooc` is replaced whole (one reference assignment, by the live co-occurrence's publish
  callback), never changed in place; a request reads whichever counts are current.
- `ServingCore` adds two outer locks: `_swap` (reload, user erasure and case deletion run one
  at a time, so an erasure never lands on a runtime that is about to be replaced) and the
  `EventGate` `_events` (any number of `observe_events` at once, or the reload's last step
  alone: load the stored events into the new runtime and swap it in, so no event is observed
  by a runtime whose successor did not see it).
- Order: `_swap` -> `_events` -> `Runtime.lock` (old, then new) -> leaf locks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.bundle import ModelBundle
from recsys.memory.case_bank import CaseBank
from recsys.memory.case_encoder import RecCaseEncoder
from recsys.memory.text_encoder import TextEncoder, build_text_encoder
from recsys.rec.cooccurrence import Cooccurrence, LiveCooccurrence
from recsys.rec.items import ItemTable, TableTitleEncoder
from recsys.rec.popularity import Popularity
from recsys.rec.recommender import Recommender
from recsys.records import Case
from recsys.rl.learner import Learner
from recsys.rl.replay import ReplayBuffer
from serving.case_capacity import (
    AgeQueue,
    auto_byte_capacity,
    auto_capacity,
    case_bytes,
    slack_of,
)
from serving.case_log import forget_cases, load_tombstones, log_case
from serving.model_source import (
    choose_bundle,
    online_learner,
    read_items_parquet,
)
from serving.settings import ServingSettings
from serving.store import Store

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one model generation serves with; `lock` (the recommender's) guards the bank
    and the id maps (module docstring: the lock discipline)."""

    bundle: ModelBundle
    """The model."""
    rec: Recommender
    """The one recommend pipeline over the bundle."""
    case_encoder: RecCaseEncoder
    """(state, item) -> case key, with the bundle's item vectors."""
    text: TextEncoder | None
    """Context-profile encoder (None when its width differs from the model's)."""
    version: str
    """Model version (without the reload generation)."""
    base_popularity: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0))
    """The bundle's own popularity log (rows, ts): rebuilt from it + stored events on erasure."""
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
    live_cooc: LiveCooccurrence | None = None
    """Co-occurrence growing with the served events (None: the bundle's own counts only)."""
    capacity: int = 0
    """Cases the bank keeps (0: unbounded); the oldest leave first (`serving.case_capacity`)."""
    byte_capacity: int = 0
    """Case bytes the bank keeps (`case_bytes`; 0: no byte bound); the oldest leave first."""
    held_bytes: int = 0
    """`case_bytes` of every case in the bank."""
    ages: AgeQueue = field(default_factory=AgeQueue)
    """The cases that may leave by age (all but hand-written ones), oldest first."""
    evicted: int = 0
    """Cases that left by age since this runtime was built."""
    on_evict: Callable[[list[str]], None] | None = None
    """Told the ids that left by age (the store soft-deletes them from the case log)."""

    @property
    def lock(self) -> Any:
        """The recommender's lock (bank reads and writes)."""
        return self.rec.lock

    @property
    def dim(self) -> int:
        """State / key dimension."""
        return self.bundle.dim

    @property
    def items(self) -> ItemTable:
        """The catalogue."""
        return self.bundle.items

    @property
    def bank(self) -> CaseBank:
        """The case bank."""
        return self.bundle.bank

    @property
    def learner(self) -> Learner:
        """The case policy."""
        return self.bundle.learner

    def add_cases(self, cases: list[Case], sids: list[str], owners: list[str]) -> None:
        """Write cases to the bank and index their ids (caller holds `lock`)."""
        if not cases:
            return
        ids = self.bank.write_batch(cases)
        for cid, sid, owner, case in zip(ids, sids, owners, cases, strict=True):
            if cid not in self.sid_of:  # not merged into a case already held
                self.held_bytes += case_bytes(case)
            self.sid_of[cid], self.int_of[sid] = sid, cid
            if owner:
                self.by_user[owner].add(sid)
            if case.payload.get("source") != "manual":
                self.ages.push(case.ts, sid)
        self.changed += len(cases)
        self.enforce_capacity()

    def enforce_capacity(self, *, exact: bool = False) -> int:
        """Evict the oldest cases once the bank is over its capacity or its byte capacity by
        the slack (`exact`: by any amount), down to both (caller holds `lock`); how many left."""
        over = len(self.bank) - self.capacity if self.capacity > 0 else 0
        over_bytes = self.held_bytes - self.byte_capacity if self.byte_capacity > 0 else 0
        due = over > 0 or over_bytes > 0
        if not exact:
            due = over > slack_of(self.capacity) or over_bytes > slack_of(self.byte_capacity)
        if not due:
            return 0
        victims = self.ages.pop_oldest(max(over, 0), self.int_of)
        freed = sum(case_bytes(self.bank.get(self.int_of[s])) for s in victims)
        while over_bytes - freed > 0:
            more = self.ages.pop_oldest(1, self.int_of)
            if not more:
                break
            victims += more
            freed += case_bytes(self.bank.get(self.int_of[more[0]]))
        self.remove(victims)
        self.ages.compact(self.int_of, len(self.int_of))
        self.evicted += len(victims)
        if victims and self.on_evict is not None:
            self.on_evict(victims)
        return len(victims)

    def remove(self, sids: list[str]) -> int:
        """Remove cases by string id (caller holds `lock`); how many were live."""
        rows = [self.int_of.pop(s) for s in sids if s in self.int_of]
        for r in rows:
            sid = self.sid_of.pop(r)
            case = self.bank.get(r)
            self.held_bytes -= case_bytes(case)
            owner = str(case.payload.get("user_id", ""))
            self.by_user.get(owner, set()).discard(sid)
        self.bank.delete(rows)
        self.changed += len(rows)
        return len(rows)

    def count_events(self, item_ids: list[str], ts: list[float]) -> None:
        """Add catalogue events to the popularity log (other ids are ignored)."""
        keep = [
            (self.items.row_of[i], t) for i, t in zip(item_ids, ts, strict=True) if i in self.items
        ]
        if keep:
            rows, times = zip(*keep, strict=True)
            self.bundle.popularity.add(np.array(rows), np.array(times))

    def observe(self, user_id: str, item_ids: list[str], ts: list[float]) -> None:
        """A user's events: popularity counts, and the live co-occurrence (published into the
        recommender when it refits). Takes leaf locks only (no `lock`)."""
        self.count_events(item_ids, ts)
        if self.live_cooc is None:
            return
        keep = [
            (self.items.row_of[i], t) for i, t in zip(item_ids, ts, strict=True) if i in self.items
        ]
        self.live_cooc.add(user_id, [r for r, _ in keep], [t for _, t in keep])

    def publish_cooc(self, counts: Cooccurrence) -> None:
        """The live co-occurrence's publish callback: the recommender reads these counts now."""
        self.rec.cooc = counts

    def forget_user_events(self, user_id: str) -> None:
        """Erasure: the user's events leave the live co-occurrence at once (refit + publish)."""
        if self.live_cooc is not None:
            self.live_cooc.forget(user_id)

    def rebuild_popularity(self, store: Store) -> None:
        """Popularity = the bundle's own log + the events still stored (after an erasure),
        swapped in at once (under the popularity's own lock; callers serialise erasures)."""
        rows, ts = self.base_popularity
        row_of = self.items.row_of
        stored = [(row_of[e.item_id], e.ts) for _, e in store.iter_events() if e.item_id in row_of]
        extra_rows = np.array([r for r, _ in stored], np.int64)
        extra_ts = np.array([t for _, t in stored], np.float64)
        self.bundle.popularity.replace(
            np.concatenate([rows, extra_rows]), np.concatenate([ts, extra_ts])
        )


class EventGate:
    """Many event observers at once, or the reload's swap alone (a readers-writer lock that
    prefers the writer: once a swap waits, new observers wait behind it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._observers = 0
        self._swapping = False

    @contextlib.contextmanager
    def observing(self) -> Iterator[None]:
        """Held while events are observed on the current runtime."""
        with self._cond:
            self._cond.wait_for(lambda: not self._swapping)
            self._observers += 1
        try:
            yield
        finally:
            with self._cond:
                self._observers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def swapping(self) -> Iterator[None]:
        """Held while the next runtime loads the stored events and is swapped in."""
        with self._cond:
            self._cond.wait_for(lambda: not self._swapping)
            self._swapping = True
            self._cond.wait_for(lambda: self._observers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()


def load_events(rt: Runtime, store: Store) -> None:
    """Count the stored events in the popularity log and the live co-occurrence (refit and
    published once)."""
    stored = list(store.iter_events())
    rt.count_events([e.item_id for _, e in stored], [e.ts for _, e in stored])
    if rt.live_cooc is not None and stored:
        row_of = rt.items.row_of
        for uid, e in stored:
            if e.item_id in row_of:
                rt.live_cooc.add(uid, [row_of[e.item_id]], [e.ts], refit=False)
        rt.live_cooc.refit()


def build_runtime(settings: ServingSettings, store: Store, *, events: bool = True) -> Runtime:
    """Bundle from registry/snapshot/fresh, + catalogue file, bank = snapshot + case log, +
    the stored events (`events=False`: the caller runs `load_events` later, e.g. a reload)."""
    bundle, version, source = choose_bundle(settings)
    online_learner(bundle, settings)
    capacity = settings.fresh.learner.replay_capacity  # the online window, any model
    if bundle.learner.replay.capacity != capacity:  # loaded: empty
        bundle.learner.replay = ReplayBuffer(capacity, bundle.learner.cfg.seed)
    text: TextEncoder | None = None
    if bundle.config.text.width == bundle.dim:
        text = build_text_encoder(bundle.config.text)
    if settings.items_path is not None and not source.startswith("fresh"):
        ids, titles = read_items_parquet(settings.items_path)
        if text is not None:
            new = bundle.items.extend(ids, titles, np.asarray(text.encode(titles), np.float32))
            bundle.popularity.grow(len(bundle.items))
            logger.info("catalogue file %s added %d items", settings.items_path, new)
        else:
            logger.warning("catalogue file ignored: the model's item vectors are not text-only")
    rec = bundle.recommender(updates_per_learn=float(settings.updates_per_feedback))
    enc = RecCaseEncoder(TableTitleEncoder(bundle.items), bundle.config.case_bank.key_state_weight)
    rt = Runtime(bundle, rec, enc, text, version, bundle.popularity.log())
    rt.on_evict = lambda sids: forget_cases(store, sids)
    if settings.live_cooccurrence:
        rt.live_cooc = LiveCooccurrence(
            bundle.cooc,
            len(bundle.items),
            refit_every=settings.cooccurrence_refit_every,
            max_events=settings.cooccurrence_max_events,
            publish=rt.publish_cooc,
            half_life_hours=bundle.config.recommend.cooc_half_life_hours,
            successions_across_times=bundle.config.recommend.cooc_successions_across_times,
        )
    if events:
        load_events(rt, store)
    tomb = load_tombstones(store)
    with rt.lock:
        own = len(bundle.bank)  # the automatic capacities: the model's bank, not the case log
        for cid in bundle.bank.ids():
            case = bundle.bank.get(cid)
            payload = case.payload
            sid = str(payload.get("sid") or f"r{cid}")
            rt.held_bytes += case_bytes(case)
            rt.sid_of[cid], rt.int_of[sid] = sid, cid
            if payload.get("user_id"):
                rt.by_user[str(payload["user_id"])].add(sid)
            if payload.get("source") != "manual":
                rt.ages.push(case.ts, sid)
        gone = [s for s in rt.int_of if s in tomb]
        rt.remove(gone)
        own_live, own_bytes = len(bundle.bank), rt.held_bytes
        missing = [
            r for r in store.live_cases() if r.case_id not in rt.int_of and r.case_id not in tomb
        ]
        for k in range(0, len(missing), 20_000):
            chunk = missing[k : k + 20_000]
            rt.add_cases(
                [log_case(rt, r) for r in chunk],
                [r.case_id for r in chunk],
                [r.user_id for r in chunk],
            )
        rt.changed = len(missing) + len(gone)
        rt.capacity = auto_capacity(settings.case_capacity, own)
        rt.byte_capacity = auto_byte_capacity(rt.capacity, own_live, own_bytes)
        rt.enforce_capacity(exact=True)
    logger.info(
        "serving %s: %d cases (%d from the case log, %d tombstoned, %d over capacity %d "
        "or %.1f MB), %d catalogue items",
        source,
        len(bundle.bank),
        len(missing),
        len(gone),
        rt.evicted,
        rt.capacity,
        rt.byte_capacity / 1e6,
        len(bundle.items),
    )
    return rt


def save_snapshot(rt: Runtime, dst: Path, *, with_bank: bool) -> None:
    """Write the served bundle (learner, + bank when asked) to `dst`; `meta.base` records the
    registered version it descends from. Its popularity log is the bundle's own: the served
    events live in the store and `build_runtime` counts them again at the next start."""
    rt.bundle.version = rt.version
    pop = rt.bundle.popularity
    own = Popularity(pop.n_items, *rt.base_popularity, half_life_hours=pop.half_life_hours)
    dataclasses.replace(rt.bundle, popularity=own).save(dst, with_bank=with_bank)
