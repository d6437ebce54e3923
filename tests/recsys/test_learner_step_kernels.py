"""The learner step's cheaper kernels give the numbers of the plain ones: the padded batch, the
multi-tensor Polyak average and Adam step, the gamma-0 target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.config import LearnerConfig
from recsys.records import CandidateBatch, Candidates, Transition
from recsys.rl.learner import Learner, polyak_update
from recsys.rl.losses import soft_td_target
from recsys.rl.q_network import TwinQNetwork
from recsys.rl.replay import collate_transitions

D, F = 6, 4


def _cands(n: int, seed: int) -> Candidates:
    rng = np.random.default_rng(seed)
    return Candidates(
        case_ids=rng.integers(0, 1000, size=n).astype(np.int64),
        keys=rng.normal(size=(n, D)).astype(np.float32),
        sims=rng.uniform(size=n).astype(np.float32),
        features=rng.uniform(size=(n, F)).astype(np.float32),
        mask=rng.uniform(size=n) < 0.8,
    )


@pytest.mark.parametrize("k", [None, 3, 9])
def test_from_candidates_equals_the_stacked_padded_sets(k: int | None) -> None:
    """Filled in place, the batch is `padded(k)` of every set stacked (short, long, empty)."""
    sets = [_cands(n, s) for s, n in enumerate([5, 0, 7, 2])]
    got = CandidateBatch.from_candidates(sets, k)
    p = [c.padded(k if k is not None else 7) for c in sets]
    for name in ("case_ids", "keys", "sims", "features", "mask"):
        want = np.stack([getattr(c, name) for c in p])
        assert np.array_equal(getattr(got, name).numpy(), want), name


def test_polyak_foreach_is_the_per_parameter_formula_bit_for_bit() -> None:
    """One multi-tensor update equals mul_(1 - tau).add_(online, alpha=tau) per parameter."""
    cfg = LearnerConfig().q
    torch.manual_seed(0)
    online, target = TwinQNetwork(cfg, D, D), TwinQNetwork(cfg, D, D)
    want = [t.detach().clone().mul_(0.99).add_(o, alpha=0.01) for t, o in
            zip(target.parameters(), online.parameters(), strict=True)]  # fmt: skip
    polyak_update(list(target.parameters()), list(online.parameters()), 0.01)
    for w, t in zip(want, target.parameters(), strict=True):
        assert torch.equal(w, t)


def _transition(seed: int) -> Transition:
    c = _cands(5, seed)
    c = Candidates(c.case_ids, c.keys, c.sims, c.features, np.ones(5, bool))
    rng = np.random.default_rng(seed)
    return Transition(
        state=rng.normal(size=D).astype(np.float32),
        cands=c,
        chosen=np.array([0, 2], np.int64),
        logp=np.zeros(2, np.float32),
        rewards=rng.uniform(size=2).astype(np.float32),
        next_state=rng.normal(size=D).astype(np.float32),
        next_cands=Candidates.empty(D, F),
        done=True,
    )


def test_foreach_adam_steps_equal_one_tensor_at_a_time() -> None:
    """Twenty updates with the multi-tensor Adam leave the weights a per-tensor Adam leaves."""
    cfg = LearnerConfig(min_replay=1, batch_size=4, lr=1e-2)
    fast, plain = Learner(cfg, D, D), Learner(cfg, D, D)
    plain.opt = torch.optim.Adam(plain._params, lr=cfg.lr, foreach=False)
    for s in range(20):
        for learner in (fast, plain):
            learner.observe(_transition(s))
            learner.update()
    for a, b in zip(fast.q.parameters(), plain.q.parameters(), strict=True):
        assert torch.equal(a, b)


def test_loaded_optimiser_state_keeps_the_multi_tensor_step() -> None:
    """A state saved by a per-tensor Adam is loaded into the multi-tensor one."""
    cfg = LearnerConfig(min_replay=1, batch_size=4)
    old = Learner(cfg, D, D)
    old.opt = torch.optim.Adam(old._params, lr=cfg.lr)
    new = Learner(cfg, D, D)
    new.load_state_dict(old.state_dict())
    assert all(g["foreach"] for g in new.opt.param_groups)


def test_collate_fills_slates_as_a_loop_over_transitions_does() -> None:
    """Slates of different lengths: chosen, mask, rewards and logp left-aligned per row."""
    items = [_transition(s) for s in range(3)]
    items[1] = Transition(
        items[1].state, items[1].cands, np.array([4], np.int64), np.array([-0.5], np.float32),
        np.array([2.0], np.float32), items[1].next_state, items[1].next_cands, False,
    )  # fmt: skip
    b = collate_transitions(items)
    for i, t in enumerate(items):
        n = len(t.chosen)
        assert b.chosen[i, :n].tolist() == t.chosen.tolist() and not b.chosen[i, n:].any()
        assert b.chosen_mask[i].tolist() == [k < n for k in range(2)]
        assert b.rewards[i, :n].tolist() == t.rewards.tolist()
        assert b.logp[i, :n].tolist() == t.logp.tolist()
    assert b.done.tolist() == [1.0, 0.0, 1.0]


def test_gamma_zero_target_is_the_reward_bit_for_bit() -> None:
    """With gamma 0 the soft TD target r + 0 * V(s') is r itself (the update's shortcut)."""
    rng = np.random.default_rng(0)
    r = torch.from_numpy(rng.normal(size=(5, 3)).astype(np.float32))
    done = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    mask = torch.from_numpy(rng.uniform(size=(5, 4)) < 0.5)
    zeros = torch.zeros(5, 4)
    assert torch.equal(soft_td_target(r, done, zeros, zeros, mask, 0.0, 0.1), r)


def test_update_holds_the_weights_lock_only_around_the_optimiser_step() -> None:
    """Scoring may run during an update's backward pass (the weights lock is free there) and
    is kept out of the optimiser step (the lock is held there)."""
    cfg = LearnerConfig(min_replay=1, batch_size=4)
    learner = Learner(cfg, D, D)
    learner.observe(_transition(0))
    seen: dict[str, bool] = {}
    state, cands = _transition(1).state, _transition(1).cands

    def during_backward(grad: torch.Tensor) -> torch.Tensor:
        seen["backward"] = learner._lock.locked()
        if not seen["backward"]:  # (scoring under a held lock would wait forever)
            seen["scored"] = learner.scores(state, cands).shape == (5,)
        return grad

    learner._params[0].register_hook(during_backward)
    step = learner.opt.step

    def locked_step(*a: object, **k: object) -> object:
        seen["step"] = learner._lock.locked()
        return step(*a, **k)  # type: ignore[arg-type]

    learner.opt.step = locked_step  # type: ignore[method-assign]
    assert learner.update()
    assert seen == {"backward": False, "scored": True, "step": True}
