"""The agent's case memory on the shared core: the same `CaseBank` and `Learner` classes as
the recommender, with an agent payload and its encoder.

Case payload: `{task, plan, outcome, answer, reward, trajectory_summary}`; key = text embedding
of the task (`PayloadCaseEncoder` with `state_weight=1`, the state being the task embedding).
Learning goes through the shared `recsys.loop.MemoryLoop.learn`, like replay and serving (they
reach it through `Recommender.learn`, whose scorer turns a shown list and the user's response
into per-candidate rewards; an agent task has no list and no scorer: its rewards come from the
judge and the plan, `agent.credit`, so the agent hands them to the loop itself). It is
bandit-like: each task is a one-step episode, so a transition is terminal (`next_state=None`:
done=True, an empty next candidate set; the soft TD target reduces to the judged reward). The
next task in the iteration order is unrelated to the cases chosen for this one, so
bootstrapping from it would only add noise. Each chosen case gets its own reward
(`agent.credit`: the cases the plan followed get the judged reward, the others `credit_beta`
times it), and the temperature is tuned towards a target entropy so the policy is not uniform.
Failed tasks are written too: they are the negative exemplars.

A memory folder (`save` / `load`) holds the case bank (`bank/`), the learner (`learner.pt`)
and `memory.json` (mode, encoder name and width), so a bank built on one run serves another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agent.errors import MemoryMismatchError
from recsys.config import CaseBankConfig, LearnerConfig, LearnerMode, PolicyConfig
from recsys.loop import Decided, MemoryLoop
from recsys.memory.case_bank import CaseBank
from recsys.memory.case_encoder import PayloadCaseEncoder
from recsys.memory.text_encoder import TextEncoder
from recsys.records import Candidates, Case, Choice
from recsys.rl.learner import Learner

__all__ = ["AgentMemory", "MemoryConfig", "MemoryMode", "agent_payload", "read_memory_meta"]

MemoryMode = Literal["soft-q", "non-parametric", "no-memory"]


def agent_payload(
    task: str,
    plan: list[str],
    answer: str,
    reward: float,
    trajectory_summary: str,
    success_threshold: float = 0.5,
) -> dict[str, Any]:
    """The agent case payload (outcome = success when reward >= success_threshold)."""
    return {
        "task": task,
        "plan": plan,
        "outcome": "success" if reward >= success_threshold else "failure",
        "answer": answer,
        "reward": float(reward),
        "trajectory_summary": trajectory_summary,
    }


def _payload_key(p: dict[str, Any]) -> str:
    """Identical (task, answer) attempts merge; different answers stay separate cases."""
    return hashlib.sha1(f"{p.get('task')}\x00{p.get('answer')}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MemoryConfig:
    """Case memory of the research agent."""

    mode: MemoryMode = "soft-q"
    """soft-q (learned Q over retrieved cases), non-parametric (cosine only) or no-memory."""
    top_k: int = 16
    """Cases retrieved per task (candidates of the policy)."""
    num_chosen: int = 3
    """Cases chosen by the policy and shown to the planner."""
    updates_per_task: int = 8
    """Learner gradient steps after each observed transition (soft-q)."""
    credit_beta: float = 0.1
    """Share of the task's reward given to chosen cases the plan did not follow."""
    success_threshold: float = 0.5
    """A reward at or above this makes a case a positive exemplar."""
    case_bank: CaseBankConfig = field(default_factory=lambda: CaseBankConfig(merge_threshold=0.98))
    """The shared case bank settings (repeated attempts of one task with one answer merge)."""
    learner: LearnerConfig = field(
        default_factory=lambda: LearnerConfig(
            batch_size=16,
            min_replay=1,
            lr=3e-3,
            policy=PolicyConfig(
                alpha=0.05,
                auto_alpha=True,
                target_entropy_ratio=0.4,
                alpha_lr=3e-3,
                list_draw="plackett-luce",
            ),
        )
    )
    """The shared learner settings (mode is overridden by `mode`). The planner's cases are
    drawn from softmax(Q / alpha) at every position (`list_draw` plackett-luce), the draw the
    agent benchmarks measured: the slotted explorer orders served item lists, and with it the
    held-out family's soft-q tied cosine retrieval (0.875 each)."""


