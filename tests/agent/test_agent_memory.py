"""`AgentMemory.observe` learns through the shared `MemoryLoop.learn` (terminal transitions)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.memory import AgentMemory, MemoryConfig, agent_payload
from recsys.loop import MemoryLoop
from recsys.memory.text_encoder import HashingTextEncoder


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def _memory() -> AgentMemory:
    """A soft-q memory holding four cases about related tasks."""
    mem = AgentMemory(HashingTextEncoder(dim=64), MemoryConfig(mode="soft-q", num_chosen=1))
    for k, task in enumerate(["sum of 2 and 3", "sum of 4 and 5", "sum of 6 and 7", "capital"]):
        mem.write(mem.embed(task), agent_payload(task, ["add"], str(k), 1.0, "t"), ts=float(k))
    return mem


def test_observe_hands_a_terminal_transition_to_the_shared_loop() -> None:
    """The learner behind `observe` is the loop's; its stored transition is done=True, s' = s,
    an empty next set, and each chosen case carries its own credited reward."""
    mem = _memory()
    assert isinstance(mem.loop, MemoryLoop) and mem.loop.learner is mem.learner
    s = mem.embed("sum of 2 and 4")
    cands = mem.retrieve(s)
    choice = mem.choose(s, cands)
    assert choice is not None
    mem.observe(s, cands, choice, np.full(len(choice.indices), 0.7, np.float32))
    (t,) = mem.learner.replay._items
    assert t.done and len(t.next_cands) == 0
    np.testing.assert_array_equal(t.next_state, s.astype(np.float32))
    np.testing.assert_array_equal(t.chosen, choice.indices)
    np.testing.assert_allclose(t.rewards, np.full(len(choice.indices), 0.7, np.float32))
    for cid in choice.case_ids:
        assert mem.case(int(cid)).visits == 1


def _train(reward: float) -> tuple[float, float, int]:
    """(Q of the chosen case before, after 5 observations of `reward`, learner step)."""
    mem = _memory()
    s = mem.embed("sum of 2 and 4")
    cands = mem.retrieve(s)
    choice = mem.choose(s, cands)
    assert choice is not None
    row = int(choice.indices[0])
    before = float(mem.learner.scores(s, cands)[row])
    for _ in range(5):
        metrics = mem.observe(s, cands, choice, np.full(len(choice.indices), reward, np.float32))
    assert metrics, "no gradient step ran"
    return before, float(mem.learner.scores(s, cands)[row]), mem.learner.step


def test_positive_reward_raises_the_chosen_cases_q() -> None:
    """A +1 judged reward raises the chosen case's Q towards 1 (done=True: the TD target is the
    reward itself), well above the same memory trained on a 0 reward."""
    before, after, steps = _train(1.0)
    before0, after0, _ = _train(0.0)
    assert steps == 5 * MemoryConfig().updates_per_task
    assert before == pytest.approx(before0)  # same seed, same start
    assert after > before + 0.5, (before, after)
    assert after > after0 + 0.5, (after, after0)
    assert abs(after0) < 0.2, after0
