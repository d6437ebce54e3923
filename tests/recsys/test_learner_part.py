"""`LearnerPart`, the bundle's learner part: checkpoints continue training exactly, publications
carry no optimiser state, only tensors and plain data are read, old files still load."""

from __future__ import annotations

import copy
import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.bundle import LearnerPart
from recsys.config import LearnerConfig, config_to_dict
from recsys.errors import BundleError
from recsys.records import CASE_FEATURES, Candidates, Transition
from recsys.rl.learner import Learner

D = 8


def _cands(k: int = 6) -> Candidates:
    rng = np.random.default_rng(0)
    return Candidates(
        case_ids=np.arange(100, 100 + k, dtype=np.int64),
        keys=rng.normal(size=(k, D)).astype(np.float32),
        sims=np.linspace(0.9, 0.4, k).astype(np.float32),
        features=rng.uniform(size=(k, len(CASE_FEATURES))).astype(np.float32),
        mask=np.ones(k, bool),
    )


def _trained(mode: str = "soft-q", steps: int = 4) -> Learner:
    """A learner that took `steps` gradient steps (Adam moments are not zero)."""
    learner = Learner(LearnerConfig(mode=mode, min_replay=1, batch_size=4, lr=1e-2), D, D)
    s, c = np.ones(D, np.float32), _cands()
    for k in range(3):
        chosen = np.array([k, k + 1])
        rewards = np.array([1.0, -1.0], np.float32)
        learner.observe(Transition(s, c, chosen, np.zeros(2, np.float32), rewards, s, c, False))
    for _ in range(steps):
        learner.update()
    return learner


def _q(learner: Learner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.q.parameters()]


def test_checkpoint_part_continues_training_exactly() -> None:
    """A learner rebuilt from the checkpoint part takes the very same next gradient step as the
    original; one given only the publication (fresh Adam moments) takes a different one."""
    a = _trained()
    ckpt = LearnerPart.from_bytes(a.part(optimiser=True).to_bytes())
    pub = LearnerPart.from_bytes(a.part(optimiser=False).to_bytes())
    b = Learner.from_part(ckpt)
    c = Learner(a.cfg, D, D)
    c.apply_part(pub)
    assert b.step == c.step == a.step == 4
    replay = copy.deepcopy(a.replay)
    b.replay, c.replay = copy.deepcopy(replay), copy.deepcopy(replay)
    for learner in (a, b, c):
        learner.update()
    assert all(torch.equal(x, y) for x, y in zip(_q(a), _q(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(_q(a), _q(c), strict=True))


def test_publication_has_the_weights_but_no_optimiser_state() -> None:
    """The publication scores like the learner, holds no Adam state, and is smaller than the
    checkpoint (Adam keeps two moments per weight)."""
    a = _trained()
    ckpt, pub = a.part(optimiser=True).to_bytes(), a.part(optimiser=False).to_bytes()
    raw = torch.load(io.BytesIO(pub), weights_only=True)
    assert not {"opt", "alpha_opt"} & set(raw["state_dict"])
    assert len(pub) < 0.75 * len(ckpt), (len(pub), len(ckpt))
    c = Learner(a.cfg, D, D)
    c.apply_part(LearnerPart.from_bytes(pub))
    s = np.ones(D, np.float32)
    assert np.array_equal(c.scores(s, _cands()), a.scores(s, _cands()))
    assert c.opt.state_dict()["state"] == {}  # its own (untouched) optimiser state
    assert LearnerPart.from_bytes(pub).q_digest() == a.part(optimiser=True).q_digest()


def test_tabular_q_travels_in_the_part() -> None:
    """The tabular mode's per-case Q is part of the weights."""
    a = _trained("tabular", steps=0)
    assert a.tabular.q
    b = Learner.from_part(LearnerPart.from_bytes(a.part(optimiser=False).to_bytes()))
    assert b.tabular.q == a.tabular.q


class _Payload:
    """A class: unpickling it would run code of the writer's choosing."""


def test_pickled_objects_are_refused() -> None:
    """A blob carrying a pickled object is refused (weights_only), with a clear error."""
    buf = io.BytesIO()
    torch.save({"state_dict": {"x": _Payload()}, "config": {}, "step": 0}, buf)
    with pytest.raises(BundleError, match="not a learner part"):
        LearnerPart.from_bytes(buf.getvalue())
    with pytest.raises(BundleError, match="missing"):
        buf = io.BytesIO()
        torch.save({"step": 1}, buf)
        LearnerPart.from_bytes(buf.getvalue())


def test_a_part_of_another_width_or_mode_is_refused() -> None:
    """Applying a part of other state width or mode raises `BundleError` and changes nothing."""
    a = _trained()
    other = Learner(LearnerConfig(), D + 1, D)
    with pytest.raises(BundleError, match="does not fit"):
        other.apply_part(a.part(optimiser=False))
    tab = Learner(LearnerConfig(mode="tabular"), D, D)
    with pytest.raises(BundleError, match="does not fit"):
        tab.apply_part(a.part(optimiser=False))


def test_files_of_the_previous_checkpoint_layout_load(tmp_path: Path) -> None:
    """A `learner.pt` written by the former `save_checkpoint` ({state_dict, config, step,
    extra}) loads as a checkpoint part with its optimiser state."""
    a = _trained()
    sd = {
        "q": OrderedDict(a.q.state_dict()),
        "q_target": OrderedDict(a.q_target.state_dict()),
        "opt": a.opt.state_dict(),
        "log_alpha": a.log_alpha.detach().clone(),
        "alpha_opt": a.alpha_opt.state_dict(),
        "tabular": {},
        "dims": {"state_dim": D, "key_dim": D},
    }
    old = {"state_dict": sd, "config": config_to_dict(a.cfg), "step": a.step, "extra": {}}
    torch.save(old, tmp_path / "learner.pt")
    part = LearnerPart.load(tmp_path / "learner.pt")
    assert part.optimiser is not None and part.step == 4 and part.config == a.cfg
    b = Learner.from_part(part)
    assert all(torch.equal(x, y) for x, y in zip(_q(a), _q(b), strict=True))
    with pytest.raises(BundleError, match="no learner part"):
        LearnerPart.load(tmp_path / "absent.pt")