class AgentMemory:
    """Retrieve, choose and write agent cases; feed judged rewards to the learner."""

    def __init__(self, encoder: TextEncoder, cfg: MemoryConfig = MemoryConfig()) -> None:
        self.cfg = cfg
        self.encoder = encoder
        self.case_encoder = PayloadCaseEncoder(
            encoder,
            payload_text=lambda p: str(p["task"]),
            payload_key=_payload_key,
            state_weight=1.0,
        )
        self.bank = CaseBank(cfg.case_bank, encoder.dim)
        learner_mode: LearnerMode = "non-parametric" if cfg.mode != "soft-q" else "soft-q"
        lcfg = dataclasses.replace(cfg.learner, mode=learner_mode)
        self.learner = Learner(lcfg, encoder.dim, encoder.dim)
        self.loop = MemoryLoop(self.learner, updates_per_learn=float(cfg.updates_per_task))

    @property
    def enabled(self) -> bool:
        """False in no-memory mode (nothing is retrieved; cases are still written)."""
        return self.cfg.mode != "no-memory"

    def embed(self, task: str) -> np.ndarray:
        """(d,) task embedding: the state s."""
        return self.encoder.encode([task])[0]

    def retrieve(self, state: np.ndarray) -> Candidates:
        """Top-K cases by cosine to the task (empty in no-memory mode or for an empty bank)."""
        if not self.enabled or len(self.bank) == 0:
            return Candidates.empty(self.encoder.dim)
        return self.bank.search(state, self.cfg.top_k)

    def choose(self, state: np.ndarray, cands: Candidates) -> Choice | None:
        """The learner's policy over the retrieved cases (None when there is none)."""
        if cands.num_valid == 0:
            return None
        return self.loop.decide(state, cands, self.cfg.num_chosen)

    def case(self, case_id: int) -> Case:
        """A stored case."""
        return self.bank.get(case_id)

    def write(self, state: np.ndarray, payload: dict[str, Any], ts: float | None = None) -> int:
        """Store one finished task as a case; returns its id."""
        case = self.case_encoder.make_cases(
            state[None, :],
            [payload],
            [float(payload["reward"])],
            [time.time() if ts is None else ts],
            source="agent",
        )[0]
        return self.bank.write(case)

    def observe(
        self, state: np.ndarray, cands: Candidates, choice: Choice, rewards: np.ndarray
    ) -> dict[str, float]:
        """One terminal bandit transition through `MemoryLoop.learn` with one reward per chosen
        case (`agent.credit.case_rewards`; `updates_per_task` learner steps); the last step's
        metrics."""
        m = len(choice.indices)
        assert rewards.shape == (m,), f"{rewards.shape=} {m=}"
        decided = Decided.of_choice(state, cands, choice)
        step = self.loop.learn(decided, rewards.astype(np.float32), None, None)
        for cid, r in zip(choice.case_ids, rewards, strict=True):
            c = self.bank.get(int(cid))  # utility: running mean of the credit it received
            mean = c.utility + (float(r) - c.utility) / (c.visits + 1)
            self.bank.update_stats(int(cid), visits=1, utility=mean)
        return step.metrics[-1] if step.metrics else {}

    @staticmethod
    def policy_entropy(choice: Choice) -> float:
        """Entropy (nats) of the policy's distribution over the retrieved cases."""
        p = choice.probs[choice.probs > 0].astype(np.float64)
        return float(-(p * np.log(p)).sum())

    # -- persistence --------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the bank, the learner and `memory.json` to `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bank.save(folder / "bank")
        self.learner.save(folder / "learner.pt")
        meta = {
            "mode": self.cfg.mode,
            "encoder": self.encoder.name,
            "dim": self.encoder.dim,
            "cases": len(self.bank),
        }
        (folder / "memory.json").write_text(json.dumps(meta, indent=2))

    def load(self, folder: Path) -> None:
        """Replace this memory's bank (and, in soft-q mode, learner) with those saved in
        `folder`; raises `MemoryMismatchError` when they were built with another encoder."""
        meta = read_memory_meta(folder)
        if meta["encoder"] != self.encoder.name or int(meta["dim"]) != self.encoder.dim:
            raise MemoryMismatchError(
                f"{folder} was built with encoder {meta['encoder']} ({meta['dim']}-d), this run "
                f"uses {self.encoder.name} ({self.encoder.dim}-d): export it and import it "
                "with this encoder (`memento agent memory export/import`)"
            )
        self.bank = CaseBank.load(folder / "bank")
        ckpt = folder / "learner.pt"
        if self.cfg.mode == "soft-q" and meta.get("mode") == "soft-q" and ckpt.exists():
            self.learner.load_state_dict(Learner.from_checkpoint(ckpt).state_dict())


def read_memory_meta(folder: Path) -> dict[str, Any]:
    """`memory.json` of a saved memory folder (raises `MemoryMismatchError` when absent)."""
    path = folder / "memory.json"
    if not path.exists():
        raise MemoryMismatchError(f"no saved agent memory at {folder} (memory.json missing)")
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta
