"""`SoftQCore`: the Memento soft-Q recommender behind the service's `RecommenderCore` seam.

recommend: stored + request events -> `StateEncoder` (item-title vectors; context text as the
profile) -> case bank Top-K (faiss) -> `Learner.act` (softmax(min twin Q / alpha), m cases
sampled without replacement) -> candidate items (`recsys.rec.candidates`: chosen cases' items,
then catalog neighbours of the state) -> scores = summed policy probability of the cases that
contributed the item (+ 0.1 x neighbour cosine), or the frozen LLM's likelihood when
`MEMENTO_LLM` is set. A zero state (cold start) or an empty bank answers popular items.
feedback: `action_reward` -> online soft-Q step (`serving.soft_q_learning`: per-case credit
-> `Transition` -> `learner.observe` + `updates_per_feedback` x `learner.update()`) -> a case
keyed on the decision state, id `fb-<sha1(decision/item)>` (idempotent), written to bank and
case log. Case inspection/editing and tombstones live in `serving.case_memory.CaseMemory`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np

from recsys.memory.case_bank import FaissIndex
from recsys.rec.candidates import candidate_items
from recsys.rec.reward import action_reward
from recsys.records import Action, Candidates, Interaction, UserState
from serving.case_memory import CaseMemory
from serving.core_state import (
    SNAPSHOT_DIR,
    DecisionBlob,
    Runtime,
    build_runtime,
    case_items,
    log_case,
    user_state,
)
from serving.llm_rerank import LLMReranker
from serving.model_loader import save_snapshot
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
from serving.soft_q_learning import learn_from_feedback
from serving.store import Store

logger = logging.getLogger(__name__)

_ACTIONS = {a.value: a for a in Action}
NEIGHBOUR_WEIGHT = 0.1
"""Score of a catalog neighbour per unit cosine (case items score their policy probability)."""


def _interactions(user_id: str, events: Sequence[CoreEvent]) -> list[Interaction]:
    return [
        Interaction(user_id, e.item_id, _ACTIONS[e.action], float(e.ts))
        for e in events
        if e.action in _ACTIONS
    ]


def _shortlist(rt: Runtime, vec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The catalog rows that can be among the n nearest (argpartition, so `candidate_items`
    sorts n rows, not the whole catalog); (row ids, vectors)."""
    row_ids, vecs = rt.catalog.matrix()
    if n <= 0 or n >= len(row_ids):
        return row_ids, vecs
    top = np.argpartition(-(vecs @ vec), n - 1)[:n]
    return row_ids[top], vecs[top]


