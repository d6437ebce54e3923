"""The replayed log as arrays: events in time order, past-only states, case keys, catalogue.

Every per-event quantity here is computed from the past only:

- `history[j]`: the user's events that precede j in split order, the stable (ts, input
  position) order every split uses (`docs/protocol.md`): same-second rows that come earlier in
  that order included, later ones (same second or not) never. Every method reads it as its
  input and its seen-item mask;
- `state_vec[j]`: the user's state at the time of event j, built by `recsys.StateEncoder`
  from `history[j]` (zero vector when it is empty);
- `case_key[j]`: the key of the case "state before j -> item j" (`RecCaseEncoder`), written to
  the bank only once the replay clock is past `ts[j]`;
- `reward_window[j]`: the user's own events in [ts[j], ts[j] + W] (the reward of a decision
  at j, delivered after the window closes).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from recsys.config import RewardConfig, StateConfig
from recsys.memory.case_encoder import RecCaseEncoder
from recsys.memory.text_encoder import TextEncoder
from recsys.rec.items import ItemTable, TableTitleEncoder
from recsys.rec.reward import action_reward
from recsys.rec.state_encoder import StateEncoder
from recsys.records import Action, Interaction

__all__ = ["ReplayWorld", "build_world"]

log = logging.getLogger(__name__)


@dataclass
class ReplayWorld:
    """Events sorted by time (stable) with their past-only states and case keys.

    Shapes: n events, I catalogue items, d vector width.
    """

    user: np.ndarray
    """(n,) int64 user ids."""
    item: np.ndarray
    """(n,) int64 item ids."""
    action: list[str]
    """(n,) action names."""
    ts: np.ndarray
    """(n,) float64 unix seconds, non-decreasing."""
    held_out: np.ndarray
    """(n,) bool: test rows (never seen by training passes)."""
    has_history: np.ndarray
    """(n,) bool: the user has at least one earlier event in split order (a decision point)."""
    state_vec: np.ndarray
    """(n, d) float32 past-only user states."""
    case_key: np.ndarray
    """(n, d) float32 case keys."""
    case_reward: np.ndarray
    """(n,) float32 action weight of event j (the case's outcome reward)."""
    history: list[tuple[int, ...]]
    """Per event: indices of the user's earlier events in split order (stable (ts, input
    position) order: same-second earlier rows included), oldest first."""
    next_event: np.ndarray
    """(n,) int64: the user's next event strictly after ts[j] (-1 if none)."""
    window: list[tuple[int, ...]]
    """Per event: the user's events in [ts[j], ts[j] + W] (reward window)."""
    item_ids: np.ndarray
    """(I,) int64 catalogue."""
    item_vecs: np.ndarray
    """(I, d) float32 L2-normalised title vectors."""
    titles: dict[int, str]
    """item id -> title."""
    item_index: dict[int, int]
    """item id -> row in item_ids."""

    @property
    def n(self) -> int:
        """Number of events."""
        return int(self.user.shape[0])

    @property
    def dim(self) -> int:
        """Vector width d."""
        return int(self.state_vec.shape[1])

    def title(self, item: int) -> str:
        """Title of an item ("item <id>" when unknown)."""
        return self.titles.get(int(item)) or f"item {int(item)}"

    def list_reward(
        self, j: int, items: Sequence[int], cfg: RewardConfig, skip_held_out: bool = False
    ) -> tuple[float, set[int]]:
        """(reward, acted items) of a list shown at decision j: max action weight of the
        user's events in the window whose item is in the list (0, {} if none).
        skip_held_out: ignore held-out events (a training decision never sees test labels)."""
        shown = set(int(i) for i in items)
        best, acted = 0.0, set()
        for e in self.window[j]:
            if skip_held_out and self.held_out[e]:
                continue
            it = int(self.item[e])
            if it in shown:
                acted.add(it)
                best = max(best, action_reward(Action(self.action[e]), cfg))
        return best, acted

    def held_out_events(self, test: pl.DataFrame) -> np.ndarray:
        """(R,) event index of each row of a test frame (its row order), matched on
        (user, item, ts, action) like `build_world` marks them."""
        free: dict[tuple[int, int, float, str], list[int]] = {}
        for e in np.flatnonzero(self.held_out).tolist():
            key = (int(self.user[e]), int(self.item[e]), float(self.ts[e]), self.action[e])
            free.setdefault(key, []).append(e)
        out = []
        for key in _row_keys(test):
            events = free.get(key)
            assert events, f"test row {key} is not a held-out event of this world"
            out.append(events.pop(0))
        return np.array(out, np.int64)

    def next_labels(
        self, j: int, k: int, decay: float, skip_held_out: bool = False
    ) -> dict[int, float]:
        """Item id -> label of decision j's next k events (event j itself first): decay^p for
        the p-th of them (the largest where an item repeats). What the test scores is the
        first (the held-out event); the later ones add signal. skip_held_out: a training
        decision never sees a test label."""
        out: dict[int, float] = {}
        e, p = j, 0
        while e >= 0 and p < k:
            if not (skip_held_out and self.held_out[e]):
                it = int(self.item[e])
                out[it] = max(out.get(it, 0.0), decay**p)
                p += 1
            e = int(self.next_event[e])
        return out


def _row_keys(frame: pl.DataFrame) -> list[tuple[int, int, float, str]]:
    """(user, item, unix seconds, action) of each row: how a frame row names its event."""
    return [
        (int(u), int(i), float(t), str(a))
        for u, i, t, a in zip(
            frame["user_id"].to_list(),
            frame["item_id"].to_list(),
            _seconds(frame["ts"]).tolist(),
            frame["action"].cast(pl.String).to_list(),
            strict=True,
        )
    ]


def _seconds(ts: pl.Series) -> np.ndarray:
    return ts.cast(pl.Datetime("us")).dt.epoch("us").to_numpy().astype(np.float64) / 1e6


def build_world(
    interactions: pl.DataFrame,
    held_out: pl.DataFrame,
    items: pl.DataFrame,
    encoder: TextEncoder,
    state_cfg: StateConfig,
    reward_cfg: RewardConfig,
    window_hours: float,
    collab_dim: int = 0,
    collab_weight: float = 0.5,
    case_state_weight: float = 0.5,
) -> ReplayWorld:
    """Arrays of a split dataset: `interactions` = all rows, `held_out` = the test rows
    (matched by (user, item, ts, action) multiplicity).

    collab_dim > 0: item vectors = title vectors blended (`collab_weight`) with
    `training.item_vectors.collaborative_vectors` fitted on the non-held-out rows only.
    case_state_weight: share of the state in a case key (`RecCaseEncoder`); 1.0 keys a case
    by the situation alone, so retrieval finds what users did next from similar states."""
    df = interactions.with_row_index("_pos").sort(["ts", "_pos"])
    user = df["user_id"].to_numpy().astype(np.int64)
    item = df["item_id"].to_numpy().astype(np.int64)
    action = [str(a) for a in df["action"].cast(pl.String).to_list()]
    ts = _seconds(df["ts"])
    n = len(user)
    held = np.zeros(n, bool)
    want: dict[tuple[int, int, float, str], int] = {}
    for key in _row_keys(held_out):
        want[key] = want.get(key, 0) + 1
    for j in range(n - 1, -1, -1):  # held-out rows are the latest of their user: match from the end
        key = (int(user[j]), int(item[j]), float(ts[j]), action[j])
        if want.get(key, 0) > 0:
            held[j] = True
            want[key] -= 1
    assert sum(want.values()) == 0, "some held-out rows are not in the interactions"

    cat = items.select("item_id", "title").unique("item_id")
    titles = {int(i): str(t or "") for i, t in zip(cat["item_id"], cat["title"], strict=True)}
    all_items = np.unique(np.concatenate([np.array(list(titles), np.int64), item]))
    item_index = {int(i): k for k, i in enumerate(all_items)}
    texts = [titles.get(int(i)) or f"item {int(i)}" for i in all_items]
    vecs = np.asarray(encoder.encode(texts), np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    if collab_dim > 0:
        from training.item_vectors import blend_vectors, collaborative_vectors

        rows = np.array([item_index[int(i)] for i in item[~held]], np.int64)
        cf = collaborative_vectors(user[~held], rows, len(all_items), collab_dim)
        vecs = blend_vectors(vecs, cf, collab_weight)

    def item_vectors(ids: Sequence[str]) -> np.ndarray:
        return vecs[[item_index[int(i)] for i in ids]]

    def item_titles(ids: Sequence[str]) -> list[str]:
        return [titles.get(int(i)) or f"item {i}" for i in ids]

    senc = StateEncoder(state_cfg, item_vectors, item_titles, vecs.shape[1])
    by_user: dict[int, list[int]] = {}
    for j in range(n):
        by_user.setdefault(int(user[j]), []).append(j)
    state_vec = np.zeros((n, vecs.shape[1]), np.float32)
    history: list[tuple[int, ...]] = [()] * n
    next_event = np.full(n, -1, np.int64)
    window: list[tuple[int, ...]] = [()] * n
    w_sec = window_hours * 3600.0
    for u, evs in by_user.items():
        times = [float(ts[e]) for e in evs]
        objs = [Interaction(str(u), str(item[e]), Action(action[e]), float(ts[e])) for e in evs]
        for pos, e in enumerate(evs):
            history[e] = tuple(evs[:pos])  # every earlier row in split order (ts, input position)
            if pos:
                lo = max(0, pos - state_cfg.max_events)
                st = senc.encode(str(u), objs[lo:pos], now=times[pos])
                state_vec[e] = st.vec
            nxt = bisect.bisect_right(times, times[pos])
            next_event[e] = evs[nxt] if nxt < len(evs) else -1
            hi = bisect.bisect_right(times, times[pos] + w_sec)
            window[e] = tuple(evs[pos:hi])
    table = ItemTable([str(int(i)) for i in all_items], texts, vecs)
    case_enc = RecCaseEncoder(TableTitleEncoder(table), state_weight=case_state_weight)
    payloads = [{"title": texts[item_index[int(i)]]} for i in item]
    case_key = case_enc.keys(state_vec, payloads) if n else np.zeros((0, vecs.shape[1]))
    case_reward = np.array([action_reward(Action(a), reward_cfg) for a in action], np.float32)
    has_history = np.array([len(h) > 0 for h in history], bool)
    log.info(
        "world: %d events, %d items, %d held out, %d decision points",
        n,
        len(all_items),
        int(held.sum()),
        int(has_history.sum()),
    )
    return ReplayWorld(
        user=user,
        item=item,
        action=action,
        ts=ts,
        held_out=held,
        has_history=has_history,
        state_vec=state_vec,
        case_key=case_key.astype(np.float32),
        case_reward=case_reward,
        history=history,
        next_event=next_event,
        window=window,
        item_ids=all_items,
        item_vecs=vecs,
        titles=titles,
        item_index=item_index,
    )
