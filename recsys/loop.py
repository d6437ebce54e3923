"""`MemoryLoop`: the one decide / learn step over a case memory, shared by every adapter.

decide: state s + the cases retrieved for it (`Candidates`, K) -> the policy's choice of m
cases (`Choice`: indices, log-probabilities, probabilities).

learn: (s, K snapshot, chosen, behaviour log-probabilities) + per-case rewards + s' + the
candidate snapshot of s' + done -> `Transition` -> `Learner.observe` -> gradient steps
(`updates_per_learn` per transition, fractional values accumulate across calls).

Batched (`deferred`, the online service): `learn` only observes and keeps the transition as
pending; `train` (the service's learner thread, after a batch of queued feedback) runs
`updates_per_learn` steps per chunk of at most `batch_size` pending transitions, each step on
the chunk plus replay samples (`Learner.update(fresh=...)`): a feedback costs a share of a
step instead of `updates_per_learn` whole steps, and every new transition is learned from in
the step right after it arrives.

The recommender's adapters (replay, serving, the distributed replay) reach `learn` through
`recsys.rec.Recommender.learn`, where the scorer builds the transition of a decision and its
outcome; the agent, whose one-step episodes have no list and no scorer, calls it directly.
What s', its candidate snapshot and `done` mean in each context:

- **offline replay** (`training.replay_env`): s' is the user's state at their next event if that
  event happened before the reward window closed (the clock at which the transition is
  learned), its candidates are retrieved AS OF s''s own time (only cases whose outcome is
  strictly earlier than s''s event), and done=False; a user with no next event by then gives
  done=True and an empty snapshot. Log replay is a contextual bandit (the chosen cases do not
  change s'), so its configured gamma is normally 0;
- **online serving** (`serving.core`): s' is the user's state once the feedback's action is
  appended to their stored history, retrieved at the feedback's time; done=False (the user
  stays), so gamma > 0 is meaningful there: what was shown changes what the user does next;
- **research agent** (`agent.memory`): each task is a one-step episode, s' = s, empty snapshot,
  done=True (the soft TD target reduces to the judged reward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.records import Candidates, Choice, Transition
from recsys.rl.learner import Learner
from recsys.rl.slotted import ExploreWindow

__all__ = ["MAX_PENDING_CHUNKS", "Decided", "LearnStep", "MemoryLoop"]

MAX_PENDING_CHUNKS = 8
"""A deferred loop trains by itself once this many batches of transitions are pending (a
caller that never calls `train` still learns, with bounded memory)."""


@dataclass(frozen=True)
class Decided:
    """A decision as the learner needs it later: s, its K snapshot, the choice."""

    state: np.ndarray
    """(d,) state vector s."""
    cands: Candidates
    """(K) candidate snapshot of s as the policy saw it (Q view of the keys)."""
    chosen: np.ndarray
    """(m,) int64 rows of `cands` chosen by the policy."""
    logp: np.ndarray
    """(m,) float32 behaviour log-probabilities of the chosen rows."""

    def __post_init__(self) -> None:
        assert self.chosen.shape == self.logp.shape, f"{self.chosen.shape=} {self.logp.shape=}"

    @classmethod
    def of_choice(cls, state: np.ndarray, cands: Candidates, choice: Choice) -> Decided:
        """The decision a `MemoryLoop.decide` choice made: its rows and log-probabilities."""
        return cls(
            state.astype(np.float32),
            cands,
            choice.indices.astype(np.int64),
            choice.logp.astype(np.float32),
        )


@dataclass
class LearnStep:
    """What one `MemoryLoop.learn` call did."""

    transition: Transition
    """The transition handed to the learner."""
    metrics: list[dict[str, float]] = field(default_factory=list)
    """Metrics of each gradient step that ran (empty: none ran or nothing to learn yet)."""


class MemoryLoop:
    """Decide with a `Learner`'s policy; learn from credited rewards (module docstring)."""

    def __init__(
        self, learner: Learner, updates_per_learn: float = 1.0, deferred: bool = False
    ) -> None:
        assert updates_per_learn >= 0, f"{updates_per_learn=}"
        self.learner = learner
        self.updates_per_learn = updates_per_learn
        self.deferred = deferred
        """`learn` observes only; `train` runs the steps (module docstring)."""
        self._owed = 0.0
        self._pending: list[Transition] = []

    def decide(
        self,
        state: np.ndarray,
        cands: Candidates,
        m: int,
        greedy: bool = False,
        bias: np.ndarray | None = None,
        window: ExploreWindow | None = None,
    ) -> Choice:
        """The policy's choice of up to m valid cases (raises `NoCandidatesError` if none);
        `bias` (K,) is added to the scores, `window` overrides the exploration (`Learner.act`)."""
        return self.learner.act(state, cands, m, greedy=greedy, bias=bias, window=window)

    def learn(
        self,
        decided: Decided,
        rewards: np.ndarray,
        next_state: np.ndarray | None,
        next_cands: Candidates | None,
    ) -> LearnStep:
        """Observe one transition and run the gradient steps owed.

        rewards: (m,) credited reward of each chosen case (`recsys.rl.credit.assign_credit`).
        next_state / next_cands: s' and its own snapshot; None for a terminal transition
        (done=True, s' = s, empty snapshot).
        """
        rewards = np.asarray(rewards, np.float32)
        assert rewards.shape == decided.chosen.shape, f"{rewards.shape=} {decided.chosen.shape=}"
        done = next_state is None
        dim = int(decided.state.shape[0])
        t = Transition(
            state=decided.state,
            cands=decided.cands,
            chosen=decided.chosen.astype(np.int64),
            logp=decided.logp.astype(np.float32),
            rewards=rewards,
            next_state=decided.state if next_state is None else next_state,
            next_cands=(
                Candidates.empty(dim, decided.cands.features.shape[1])
                if done or next_cands is None
                else next_cands
            ),
            done=done,
        )
        self.learner.observe(t)
        step = LearnStep(t)
        if self.deferred:
            self._pending.append(t)
            if len(self._pending) >= MAX_PENDING_CHUNKS * self.learner.cfg.batch_size:
                step.metrics = self.train()  # nobody trains: stay bounded, learn anyway
            return step
        self._owed += self.updates_per_learn
        while self._owed >= 1.0:
            self._owed -= 1.0
            m = self.learner.update()
            if m:
                step.metrics.append(m)
        return step

    @property
    def pending(self) -> int:
        """Transitions observed by a deferred `learn` and not yet trained on."""
        return len(self._pending)

    def train(self) -> list[dict[str, float]]:
        """The deferred steps: per chunk of at most `batch_size` pending transitions,
        `updates_per_learn` steps (fractional values accumulate across calls) on the chunk
        plus replay samples; the metrics of each step that ran."""
        pending, self._pending = self._pending, []
        size = max(1, self.learner.cfg.batch_size)
        out: list[dict[str, float]] = []
        for lo in range(0, len(pending), size):
            chunk = pending[lo : lo + size]
            self._owed += self.updates_per_learn
            while self._owed >= 1.0:
                self._owed -= 1.0
                m = self.learner.update(fresh=chunk)
                if m:
                    out.append(m)
        return out