class SoftQCore:
    """Thread-safe soft-Q core (see the module docstring); `reload` swaps a new runtime in."""

    def __init__(self, settings: ServingSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._swap = threading.Lock()
        self._generation = 0
        self._llm = LLMReranker(settings.llm) if settings.llm != "none" else None
        self._ctx_cache: dict[str, np.ndarray] = {}
        self._memory = CaseMemory(store, lambda: self._rt, self.encode_state)
        self._rt: Runtime = build_runtime(settings, store)
        self._thread = threading.local()

    def _limit_threads(self) -> None:
        """Cap faiss's OpenMP threads once per request thread (the ICV is per thread)."""
        n = self._settings.blas_threads
        if n > 0 and not getattr(self._thread, "limited", False):
            FaissIndex.set_threads(n)
            self._thread.limited = True

    # --- versions and sizes ---------------------------------------------------------------
    @property
    def model_version(self) -> str:
        """`softq:<model version>.r<reload generation>`."""
        return f"softq:{self._rt.version}.r{self._generation}"

    def bank_size(self) -> int:
        """Live cases in the bank."""
        return len(self._rt.model.bank)

    @property
    def runtime(self) -> Runtime:
        """The runtime now serving (tests, load test)."""
        return self._rt

    # --- state ------------------------------------------------------------------------------
    def _profile(self, rt: Runtime, context: Mapping[str, str]) -> np.ndarray | None:
        if not context:
            return None
        text = "; ".join(f"{k}={v}" for k, v in sorted(context.items()))
        vec = self._ctx_cache.get(text)
        if vec is None:
            vec = rt.encoder.encode([text])[0]
            if len(self._ctx_cache) < 10_000:
                self._ctx_cache[text] = vec
        return vec

    def encode_state(
        self,
        user_id: str,
        events: Sequence[CoreEvent],
        context: Mapping[str, str],
        now: float,
        rt: Runtime | None = None,
    ) -> UserState:
        """The user's state from events + context (zero vector for a cold start)."""
        rt = rt or self._rt
        inter = _interactions(user_id, events)
        return rt.state_encoder.encode(user_id, inter, now, self._profile(rt, context))

    # --- recommend --------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        n: int,
        context: Mapping[str, str],
        recent_events: Sequence[CoreEvent],
        exclude_items: Sequence[str],
        explain: bool,
    ) -> CoreRecommendation:
        """State -> Top-K -> soft-Q policy -> items (module docstring); never raises on users."""
        rt = self._rt
        self._limit_threads()
        now = time.time()
        state = self.encode_state(user_id, recent_events, context, now, rt)
        excluded = set(exclude_items)
        bank = rt.model.bank
        cands: Candidates | None = None
        if np.any(state.vec) and len(bank):
            with rt.lock:
                cands = bank.search(state.vec, self._settings.top_k, now)
                sids = [rt.sid_of[int(i)] for i in cands.case_ids]
                payloads = [bank.get(int(i)).payload for i in cands.case_ids]
            cands = rt.q_view(cands, payloads)
        if cands is None or cands.num_valid == 0:
            return self._cold_start(rt, state, n, excluded, explain)
        choice = rt.model.learner.act(state.vec, cands, self._settings.num_chosen)
        chosen = [int(j) for j in choice.indices]
        order = sorted(range(len(chosen)), key=lambda k: -float(choice.probs[chosen[k]]))
        chosen = [chosen[k] for k in order]
        logp = [float(choice.logp[k]) for k in order]
        items_of = [case_items(payloads[j]) for j in chosen]
        scores: dict[str, float] = {}
        for j, its in zip(chosen, items_of, strict=True):
            for item in its:
                scores[item] = scores.get(item, 0.0) + float(choice.probs[j])
        flat = [i for its in items_of for i in its if i not in excluded]
        case_rows = rt.catalog.rows(flat)
        excl_rows = rt.catalog.known_rows(excluded)
        row_ids, vecs = _shortlist(
            rt, state.vec, self._settings.neighbours + len(excl_rows) + len(case_rows)
        )
        cand_rows = candidate_items(
            case_rows, state.vec, row_ids, vecs, self._settings.neighbours, exclude=excl_rows
        )
        vecs = rt.catalog.matrix()[1]
        fresh = [r for r in cand_rows if rt.catalog.id_of(r) not in scores]
        sims = vecs[fresh] @ state.vec if fresh else np.zeros(0, np.float32)
        for row, sim in zip(fresh, sims, strict=True):
            scores[rt.catalog.id_of(row)] = NEIGHBOUR_WEIGHT * max(float(sim), 0.0)
        ranked = sorted(
            ((s, i) for i, s in scores.items() if i not in excluded), key=lambda t: (-t[0], t[1])
        )
        why = None
        if self._llm is not None and ranked:
            ranked, why = self._llm_rank(
                rt, state, ranked, chosen, payloads, recent_events, explain
            )
        ranked = ranked[:n]
        if len(ranked) < n:
            have = {i for _, i in ranked} | excluded
            ranked += [(0.0, i) for i in rt.catalog.popular(n - len(ranked), have)]
        titles = rt.catalog.titles([i for _, i in ranked])
        items = tuple(
            RankedItem(i, t, round(float(s), 6)) for (s, i), t in zip(ranked, titles, strict=True)
        )
        cases = tuple(CaseChoice(sids[j], float(choice.probs[j])) for j in chosen)
        blob = DecisionBlob(
            sids=sids,
            sims=[float(x) for x in cands.sims],
            feats=cands.features.astype(float).tolist(),
            chosen=chosen,
            logp=logp,
            case_items=items_of,
            text=state.text,
        )
        if explain and why is None:
            why = "; ".join(f"case {c.case_id} mu={c.weight:.3f}" for c in cases)
            why += f"; state: {state.text}"
        return CoreRecommendation(items, cases, state.vec.tobytes(), blob.encode(), why)

    def _cold_start(
        self, rt: Runtime, state: UserState, n: int, excluded: set[str], explain: bool
    ) -> CoreRecommendation:
        ranked: list[tuple[float, str]] = []
        if np.any(state.vec):  # known taste, empty bank: catalog neighbours
            row_ids, vecs = _shortlist(rt, state.vec, n + len(excluded))
            rows = candidate_items([], state.vec, row_ids, vecs, n + len(excluded))
            vecs = rt.catalog.matrix()[1]
            ranked = [
                (NEIGHBOUR_WEIGHT * max(float(vecs[r] @ state.vec), 0.0), rt.catalog.id_of(r))
                for r in rows
                if rt.catalog.id_of(r) not in excluded
            ][:n]
        have = {i for _, i in ranked} | excluded
        pop = rt.catalog.popular(n - len(ranked), have)
        top = max(rt.catalog.popularity[pop[0]], 1) if pop else 1
        ranked += [(0.01 * rt.catalog.popularity[i] / top, i) for i in pop]
        titles = rt.catalog.titles([i for _, i in ranked])
        items = tuple(
            RankedItem(i, t, round(s, 6)) for (s, i), t in zip(ranked, titles, strict=True)
        )
        why = "cold start: popular and neighbouring items, no case chosen" if explain else None
        blob = DecisionBlob([], [], [], [], [], [], state.text)
        return CoreRecommendation(items, (), state.vec.tobytes(), blob.encode(), why)

    def _llm_rank(
        self,
        rt: Runtime,
        state: UserState,
        ranked: list[tuple[float, str]],
        chosen: list[int],
        payloads: list[dict[str, object]],
        events: Sequence[CoreEvent],
        explain: bool,
    ) -> tuple[list[tuple[float, str]], str | None]:
        assert self._llm is not None, "no LLM loaded"
        head = [i for _, i in ranked[: self._settings.llm_candidates]]
        titles = rt.catalog.titles(head)
        recent = list(events)[-10:]
        history = list(
            zip(
                rt.catalog.titles([e.item_id for e in recent]),
                [e.action for e in recent],
                strict=True,
            )
        )
        shots = []
        for j in chosen:
            p = payloads[j]
            title = " ".join(rt.catalog.titles(case_items(p)))
            reward = p.get("reward", 1.0)
            positive = float(reward) > 0 if isinstance(reward, int | float) else True
            shots.append((str(p.get("user_summary", ""))[:200], title, positive))
        prompt = self._llm.prompt(history, shots, titles)
        llm_scores = self._llm.rank(prompt, titles)
        order = np.argsort(-llm_scores, kind="stable")
        out = [(float(llm_scores[k]), head[k]) for k in order]
        out += [(s - 1e6, i) for s, i in ranked[len(head) :]]
        why = self._llm.explain(prompt, titles[int(order[0])]) if explain else None
        return out, why

    # --- learning ---------------------------------------------------------------------------
    def observe_events(self, user_id: str, events: Sequence[CoreEvent]) -> None:
        """Add the items to the catalog and popularity (state is rebuilt per request)."""
        self._rt.catalog.ensure(e.item_id for e in events)
        self._rt.catalog.count(e.item_id for e in events)

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Reward -> credited transition -> online soft-Q update -> case (idempotent id)."""
        if self._settings.demo_apply_delay_s:
            time.sleep(self._settings.demo_apply_delay_s)
        rt = self._rt
        self._limit_threads()
        cfg = rt.model.config
        act = _ACTIONS[action]
        reward = action_reward(act, cfg.reward, dwell_seconds)
        snap = DecisionBlob.decode(decision.candidates)
        state = user_state(decision.user_id, decision.state, snap.text, decision.ts)
        td_loss = None
        if snap.chosen and state.vec.shape == (rt.dim,):
            td_loss = learn_from_feedback(
                rt,
                self._settings,
                self._store,
                self.encode_state,
                decision,
                snap,
                state,
                item_id,
                act,
                reward,
            )
        sid = self._memory.add_feedback_case(rt, decision, state, item_id, act, reward)
        return LearnerUpdate(reward=reward, td_loss=td_loss, new_case_id=sid)

    # --- memory inspection and editing (`CaseMemory`) ---------------------------------------
    def write_case(self, case: NewCase) -> str:
        """A case keyed on the state its events/context define, about its items."""
        return self._memory.write_case(case)

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case; value = min twin Q of the case in its own key state."""
        return self._memory.get_case(case_id)

    def delete_case(self, case_id: str) -> bool:
        """Remove from bank, soft-delete in the log, tombstone (snapshot/registry copies)."""
        return self._memory.delete_case(case_id)

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases owned by a user, oldest first."""
        return self._memory.list_cases(user_id)

    def erase_user(self, user_id: str) -> int:
        """Drop the user's cases (bank + tombstones), recount popularity, force a snapshot."""
        return self._memory.erase_user(user_id)

    # --- persistence ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Save the learner; the bank too once enough cases changed (or after an erasure)."""
        rt = self._rt
        dst = self._settings.resolved_checkpoint_dir() / SNAPSHOT_DIR
        with rt.lock:
            with_bank = rt.force_snapshot or rt.changed >= self._settings.snapshot_every_cases
            save_snapshot(
                rt.model,
                dst,
                with_bank=with_bank or not (dst / "bank").exists(),
                version=rt.version,
            )
            if with_bank:
                rt.changed, rt.force_snapshot = 0, False

    def reload(self) -> str:
        """Build a new runtime (registry alias / snapshot + log), then swap it in."""
        with self._swap:
            new = build_runtime(self._settings, self._store)
            old = self._rt
            with old.lock:
                missing = [
                    r
                    for r in self._store.live_cases()
                    if r.case_id not in new.int_of and not self._memory.is_tombstoned(r.case_id)
                ]
                with new.lock:
                    new.add_cases(
                        [log_case(new, r) for r in missing],
                        [r.case_id for r in missing],
                        [r.user_id for r in missing],
                    )
                self._rt = new
            self._generation += 1
        return self.model_version

    def close(self) -> None:
        """Nothing to release (the learner thread checkpoints before)."""


def build_soft_q_core(settings: ServingSettings, store: Store) -> SoftQCore:
    """Factory for `MEMENTO_CORE=serving.soft_q_core:build_soft_q_core` (the default)."""
    if settings.blas_threads > 0:
        import torch

        torch.set_num_threads(settings.blas_threads)
    return SoftQCore(settings, store)


__all__ = ["NEIGHBOUR_WEIGHT", "SoftQCore", "build_soft_q_core"]
